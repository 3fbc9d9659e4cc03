"""Transfer across tokenizers: a gate trained with llm_s (the default BPE tokenizer) runs
unchanged with gpt2_uni (GPT-2 blocks, a unigram tokenizer, as strong as llm_l: weak to
strong across lineage and tokenizer), and a gate trained with gpt2_uni runs with llm_s (strong
to weak), each against gates trained directly on that LLM. The gate reads only the SLM's
features, so it runs with any LLM; with gpt2_uni the pair exchanges text at step boundaries
(collab/handoff.py). arg keys: seeds, first_seed, call_cost, slm (slm_s; slm_s_uni, the unigram
SLM, turns which LLM shares its tokenizer around), llms (':'-separated; each one's gates run
with every other), together (':'-separated LLMs, outside llms, one more gate trains with in
turn, then runs with each of llms; '': none), credit ('episode' or 'causal'; '': the gate
default), runlocal (test_tiny with gpt2_tiny and gpt2_tiny_uni; together: test_tiny's LLMs).

  python -m experiments.study --config=configs/studies/transfer_tokenizers.py \
      --workdir=runs/studies/transfer_tok
"""
from configs.studies import _common as common

SLM, LLMS = "slm_s", "llm_s:gpt2_uni"
LOCAL_SLM, LOCAL_LLMS = "test_tiny", "gpt2_tiny:gpt2_tiny_uni"
LOCAL_TOGETHER = "test_tiny_fallible:test_tiny_arith"  # two more tiny recipes


def get_config(arg=None):
  arg = common.parse(arg, call_cost=0.05, slm=SLM, llms=LLMS, credit="", together="")
  config = common.base_config("transfer_tokenizers", arg)
  slm, llms = (LOCAL_SLM, LOCAL_LLMS) if arg.runlocal else (arg.slm, arg.llms)
  llms = tuple(llms.split(":"))
  cost = f"call_cost={arg.call_cost}" + (f",credit={arg.credit}" if arg.credit else "")
  for llm in llms:
    common.add_runs(config, f"{slm}__{llm}", f"slm={slm},llm={llm},{cost}",
                    eval_llms=tuple(other for other in llms if other != llm))
  if arg.together:  # a gate trained with several LLMs, run with the others
    together = (LOCAL_TOGETHER if arg.runlocal else arg.together).split(":")
    common.add_runs(config, f"{slm}__{'+'.join(together)}",
                    f"slm={slm},llm={together[0]},train_llms={':'.join(together[1:])},{cost}",
                    eval_llms=tuple(llm for llm in llms if llm not in together))
  return config
