"""Scaling grid: 3 SLMs x 3 LLMs, a gate per pair at the same call cost, over seeds.

  python -m experiments.study --config=configs/studies/scaling.py --workdir=runs/studies/scaling

arg keys: seeds (default 3), call_cost, slms / llms (':'-separated presets), runlocal (2 tiny
SLMs x 1 tiny LLM, seconds).
SLMs grow in fact coverage and compute, LLMs in compute and size (collab/train/recipes.py).
"""
from configs.studies import _common as common

SLMS = "slm_s:slm_m:slm_l"
LLMS = "llm_s:llm_m:llm_l"


def get_config(arg=None):
  arg = common.parse(arg, call_cost=0.05, slms=SLMS, llms=LLMS)
  config = common.base_config("scaling", arg)
  slms, llms = (("test_tiny", "gpt2_tiny"), ("gpt2_tiny",)) if arg.runlocal else (
      arg.slms.split(":"), arg.llms.split(":"))
  config.seeds = tuple(range(2 if arg.runlocal else arg.seeds))  # trends need >= 3 points
  for slm in slms:
    for llm in llms:
      common.add_runs(config, f"{slm}__{llm}", f"slm={slm},llm={llm},call_cost={arg.call_cost}")
  return config
