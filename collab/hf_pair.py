"""A real SLM x LLM pair from local Hugging Face checkpoints, and GSM8K-style problems.

Gate training and evaluation (collab/train/gate.py, collab/evaluate.py) take this path when the
config names checkpoint directories (`slm_hf_dir`, `llm_hf_dir`, see configs/pairs/) and read
problems from `data_dir` (train.jsonl, test.jsonl, optional validation.jsonl; the TFDS builder
of collab/data/tfds_gsm8k.py prepares them once under assets_dir/gsm8k). The two checkpoints
may have different tokenizers (a cross-family pair): collab/pair.py then builds the rollout
with a handoff (collab/handoff.py, docs/tokenizers.md).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from absl import logging
import ml_collections

from collab import errors
from collab.data import assets as assets_lib
from collab.data import hf_tokenizer
from collab.data import tfds_gsm8k
from collab.models import hf_io
from collab.models.config import ModelConfig


def uses_hf_models(config: ml_collections.ConfigDict) -> bool:
  return bool(config.get("slm_hf_dir") or config.get("llm_hf_dir"))


def load_checkpoint(path: str):
  """(params, cfg, tokenizer) of a Hugging Face checkpoint directory or a GGUF file."""
  if path.endswith(".gguf") and os.path.isfile(path):
    from collab.models import gguf_io  # pylint: disable=g-import-not-at-top
    return gguf_io.load_gguf(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"checkpoint directory {path} does not exist")
  params, cfg = hf_io.load_hf(path)
  return params, cfg, hf_tokenizer.HFTokenizer.from_dir(path)


def architecture_fields(path: str) -> dict[str, Any]:
  """config.json fields of a checkpoint directory (or of a GGUF file's metadata, in the
  config.json spelling): the architecture of a pair config that names none."""
  if path.endswith(".gguf") and os.path.isfile(path):
    from collab.models import gguf_io  # pylint: disable=g-import-not-at-top
    return hf_io.hf_config_dict(gguf_io.load_gguf_config(path))
  config_json = os.path.join(path, hf_io.CONFIG)
  if not os.path.exists(config_json):
    raise FileNotFoundError(f"{config_json} does not exist: the pair config needs the "
                            "checkpoint's architecture")
  with open(config_json) as f:
    return json.load(f)


def load_models(config: ml_collections.ConfigDict) -> tuple[Any, Any, ModelConfig, ModelConfig,
                                                            hf_tokenizer.HFTokenizer,
                                                            hf_tokenizer.HFTokenizer | None,
                                                            dict[str, Any]]:
  """(slm_params, llm_params, slm_cfg, llm_cfg, tokenizer, llm_tokenizer, vocab) of the two
  checkpoints (Hugging Face directories or GGUF files). llm_tokenizer is None when both
  checkpoints have the same tokenizer, else the LLM's (the pair then exchanges text at step
  boundaries, collab/handoff.py).

  One tokenizer: both embeddings at one width, since the LLM's ids are fed to the SLM. The
  width: the tokenizer's ids (its vocabulary plus the task's markup tokens, see
  collab/data/hf_tokenizer.py) must all have rows. A checkpoint whose embedding is full gets
  rows added (`hf_io.resize_vocab`, the mean of the existing rows, as transformers'
  `resize_token_embeddings`); a wider one is cropped to the narrower (`hf_io.crop_vocab`).
  Two tokenizers: each model keeps its own width, rows added where its tokenizer's ids need
  them. `vocab` records it: {"rows": the pair's width (two tokenizers: {"SLM": n, "LLM": m}),
  "SLM"/"LLM": {"checkpoint_rows": n, "rows_added": k, "rows_cropped": m, "added_init": ...}
  (two tokenizers: "rows" too)}; exports keep it (export.json and each model's metadata).

  Errors: a missing directory; a checkpoint whose architecture differs from the config's
  `models` (every field, norm eps included)."""
  dirs = {"SLM": config.get("slm_hf_dir"), "LLM": config.get("llm_hf_dir")}
  missing = [role for role, d in dirs.items() if not d]
  if missing:
    raise errors.ConfigError(f"An imported pair needs both slm_hf_dir and llm_hf_dir; {missing} "
                             "unset")
  loaded, toks = {}, {}
  for role, d in dirs.items():
    if not (os.path.isdir(d) or (d.endswith(".gguf") and os.path.isfile(d))):
      raise FileNotFoundError(f"{role} checkpoint directory {d} does not exist")
    params, cfg, toks[role] = load_checkpoint(d)
    expected = (config.get("models") or {}).get(role.lower())
    if expected:
      _check_architecture(cfg, hf_io.config_from_hf(dict(expected)), f"{role} {d}")
    loaded[role] = (params, cfg)
  shared = toks["SLM"].fingerprint == toks["LLM"].fingerprint
  if shared:
    # The LLM's tokens are fed to the SLM (and back): one width for both, at least the
    # tokenizer's ids, so no model is fed an id it lacks.
    common = max(toks["SLM"].vocab_size, min(cfg.vocab_size for _, cfg in loaded.values()))
    widths = {role: common for role in loaded}
  else:
    logging.info("SLM %s and LLM %s have different tokenizers (%s vs %s): text crosses at "
                 "step boundaries (collab/handoff.py)", dirs["SLM"], dirs["LLM"],
                 toks["SLM"].describe(), toks["LLM"].describe())
    widths = {role: max(toks[role].vocab_size, cfg.vocab_size)
              for role, (_, cfg) in loaded.items()}
  vocab: dict[str, Any] = {"rows": widths["SLM"] if shared else dict(widths)}
  out = {}
  for role, (params, cfg) in loaded.items():
    width = widths[role]
    vocab[role] = {"checkpoint_rows": cfg.vocab_size,
                   "rows_added": max(0, width - cfg.vocab_size),
                   "rows_cropped": max(0, cfg.vocab_size - width),
                   "added_init": "mean of the checkpoint's rows",
                   **({} if shared else {"rows": width})}
    if width > cfg.vocab_size:
      logging.info("%s %s: embedding resized from %d to %d rows for the tokenizer's ids "
                   "(new rows: the mean of the existing rows)", role, dirs[role],
                   cfg.vocab_size, width)
      out[role] = hf_io.resize_vocab(params, cfg, width)
    else:
      out[role] = hf_io.crop_vocab(params, cfg, width)
  (slm_params, slm_cfg), (llm_params, llm_cfg) = out["SLM"], out["LLM"]
  return (slm_params, llm_params, slm_cfg, llm_cfg, toks["SLM"],
          None if shared else toks["LLM"], vocab)


def sample_lines(config: ml_collections.ConfigDict, limit: int = 64) -> list[str]:
  """Question and solution lines of the first `limit` training problems of config.data_dir
  (read from the JSONL itself): the text a mixed pair's LLM steps are sized on. None without
  data_dir (load_records then says what is missing)."""
  if not config.get("data_dir"):
    return []
  path = os.path.join(config.data_dir, f"{config.rl.get('split', 'train')}.jsonl")
  if not os.path.exists(path):
    path = os.path.join(config.data_dir, "train.jsonl")
  examples = tfds_gsm8k.read_jsonl(path)[:limit]
  return [line for e in examples for line in e["text"].split("\n")]


# Fields that change no maths: the dtypes are a choice at load time.
_NOT_ARCHITECTURE = ("dtype", "param_dtype")


def _check_architecture(got: ModelConfig, want: ModelConfig, where: str) -> None:
  fields = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in _NOT_ARCHITECTURE]
  diff = {f: (getattr(got, f), getattr(want, f)) for f in fields
          if not _same(getattr(got, f), getattr(want, f))}
  if diff:
    raise errors.CheckpointError(f"{where}: the checkpoint's architecture differs from the "
                                 f"pair config's (field: checkpoint vs config): {diff}")


def _same(a, b) -> bool:
  """Equal, floats to float32 precision (GGUF files store norm eps and RoPE bases as float32)."""
  if isinstance(a, float) and isinstance(b, float):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))
  if isinstance(a, tuple) and isinstance(b, tuple):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  return a == b


def gsm8k_records(config: ml_collections.ConfigDict, split: str,
                  limit: int | None = None) -> list[dict[str, Any]]:
  """Problems of one split of config.data_dir, as task records (question, steps, answer)."""
  path = os.path.join(config.data_dir, f"{split}.jsonl")
  if not os.path.exists(path):
    raise errors.DataError(f"{path} does not exist: config.eval.split={split!r} needs it (for the "
                           "word problems, `make word-problems` writes every split)")
  tfds_dir = os.path.join(config.assets_dir, "gsm8k")
  with assets_lib.quiet_tfds():
    source = tfds_gsm8k.load_gsm8k_source(config.data_dir, tfds_dir, split)
  n = len(source) if limit is None else min(limit, len(source))
  return [assets_lib.to_record(source[i]) for i in range(n)]
