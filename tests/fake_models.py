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
from collab import pair as pair_lib
from configs import gate as gate_configs


def gate_config(root, arg: str = "runlocal"):
  """configs/gate.py's config with data, tokenizer and models under `root`, and a small data
  set and tokenizer corpus."""
  config = gate_configs.get_config(arg)
  config.assets_dir, config.pretrain_dir = str(root / "assets"), str(root / "pretrain")
  config.task.num_train = 300
  config.rl.num_train_problems = 16
  return config


def export_random_model(config, preset: str, seed: int, logit_scale: float = 1.0) -> None:
  """`preset` with random weights, exported under config.pretrain_dir/<preset>.

  logit_scale multiplies the output embedding: a random model's next-token logits are nearly
  flat, and a test comparing greedy tokens across device layouts needs wide argmax margins."""
  assets = assets_lib.prepare_assets(pair_lib.task_config(config), config.assets_dir,
                                     config.vocab_size)
  workdir = os.path.join(config.pretrain_dir, preset)
  os.makedirs(workdir)
  shutil.copyfile(assets.tokenizer_path, os.path.join(workdir, "tokenizer.model"))
  cfg = presets.get_model_config(preset, assets.tokenizer.vocab_size)
  params = transformer.init_params(cfg, jax.random.PRNGKey(seed))
  out = "embed" if cfg.tie_embeddings else "lm_head"
  key = "embedding" if cfg.tie_embeddings else "kernel"
  params[out] = dict(params[out], **{key: params[out][key] * logit_scale})
  pretrain.export_model(workdir, params,
                        {"tokenizer_fingerprint": assets.tokenizer.fingerprint,
                         "model": preset, "model_config": dataclasses.asdict(cfg)},
                        assets.tokenizer)


def export_random_pair(config, logit_scale: float = 1.0) -> None:
  """The config's SLM and LLM, random weights (seeds 1 and 2), with their data and tokenizer."""
  export_random_model(config, config.slm, 1, logit_scale)
  export_random_model(config, config.llm, 2, logit_scale)
