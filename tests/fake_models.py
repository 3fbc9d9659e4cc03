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


def chain_model(line_ids, end_id: int, vocab_size: int, d_model: int = 64):
  """(cfg, params) of a llama-style model that writes `line_ids` then `end_id` after any token
  that is not in the line, whatever came before: a bigram table (attention and MLP outputs
  zeroed, so each position sees only its own token). The line's ids must be distinct and
  fewer than d_model. A helper that writes a known text, in any tokenizer's ids."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from collab.models.config import ModelConfig  # pylint: disable=g-import-not-at-top
  line_ids = [int(i) for i in line_ids]
  if len(set(line_ids)) != len(line_ids) or len(line_ids) >= d_model or end_id in line_ids:
    raise ValueError(f"a chain needs distinct ids, fewer than {d_model}: {line_ids}")
  cfg = ModelConfig(arch="llama", vocab_size=vocab_size, d_model=d_model, num_layers=1,
                    num_heads=2, num_kv_heads=2, d_ff=32, tie_embeddings=False)
  params = jax.tree.map(np.zeros_like, transformer.init_params(cfg, jax.random.PRNGKey(0)))
  params["layer_0"]["input_layernorm"]["scale"] += 1
  params["layer_0"]["post_attention_layernorm"]["scale"] += 1
  params["final_norm"]["scale"] += 1
  embed_VxD = np.zeros((vocab_size, d_model), np.float32)
  embed_VxD[:, 0] = 1.0  # every token: the first id of the line wins...
  head_DxV = np.zeros((d_model, vocab_size), np.float32)
  head_DxV[0, line_ids[0]] = 1.0
  for i, tok in enumerate(line_ids):  # ...except a line token, whose successor wins
    embed_VxD[tok, i + 1] = 1.0
    head_DxV[i + 1, line_ids[i + 1] if i + 1 < len(line_ids) else end_id] = 3.0
  params["embed"]["embedding"] = embed_VxD
  params["lm_head"]["kernel"] = head_DxV
  return cfg, jax.tree.map(jax.numpy.asarray, params)


def scaled_logits(params, scale: float):
  """params with the output embedding times `scale`: random models' next-token logits are
  nearly flat, and a test comparing greedy tokens across device layouts needs wide margins."""
  out, key = ("embed", "embedding") if "lm_head" not in params else ("lm_head", "kernel")
  return dict(params, **{out: dict(params[out], **{key: params[out][key] * scale})})
