"""A real SLM x LLM pair from local Hugging Face checkpoints, and GSM8K-style problems.

Gate training and evaluation (collab/train/gate.py, collab/evaluate.py) take this path when the
config names checkpoint directories (`slm_hf_dir`, `llm_hf_dir`, see configs/pairs/) and read
problems from `data_dir` (train.jsonl, test.jsonl, optional validation.jsonl; the TFDS builder
of collab/data/tfds_gsm8k.py prepares them once under assets_dir/gsm8k).
"""
from __future__ import annotations

import os
from typing import Any

import ml_collections

from collab import errors
from collab.data import assets as assets_lib
from collab.data import hf_tokenizer
from collab.data import tfds_gsm8k
from collab.models import hf_io
from collab.models.config import ModelConfig


def uses_hf_models(config: ml_collections.ConfigDict) -> bool:
  return bool(config.get("slm_hf_dir") or config.get("llm_hf_dir"))


def load_models(config: ml_collections.ConfigDict) -> tuple[Any, Any, ModelConfig, ModelConfig,
                                                            hf_tokenizer.HFTokenizer]:
  """(slm_params, llm_params, slm_cfg, llm_cfg, tokenizer) of the two checkpoint directories,
  both embeddings cropped to the narrower one's width.

  Errors: a missing directory; two tokenizers (naming both); a tokenizer whose ids do not fit a
  model's embedding; a config.json whose architecture differs from the config's `models`."""
  dirs = {"SLM": config.get("slm_hf_dir"), "LLM": config.get("llm_hf_dir")}
  missing = [role for role, d in dirs.items() if not d]
  if missing:
    raise errors.ConfigError(f"An imported pair needs both slm_hf_dir and llm_hf_dir; {missing} "
                             "unset")
  names = {"SLM": config.slm, "LLM": config.llm}
  loaded, toks = {}, {}
  for role, d in dirs.items():
    if not os.path.isdir(d):
      raise FileNotFoundError(f"{role} checkpoint directory {d} does not exist")
    params, cfg = hf_io.load_hf(d)
    expected = (config.get("models") or {}).get(role.lower())
    if expected:
      _check_architecture(cfg, hf_io.config_from_hf(dict(expected)), f"{role} {d}")
    toks[role] = hf_tokenizer.HFTokenizer.from_dir(d)
    hf_tokenizer.check_fits(toks[role], cfg.vocab_size, f"{role} {d}")
    loaded[role] = (params, cfg)
  hf_tokenizer.check_same_tokenizer(toks["SLM"], toks["LLM"], f"SLM {names['SLM']} ({dirs['SLM']})",
                                    f"LLM {names['LLM']} ({dirs['LLM']})")
  # The LLM's tokens are fed to the SLM (and back): crop the wider embedding to the common
  # width, past the tokenizer's ids either way, so no model is fed an id it lacks.
  common = min(cfg.vocab_size for _, cfg in loaded.values())
  (slm_params, slm_cfg), (llm_params, llm_cfg) = (
      hf_io.crop_vocab(*loaded[role], common) for role in ("SLM", "LLM"))
  return slm_params, llm_params, slm_cfg, llm_cfg, toks["SLM"]


def _check_architecture(got: ModelConfig, want: ModelConfig, where: str) -> None:
  fields = ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim",
            "d_ff", "rope_theta", "rope_scaling", "tie_embeddings", "qkv_bias")
  diff = {f: (getattr(got, f), getattr(want, f)) for f in fields
          if getattr(got, f) != getattr(want, f)}
  if diff:
    raise errors.CheckpointError(f"{where}: config.json differs from the pair config's "
                                 f"architecture (field: checkpoint vs config): {diff}")


def gsm8k_records(config: ml_collections.ConfigDict, split: str,
                  limit: int | None = None) -> list[dict[str, Any]]:
  """Problems of one split of config.data_dir, as task records (question, steps, answer)."""
  tfds_dir = os.path.join(config.assets_dir, "gsm8k")
  with assets_lib.quiet_tfds():
    source = tfds_gsm8k.load_gsm8k_source(config.data_dir, tfds_dir, split)
  n = len(source) if limit is None else min(limit, len(source))
  return [assets_lib.to_record(source[i]) for i in range(n)]
