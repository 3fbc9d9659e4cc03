"""Pretraining recipes: what makes a model preset strong or weak.

On a 2-core CPU, strength comes mostly from fact coverage (how much of the world the model is
shown) and training compute, not from size (DESIGN.md, prototype table). A recipe ties a size
preset (collab/models/presets.py) to a fact coverage and a training budget.
"""
from __future__ import annotations

import dataclasses


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
