"""Budget-targeted gates: a target of calls (or LLM tokens) per problem, met by dual ascent on
the price during training; evaluation reports what held-out problems get.
arg keys: slm, llm, seeds, calls / tokens (':'-separated targets per problem), calls_lr (the
dual step on the call price; 0: configs/gate.py's default), mode ('dual': dual ascent;
'mixture': a gate trained at call cost mix_cost, used on a calibrated share of the problems,
SLM alone on the rest, collab/train/gate.py `mixture_targets`; 'both'), mix_cost, runlocal
(dual only: tests/test_evaluate.py and tests/test_rollout.py test the mixture; with mixture
gates added, tests/test_studies.py's process crashed in XLA's CPU compiler three CI runs in a
row).

  python -m experiments.study --config=configs/studies/budget.py --workdir=runs/studies/budget
"""
from configs.studies import _common as common

CALL_TARGETS = "0.5:1:2:3"
TOKEN_TARGETS = "10:25"
WARMUP = 40


def get_config(arg=None):
  arg = common.parse(arg, slm="slm_s", llm="llm_l", calls=CALL_TARGETS, tokens=TOKEN_TARGETS,
                     calls_lr=0.0, mode="dual", mix_cost=0.1)
  config = common.base_config("budget", arg)
  pair = "slm=test_tiny,llm=gpt2_tiny" if arg.runlocal else f"slm={arg.slm},llm={arg.llm}"
  floats = lambda s: [float(x) for x in s.split(":") if x]  # noqa: E731
  calls, tokens = ((1.0,), (10.0,)) if arg.runlocal else (floats(arg.calls), floats(arg.tokens))
  # The prices start at 0 and ramp in over WARMUP steps: a price that overshoots early
  # collapses the gate to never asking, and a collapsed gate no longer explores back.
  lr, lr_name = ((f",calls_lr={arg.calls_lr:g}", f"_lr{arg.calls_lr:g}") if arg.calls_lr
                 else ("", ""))
  modes = {"dual": ("dual",), "mixture": ("mixture",), "both": ("dual", "mixture")}
  if arg.mode not in modes:
    raise ValueError(f"mode must be one of {sorted(modes)}, got {arg.mode!r}")
  for mode in modes[arg.mode]:
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
