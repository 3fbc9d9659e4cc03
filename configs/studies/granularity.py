"""Granularity: step-level (line) against K-token routing (K=1 is token-level) on one pair,
at the same price per LLM token. arg keys: slm, llm, seeds, token_cost, step_tokens
(':'-separated K values), runlocal.

  python -m experiments.study --config=configs/studies/granularity.py --workdir=runs/studies/granularity
"""
from configs.studies import _common as common

STEP_TOKENS = "8:4:1"


def get_config(arg=None):
  arg = common.parse(arg, slm="slm_s", llm="llm_l", token_cost=0.003, step_tokens=STEP_TOKENS)
  config = common.base_config("granularity", arg)
  pair = "slm=test_tiny,llm=gpt2_tiny" if arg.runlocal else f"slm={arg.slm},llm={arg.llm}"
  cost = f"call_cost=0,token_cost={arg.token_cost}"
  common.add_runs(config, "line", f"{pair},{cost}")
  for k in ((4,) if arg.runlocal else [int(k) for k in arg.step_tokens.split(":")]):
    # Budget = every decision: the call budget must not cap token-level routing.
    common.add_runs(config, f"tokens{k}", f"{pair},{cost},granularity=tokens,step_tokens={k},"
                    f"budget={80 // k}")
  return config
