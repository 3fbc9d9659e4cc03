"""Pretraining of one model preset on the generated task.

  python -m experiments.pretrain --config=configs/pretrain.py:model=slm_s --workdir=runs/slm_s
  python -m experiments.pretrain --config=configs/pretrain.py:runlocal --workdir=/tmp/x

arg keys: model (a recipe in collab/train/recipes.py), seed (default: the recipe's), coverage (override the recipe's
fact coverage), steps (override its step count), batch (override its batch size), overlap (the share of the
reference SLM's facts this model knows too, its other facts lying outside them: a fallible LLM; -1 turns a
recipe's overlap off), arith_weight (loss weight of arithmetic lines; above 1: more arithmetic practice),
runlocal (shrink everything to seconds). Worlds: docs/worlds.md.
"""
from collab import config_args
from collab.train import recipes


def get_config(arg=None):
  arg = config_args.parse_arg(arg, model="", seed=-1, coverage=-1.0, steps=0, batch=0,
                              overlap=-2.0, arith_weight=0.0, runlocal=False)
  return recipes.pretrain_config(arg.model, runlocal=arg.runlocal, seed=arg.seed,
                                 coverage=arg.coverage, steps=arg.steps, batch=arg.batch,
                                 overlap=arg.overlap, arith_weight=arg.arith_weight)


def get_sweep(hyper=None):
  """The presets the scaling study pretrains (one run each)."""
  return [{"config": f"configs/pretrain.py:model={name}"}
          for name in ("slm_s", "slm_m", "slm_l", "llm_s", "llm_m", "llm_l", "gpt2_m")]
