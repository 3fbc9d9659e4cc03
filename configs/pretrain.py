"""Pretraining of one model preset on the generated task.

  python -m experiments.pretrain --config=configs/pretrain.py:model=slm_s --workdir=runs/slm_s
  python -m experiments.pretrain --config=configs/pretrain.py:runlocal --workdir=/tmp/x

arg keys: model (a recipe in collab/train/recipes.py), seed (default: the recipe's), coverage (override the recipe's
fact coverage), steps (override its step count), batch (override its batch size), runlocal (shrink everything to seconds).
"""
import dataclasses

import ml_collections

from collab import config_args
from collab.data import task as task_lib
from collab.train import recipes


def task_defaults(runlocal: bool = False) -> ml_collections.ConfigDict:
  """The task generator's knobs (collab/data/task.py TaskConfig) as a ConfigDict."""
  task = dataclasses.asdict(task_lib.TaskConfig())
  if runlocal:
    task.update(num_train=2000, num_validation=64, num_test=64)
  return ml_collections.ConfigDict(task)


def get_config(arg=None):
  arg = config_args.parse_arg(arg, model="", seed=-1, coverage=-1.0, steps=0, batch=0,
                              runlocal=False)
  model = arg.model or ("test_tiny" if arg.runlocal else "slm_s")
  recipe = recipes.get_recipe(model)

  config = ml_collections.ConfigDict()
  config.model = model
  config.preset = recipe.model  # the size preset (collab/models/presets.py) the recipe trains
  config.seed = arg.seed if arg.seed >= 0 else recipe.seed
  config.task = task_defaults(arg.runlocal)
  config.vocab_size = 512
  # Data and tokenizer are shared by every model of a world (a collaborating pair must share
  # a tokenizer), so they live outside the model's workdir.
  config.assets_dir = "runs/assets_local" if arg.runlocal else "runs/assets"
  config.seq_len = 104  # the longest generated problem is 97 tokens with bos and eos
  config.fact_coverage = arg.coverage if arg.coverage >= 0 else recipe.fact_coverage
  config.coverage_seed = 0
  # 'mask': train on every problem but never on an unknown fact's look-up line (arithmetic
  # learns from all the data); 'filter': train only on problems whose facts are all known.
  config.unknown_facts = "mask"
  # Share of training problems shown redacted (private spans -> <redacted>, loss off on the
  # lines that need them): an LLM learns to serve `ask_redacted` requests.
  config.redact_prob = 0.25 if recipe.role == "llm" else 0.0
  config.num_steps = arg.steps or recipe.num_steps
  config.batch_size = arg.batch or recipe.batch_size
  config.learning_rate = recipe.learning_rate
  config.warmup_steps = recipe.warmup_steps
  config.weight_decay = 0.01
  config.grad_clip = 1.0
  config.log_every = 50
  config.ckpt_every = 500
  config.max_to_keep = 2
  # A step with a NaN/inf loss or gradients: 'stop' (keeps the last checkpoint) or 'skip'.
  config.on_nonfinite = "stop"
  config.eval = ml_collections.ConfigDict(
      dict(split="test", num_problems=500, batch_size=128))

  if arg.runlocal:
    config.num_steps = arg.steps or 30
    config.batch_size = 16
    config.log_every = 10
    config.ckpt_every = 10
    config.eval.num_problems = 16
    config.eval.batch_size = 16
  return config


def get_sweep(hyper=None):
  """The presets the scaling study pretrains (one run each)."""
  return [{"config": f"configs/pretrain.py:model={name}"}
          for name in ("slm_s", "slm_m", "slm_l", "llm_s", "llm_m", "llm_l", "gpt2_m")]
