"""Budget-targeted gates: a target of calls (or LLM tokens) per problem, met by dual ascent on
the price during training; evaluation reports what held-out problems get.
arg keys: slm, llm, seeds, calls / tokens (':'-separated targets per problem), calls_lr (the
dual step on the call price; 0: configs/gate.py's default), runlocal.

  python -m experiments.study --config=configs/studies/budget.py --workdir=runs/studies/budget
"""
from configs.studies import _common as common

CALL_TARGETS = "0.5:1:2:3"
TOKEN_TARGETS = "10:25"
WARMUP = 40


def get_config(arg=None):
  arg = common.parse(arg, slm="slm_s", llm="llm_l", calls=CALL_TARGETS, tokens=TOKEN_TARGETS,
                     calls_lr=0.0)
  config = common.base_config("budget", arg)
  pair = "slm=test_tiny,llm=gpt2_tiny" if arg.runlocal else f"slm={arg.slm},llm={arg.llm}"
  floats = lambda s: [float(x) for x in s.split(":") if x]  # noqa: E731
  calls, tokens = ((1.0,), (10.0,)) if arg.runlocal else (floats(arg.calls), floats(arg.tokens))
  # The prices start at 0 and ramp in over WARMUP steps: a price that overshoots early
  # collapses the gate to never asking, and a collapsed gate no longer explores back.
  lr, lr_name = ((f",calls_lr={arg.calls_lr:g}", f"_lr{arg.calls_lr:g}") if arg.calls_lr
                 else ("", ""))
  for t in calls:
    common.add_runs(config, f"calls={t:g}{lr_name}",
                    f"{pair},call_cost=0,target_calls={t},cost_warmup={WARMUP}{lr}")
  for t in tokens:
    common.add_runs(config, f"tokens={t:g}",
                    f"{pair},call_cost=0,target_tokens={t},cost_warmup={WARMUP}")
  return config
