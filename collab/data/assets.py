"""Shared assets of a world: its TFDS data and its tokenizer, built once and reused.

Models of a world share its data and, by default, its tokenizer, so both live beside the data
rather than in a model's workdir: `assets_dir/<task name>/{tfds/, tokenizer_v<vocab>.model}`.
A tokenizer of another SentencePiece algorithm (a recipe's `tokenizer_type`, e.g. unigram) is
trained on the same corpus into `tokenizer_<type>_v<vocab>.model`, so it never takes the
default one's file. Each model's workdir keeps a copy of its tokenizer and checkpoints carry
its fingerprint.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from collab.data import task as task_lib
from collab.data import tfds_task
from collab.data import tokenizer as tokenizer_lib

# Problems fed to sentencepiece training; the task's vocabulary is small and repetitive.
_TOKENIZER_CORPUS_SIZE = 20000


@dataclasses.dataclass(frozen=True)
class Assets:
  task: task_lib.TaskConfig
  tokenizer: tokenizer_lib.Tokenizer
  data_dir: str
  tokenizer_path: str

  def source(self, split: str):
    with quiet_tfds():
      return tfds_task.load_task_source(self.task, self.data_dir, split)


@contextlib.contextmanager
def quiet_tfds():
  """TFDS logs every file it touches at INFO and draws progress bars: keep runs readable."""
  level = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  tfds.display_progress_bar(False)
  try:
    yield
  finally:
    logging.set_verbosity(level)


def tokenizer_file(vocab_size: int, tokenizer_type: str = tokenizer_lib.DEFAULT_TYPE) -> str:
  """The tokenizer's file name: the default algorithm keeps the name it always had."""
  if tokenizer_lib.check_type(tokenizer_type) == tokenizer_lib.DEFAULT_TYPE:
    return f"tokenizer_v{vocab_size}.model"
  return f"tokenizer_{tokenizer_type}_v{vocab_size}.model"


def prepare_assets(task_cfg: task_lib.TaskConfig, assets_dir: str, vocab_size: int,
                   tokenizer_type: str = tokenizer_lib.DEFAULT_TYPE) -> Assets:
  """Builds (or reuses) the TFDS data and a tokenizer (`tokenizer_type`, `vocab_size` ids
  asked for: a small corpus may give fewer) for `task_cfg` under `assets_dir`."""
  tok_name = tokenizer_file(vocab_size, tokenizer_type)  # a bad type fails before any work
  root = os.path.join(os.path.abspath(assets_dir), tfds_task.config_name(task_cfg))
  data_dir = os.path.join(root, "tfds")
  os.makedirs(root, exist_ok=True)
  if not os.path.exists(data_dir):
    print(f"Generating the task data set -> {data_dir}", flush=True)
  with quiet_tfds():
    tfds_task.build_task_dataset(task_cfg, data_dir)
  tok_path = os.path.join(root, tok_name)
  if os.path.exists(tok_path):
    tok = tokenizer_lib.Tokenizer.load(tok_path)
  else:
    print(f"Training a {vocab_size}-token sentencepiece {tokenizer_type} tokenizer -> "
          f"{tok_path}", flush=True)
    texts = task_lib.corpus_texts(task_cfg, _TOKENIZER_CORPUS_SIZE)
    tok = tokenizer_lib.train_tokenizer(texts, vocab_size=vocab_size, model_type=tokenizer_type)
    tmp = tok_path + ".tmp"
    tok.save(tmp)
    os.replace(tmp, tok_path)  # atomic: a crash never leaves half a tokenizer
  return Assets(task_cfg, tok, data_dir, tok_path)


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def to_record(example: dict[str, Any]) -> dict[str, Any]:
  """A TFDS example (bytes and numpy arrays) as plain Python (str, lists, ints)."""
  record = {"question": _text(example["question"]),
            "steps": [_text(s) for s in example["steps"]]}
  if "step_kinds" in example:
    record["step_kinds"] = [_text(s) for s in example["step_kinds"]]
  if "entity_ids" in example:
    record["entity_ids"] = [int(e) for e in np.asarray(example["entity_ids"])]
  if "answer" in example:
    record["answer"] = example["answer"].item() if hasattr(example["answer"], "item") else (
        example["answer"])
  return record


def load_records(assets: Assets, split: str, limit: int | None = None) -> list[dict[str, Any]]:
  if split == task_lib.SEALED:  # generated on request: never in the TFDS data set
    problems = task_lib.generate_split(assets.task, split)[:limit]
    return [to_record(tfds_task.example(p)) for p in problems]
  source = assets.source(split)
  n = len(source) if limit is None else min(limit, len(source))
  return [to_record(source[i]) for i in range(n)]
