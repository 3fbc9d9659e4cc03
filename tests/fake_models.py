"""Random-init SLM x LLM pairs, exported the way pretraining exports them.

Gate training reads only a pretraining run's `model/` export, so the tests of gate training,
export, preemption and multi-process runs skip pretraining (and its evaluation), which would
be most of their fixtures' time.
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import jax

from collab.data import assets as assets_lib
from collab.models import presets
from collab.models import transformer
from collab.train import pretrain
from configs import gate as gate_configs


def gate_config(root, arg: str = "runlocal"):
  """configs/gate.py's config with data, tokenizer and models under `root`, and a small data
  set and tokenizer corpus."""
  config = gate_configs.get_config(arg)
  config.assets_dir, config.pretrain_dir = str(root / "assets"), str(root / "pretrain")
  config.task.num_train = 300
  config.rl.num_train_problems = 16
  return config


def export_random_model(config, preset: str, seed: int) -> None:
  """`preset` with random weights, exported under config.pretrain_dir/<preset>."""
  assets = assets_lib.prepare_assets(pretrain.task_config(config), config.assets_dir,
                                     config.vocab_size)
  workdir = os.path.join(config.pretrain_dir, preset)
  os.makedirs(workdir)
  shutil.copyfile(assets.tokenizer_path, os.path.join(workdir, "tokenizer.model"))
  cfg = presets.get_model_config(preset, assets.tokenizer.vocab_size)
  pretrain.export_model(workdir, transformer.init_params(cfg, jax.random.PRNGKey(seed)),
                        {"tokenizer_fingerprint": assets.tokenizer.fingerprint,
                         "model": preset, "model_config": dataclasses.asdict(cfg)},
                        assets.tokenizer)


def export_random_pair(config) -> None:
  """The config's SLM and LLM, random weights (seeds 1 and 2), with their data and tokenizer."""
  export_random_model(config, config.slm, 1)
  export_random_model(config, config.llm, 2)
