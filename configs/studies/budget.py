"""Budget-targeted gates: a target of calls (or LLM tokens) per problem, met by dual ascent on
the price during training, or by the price a price-conditioned gate is told; evaluation
reports what held-out problems get.
arg keys: slm, llm, seeds, calls / tokens (':'-separated targets per problem), calls_lr (the
dual step on the call price; 0: configs/gate.py's default), mode ('dual': dual ascent;
'mixture': a gate trained at call cost mix_cost, used on a calibrated share of the problems,
SLM alone on the rest, collab/train/gate.py `mixture_targets`; 'price': one gate per seed
trained over the prices price_range with checkpoint selection on `select` held-out training
problems, told the price that meets each target on those problems,
collab/train/calibration.py; modes joined by '+', or 'both' = 'dual+mixture'), mix_cost,
price_range, select, price_calls / price_tokens (mode price's targets, when they differ from
calls / tokens: a target costs it a calibration, not a training run), runlocal (dual only:
tests/test_evaluate.py and tests/test_rollout.py test the mixture and the calibration, which
keeps the compiles of tests/test_studies.py's process few).

  python -m experiments.study --config=configs/studies/budget.py --workdir=runs/studies/budget
"""
from configs.studies import _common as common

CALL_TARGETS = "0.5:1:2:3"
TOKEN_TARGETS = "10:25"
WARMUP = 40


def get_config(arg=None):
  arg = common.parse(arg, slm="slm_s", llm="llm_l", calls=CALL_TARGETS, tokens=TOKEN_TARGETS,
                     calls_lr=0.0, mode="dual", mix_cost=0.1, price_range="0.01:1.0",
                     select=200, price_calls="", price_tokens="")
  config = common.base_config("budget", arg)
  pair = "slm=test_tiny,llm=gpt2_tiny" if arg.runlocal else f"slm={arg.slm},llm={arg.llm}"
  floats = lambda s: [float(x) for x in s.split(":") if x]  # noqa: E731
  calls, tokens = ((1.0,), (10.0,)) if arg.runlocal else (floats(arg.calls), floats(arg.tokens))
  # The prices start at 0 and ramp in over WARMUP steps: a price that overshoots early
  # collapses the gate to never asking, and a collapsed gate no longer explores back.
  lr, lr_name = ((f",calls_lr={arg.calls_lr:g}", f"_lr{arg.calls_lr:g}") if arg.calls_lr
                 else ("", ""))
  modes = arg.mode.replace("both", "dual+mixture").split("+")
  if not modes or set(modes) - {"dual", "mixture", "price"}:
    raise ValueError(f"mode must be dual, mixture, price, both or a '+'-join of them, got "
                     f"{arg.mode!r}")
  for mode in modes:
    if mode == "price":
      _add_price_runs(config, arg, pair,
                      floats(arg.price_calls) if arg.price_calls else calls,
                      floats(arg.price_tokens) if arg.price_tokens else tokens)
      continue
    mix = mode == "mixture"  # the price stays fixed: nothing to warm up or adapt
    cost = (f"call_cost={arg.mix_cost},target_mode=mixture" if mix
            else f"call_cost=0,cost_warmup={WARMUP}")
    for t in calls:  # calls_lr is the dual step of the calls target only
      common.add_runs(config, f"calls={t:g}{'_mix' if mix else lr_name}",
                      f"{pair},{cost},target_calls={t}{'' if mix else lr}")
    for t in tokens:
      common.add_runs(config, f"tokens={t:g}{'_mix' if mix else ''}",
                      f"{pair},{cost},target_tokens={t}")
  return config


def _add_price_runs(config, arg, pair: str, calls, tokens) -> None:
  """One price-conditioned gate per seed (checkpoint selection on held-out training problems);
  each target is a setting told the price calibrated on those problems."""
  lo, hi = (float(x) for x in arg.price_range.split(":"))
  gate = (f"{pair},price_min={lo:g},price_max={hi:g},price_offset=True,"
          f"select={8 if arg.runlocal else arg.select}")
  for key, targets in (("calls", calls), ("llm_tokens", tokens)):
    for t in targets:
      common.add_runs(config, f"{'calls' if key == 'calls' else 'tokens'}={t:g}_price", gate,
                      shared_gate=f"cond{lo:g}-{hi:g}_sel{arg.select}",
                      price_target=(key, t))
