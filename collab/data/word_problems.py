"""Word problems for pretraining here: GSM-Symbolic JSONL (collab/data/gsm_symbolic.py) as the
second task family's corpus, its tokenizer, its step kinds and its knowledge split.

    make word-problems   # = make gsm-symbolic GSM_ARGS="--out .cache/gsm_symbolic/pretrain
                         #   --train 10000 --validation 1000 --test 500 --heldout 10"

Each record keeps the generator (a GSM8K question turned template) that wrote it. A model's
knowledge here is which templates it was trained on: a recipe's `fact_coverage` keeps a seeded share
of the training generators, as fact coverage keeps a share of the generated world's facts. With
`--heldout K` the test split's generators are never in training, for any model.

Lines are examples in the layout of the generated task (collab/data/pipeline.py): `question`,
worked `steps` ending with `answer N` (collab/data/tfds_gsm8k.to_example), `text`, plus
`generator` and `step_kinds` (`step_kind`).
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Sequence

import numpy as np

from collab import errors
from collab.data import tfds_gsm8k
from collab.data import tokenizer as tokenizer_lib

DEFAULT_DATA_DIR = ".cache/gsm_symbolic/pretrain"
# The JSONL splits (collab/data/gsm_symbolic.py): sealed (`--sealed N`, the training
# generators' fresh problems) is for headline numbers only.
SPLITS = ("train", "validation", "test", "sealed")
# The operators of a worked line's arithmetic ("8*3=24", "170 - 34", "3 x 4", "1/2").
_OPS = {"+": "add", "-": "sub", "*": "mul", "x": "mul", "×": "mul", "/": "div", "÷": "div"}
_OP_RE = re.compile(r"\d\s*([-+*/x×÷])(?=\s*\(?\$?\d)")
STEP_KINDS = ("text", "add", "sub", "mul", "div", "mixed", "answer")


def step_kind(line: str) -> str:
  """'answer' for the final `answer N` line; else, for a line with an equation (`=`), the one
  operator kind of its arithmetic ('add', 'sub', 'mul', 'div') or 'mixed' for several; 'text'
  for the rest (a line without `=` only reads numbers: "a 2-3 day trip" is not a subtraction)."""
  if line.startswith("answer "):
    return "answer"
  kinds = {_OPS[op] for op in _OP_RE.findall(line)} if "=" in line else set()
  if not kinds:
    return "text"
  return kinds.pop() if len(kinds) == 1 else "mixed"


def read_split(data_dir: str, split: str) -> list[dict[str, Any]]:
  """The examples of `data_dir/{split}.jsonl`, with generator and step kinds; DataError for a
  missing file or malformed lines (listed with tfds_gsm8k's reasons)."""
  path = os.path.join(data_dir, f"{split}.jsonl")
  if not os.path.exists(path):
    raise errors.DataError(
        f"{path} does not exist: write the word problems first with `make word-problems` "
        f"(or `make gsm-symbolic GSM_ARGS=\"--out {data_dir} ...\"`; docs/word_problems.md)")
  examples = tfds_gsm8k.read_jsonl(path, keep=("generator",))
  for ex in examples:
    ex["generator"] = int(ex.get("generator", -1))
    ex["step_kinds"] = [step_kind(s) for s in ex["steps"]]
  return examples


def covered_generators(generators: Sequence[int], coverage: float, seed: int) -> set[int]:
  """A seeded share `coverage` of `generators` (nested: a larger share keeps every generator
  of a smaller one with the same seed)."""
  ids = sorted(set(generators))
  order = np.random.default_rng(seed).permutation(len(ids))
  keep = int(round(coverage * len(ids)))
  return {ids[i] for i in order[:keep]}


def fits(examples: Sequence[dict], tok, seq_len: int) -> list[dict]:
  """The examples whose text fits seq_len with bos and eos (longer ones would lose their
  answer line to truncation)."""
  lens = [len(ids) for ids in tok.encode_batch([ex["text"] for ex in examples])]
  return [ex for ex, n in zip(examples, lens) if n + 2 <= seq_len]


def prepare_tokenizer(data_dir: str, assets_dir: str, vocab_size: int
                      ) -> tuple[tokenizer_lib.Tokenizer, str]:
  """(tokenizer, path): a BPE tokenizer (digits split, byte fallback) trained on the train
  split, cached under assets_dir by the train file's digest so another corpus never reuses it."""
  train_path = os.path.join(data_dir, "train.jsonl")
  if not os.path.exists(train_path):
    read_split(data_dir, "train")  # raises the missing-file error
  with open(train_path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:12]
  root = os.path.join(os.path.abspath(assets_dir), f"word_problems-{digest}")
  path = os.path.join(root, f"tokenizer_v{vocab_size}.model")
  if os.path.exists(path):
    return tokenizer_lib.Tokenizer.load(path), path
  os.makedirs(root, exist_ok=True)
  print(f"Training a {vocab_size}-token sentencepiece tokenizer on {train_path} -> {path}",
        flush=True)
  texts = [ex["text"] for ex in read_split(data_dir, "train")]
  tok = tokenizer_lib.train_tokenizer(texts, vocab_size=vocab_size, byte_fallback=True)
  tok.save(path + ".tmp")
  os.replace(path + ".tmp", path)
  return tok, path
