"""Any two local checkpoints as a pair, their architectures read from the checkpoints.

  python -m experiments.train_gate --workdir=runs/mine --config=configs/pairs/hf.py:\
slm_dir=/ckpt/small,llm_dir=/ckpt/large,data_dir=/data/gsm8k

slm_dir / llm_dir: Hugging Face checkpoint directories (config.json, safetensors, tokenizer) or
GGUF files; the pair config's `models` are their config.json fields (a GGUF file's metadata in
that spelling), so nothing has to be written down first. Prompts and scoring fit pretrained
models (configs/pairs.PRETRAINED: the chat template, or few-shot text without one; steps on
non-empty lines; answers compared as numbers): arg keys prompt (auto, chat, few_shot, plain),
shots, scoring (number, line), step_split (nonempty_lines, lines), prompt_len (with shots, raise it).
Other arg keys as in configs/pairs/__init__.py (tpu, model_axis, seed, call_cost, steps,
eval_problems, runlocal).
"""
from configs import pairs

DERIVED = True  # no published sizes: tests/test_pairs_configs.py checks the others


def get_config(arg=None):
  return pairs.pair_config(arg, family="", sizes=None, tiny=None, slm="", llm="",
                           prompt=pairs.PRETRAINED)
