"""Transfer: a gate trained with llm_s runs unchanged with a stronger LLM of its lineage
(llm_l) and with another lineage (gpt2_m, GPT-2 blocks, another data seed), against gates
trained on those LLMs directly. arg keys: seeds, call_cost, targets (':'-separated LLMs),
credit ('episode' or 'causal', configs/gate.py; '': the gate default), runlocal.

  python -m experiments.study --config=configs/studies/transfer.py --workdir=runs/studies/transfer
"""
from configs.studies import _common as common

SLM, SOURCE, TARGETS = "slm_s", "llm_s", "llm_l:gpt2_m"


def get_config(arg=None):
  arg = common.parse(arg, call_cost=0.05, targets=TARGETS, credit="")
  config = common.base_config("transfer", arg)
  slm, source, targets = ("test_tiny", "gpt2_tiny", ("test_tiny",)) if arg.runlocal else (
      SLM, SOURCE, tuple(arg.targets.split(":")))
  cost = f"call_cost={arg.call_cost}" + (f",credit={arg.credit}" if arg.credit else "")
  common.add_runs(config, f"{slm}__{source}", f"slm={slm},llm={source},{cost}",
                  eval_llms=targets)
  for llm in targets:
    common.add_runs(config, f"{slm}__{llm}", f"slm={slm},llm={llm},{cost}")
  return config
