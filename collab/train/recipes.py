"""Pretraining recipes: what makes a model preset strong or weak.

On a 2-core CPU, strength comes mostly from fact coverage (how much of the world the model is
shown) and training compute, not from size (DESIGN.md, prototype table). A recipe ties a size
preset (collab/models/presets.py) to a fact coverage and a training budget.
"""
from __future__ import annotations

import dataclasses

import ml_collections

from collab.data import task as task_lib


@dataclasses.dataclass(frozen=True)
class Recipe:
  model: str              # size preset name in collab.models.presets
  fact_coverage: float    # share of the world's entities whose facts appear in training
  num_steps: int
  batch_size: int = 64
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  role: str = "slm"       # 'slm' | 'llm' | 'test'
  seed: int = 0           # init and data-order seed


RECIPES: dict[str, Recipe] = {
    # Tests only: seconds to train, learns little.
    "test_tiny": Recipe("test_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test"),
    "gpt2_tiny": Recipe("gpt2_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test"),
    # Small language models: weak in facts, growing in coverage and compute.
    "slm_s": Recipe("slm_s", 0.4, 900, role="slm"),
    "slm_m": Recipe("slm_m", 0.55, 1200, role="slm"),
    "slm_l": Recipe("slm_l", 0.7, 1500, role="slm"),
    # Large language models: know the whole world, growing in training compute (and size for
    # llm_l). Three-digit subtraction with borrows is what extra compute buys: at 1400 steps
    # llm_s rarely gets it right, while a 3000-step schedule learns it.
    "llm_s": Recipe("llm_s", 1.0, 1400, batch_size=32, role="llm"),
    "llm_m": Recipe("llm_s", 1.0, 2200, batch_size=32, role="llm"),
    "llm_l": Recipe("llm_m", 1.0, 3000, batch_size=32, role="llm"),
    # Another lineage (GPT-2-style blocks, another data seed) for the transfer study.
    "gpt2_m": Recipe("gpt2_m", 1.0, 3000, batch_size=32, role="llm", seed=1),
}


def get_recipe(name: str) -> Recipe:
  if name not in RECIPES:
    raise ValueError(f"Unknown pretraining preset {name!r}; valid: {sorted(RECIPES)}")
  return RECIPES[name]


def task_defaults(runlocal: bool = False) -> ml_collections.ConfigDict:
  """The task generator's knobs (collab/data/task.py TaskConfig) as a ConfigDict."""
  task = dataclasses.asdict(task_lib.TaskConfig())
  if runlocal:
    task.update(num_train=2000, num_validation=64, num_test=64)
  return ml_collections.ConfigDict(task)


def pretrain_config(model: str = "", *, runlocal: bool = False, seed: int = -1,
                    coverage: float = -1.0, steps: int = 0, batch: int = 0
                    ) -> ml_collections.ConfigDict:
  """The pretraining config of a recipe (configs/pretrain.py's get_config; the gate trainer
  builds the same one for a preset it pretrains). Negative or zero overrides keep the
  recipe's value; runlocal shrinks everything to seconds."""
  model = model or ("test_tiny" if runlocal else "slm_s")
  recipe = get_recipe(model)

  config = ml_collections.ConfigDict()
  config.model = model
  config.preset = recipe.model  # the size preset (collab/models/presets.py) the recipe trains
  config.seed = seed if seed >= 0 else recipe.seed
  config.task = task_defaults(runlocal)
  config.vocab_size = 512
  # Data and tokenizer are shared by every model of a world (a collaborating pair must share
  # a tokenizer), so they live outside the model's workdir.
  config.assets_dir = "runs/assets_local" if runlocal else "runs/assets"
  config.seq_len = 104  # the longest generated problem is 97 tokens with bos and eos
  config.fact_coverage = coverage if coverage >= 0 else recipe.fact_coverage
  config.coverage_seed = 0
  # 'mask': train on every problem but never on an unknown fact's look-up line (arithmetic
  # learns from all the data); 'filter': train only on problems whose facts are all known.
  config.unknown_facts = "mask"
  # Share of training problems shown redacted (private spans -> <redacted>, loss off on the
  # lines that need them): an LLM learns to serve `ask_redacted` requests.
  config.redact_prob = 0.25 if recipe.role == "llm" else 0.0
  config.num_steps = steps or recipe.num_steps
  config.batch_size = batch or recipe.batch_size
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

  if runlocal:
    config.num_steps = steps or 30
    config.batch_size = 16
    config.log_every = 10
    config.ckpt_every = 10
    config.eval.num_problems = 16
    config.eval.batch_size = 16
  return config
