"""SentencePiece tokenizer trained in-process on the task corpus, with fixed special ids.

Ids: pad=0, bos=1, eos=2, unk=3, then the rollout's specials in SPECIAL_TOKENS order.
SentencePiece drops newlines, so `encode` encodes each line and joins lines with `<sep>`;
`decode` maps `<sep>` back to '\n'. Normalization is off so every task text round-trips.
"""
from __future__ import annotations

import hashlib
import io
from typing import Iterable, Sequence

import numpy as np
import sentencepiece as spm

from collab import errors

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SEP, ASK, ASK_REDACTED, REDACTED, PRIV_OPEN, PRIV_CLOSE = (
    "<sep>", "<ask>", "<ask_redacted>", "<redacted>", "<priv>", "</priv>")
SPECIAL_TOKENS = (SEP, ASK, ASK_REDACTED, REDACTED, PRIV_OPEN, PRIV_CLOSE)
# SentencePiece algorithms a generated task's tokenizer may use; the default one is what every
# model pretrained before the choice existed uses.
TOKENIZER_TYPES = ("bpe", "unigram")
DEFAULT_TYPE = "bpe"


class TokenizerMismatchError(errors.UserError, ValueError):
  """A checkpoint was written with another tokenizer than the one being used."""


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, *,
                    byte_fallback: bool = False, model_type: str = "bpe") -> "Tokenizer":
  """Trains a SentencePiece model (`model_type`: bpe, unigram, char, ...) on `texts` (split
  into lines) in memory.

  byte_fallback: encode characters unseen in training as bytes instead of <unk> (costs 256
  ids; only useful for open-ended text such as GSM8K).
  """
  lines = [line for t in texts for line in t.split("\n") if line]
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size,
      model_type=model_type, split_digits=True, character_coverage=1.0,
      byte_fallback=byte_fallback, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
      user_defined_symbols=list(SPECIAL_TOKENS),
      # Exact round trips: no NFKC, keep repeated/edge spaces.
      normalization_rule_name="identity", remove_extra_whitespaces=False,
      hard_vocab_limit=False,  # tiny corpora may not support the full vocab
      max_sentence_length=1 << 16, num_threads=2, minloglevel=2)
  return Tokenizer.from_bytes(model.getvalue())


class TokenizerBase:
  """What every tokenizer behind the project interface shares: serialized model bytes, a
  fingerprint of them, and the special ids, looked up in `self._ids` by name."""

  _model_bytes: bytes
  _ids: dict[str, int]

  def _set_model_bytes(self, model_bytes: bytes) -> None:
    self._model_bytes = bytes(model_bytes)
    self._fingerprint = hashlib.sha256(self._model_bytes).hexdigest()

  def save(self, path: str) -> None:
    with open(path, "wb") as f:
      f.write(self._model_bytes)

  @property
  def model_bytes(self) -> bytes:
    return self._model_bytes

  @property
  def fingerprint(self) -> str:
    """sha256 hex of the model bytes: equal fingerprints mean identical id mappings."""
    return self._fingerprint

  pad_id = property(lambda self: self._ids["pad"])
  bos_id = property(lambda self: self._ids["bos"])
  eos_id = property(lambda self: self._ids["eos"])
  unk_id = property(lambda self: self._ids["unk"])
  sep_id = property(lambda self: self._ids["sep"])
  ask_id = property(lambda self: self._ids["ask"])
  ask_redacted_id = property(lambda self: self._ids["ask_redacted"])
  redacted_id = property(lambda self: self._ids["redacted"])
  priv_open_id = property(lambda self: self._ids["priv_open"])
  priv_close_id = property(lambda self: self._ids["priv_close"])


class Tokenizer(TokenizerBase):
  """Line-aware wrapper of a SentencePieceProcessor."""

  def __init__(self, model_bytes: bytes):
    self._set_model_bytes(model_bytes)
    self._sp = spm.SentencePieceProcessor(model_proto=self._model_bytes)
    expected = {PAD_ID: "<pad>", BOS_ID: "<s>", EOS_ID: "</s>", UNK_ID: "<unk>"}
    for i, tok in enumerate(SPECIAL_TOKENS):
      expected[UNK_ID + 1 + i] = tok
    for i, piece in expected.items():
      if self._sp.id_to_piece(i) != piece:
        raise ValueError(f"Not a collab tokenizer: id {i} is {self._sp.id_to_piece(i)!r}, "
                         f"expected {piece!r}")
    self._ids = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID}
    self._ids.update((name, self._sp.piece_to_id(piece)) for name, piece in zip(
        ("sep", "ask", "ask_redacted", "redacted", "priv_open", "priv_close"), SPECIAL_TOKENS))

  @classmethod
  def from_bytes(cls, model_bytes: bytes) -> "Tokenizer":
    return cls(model_bytes)

  @classmethod
  def load(cls, path: str) -> "Tokenizer":
    with open(path, "rb") as f:
      return cls(f.read())

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    """Ids of text (no bos/eos); lines joined by sep_id."""
    return self.encode_batch([text])[0]

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """encode() of many texts with one SentencePiece call (much faster than a loop)."""
    lines = [t.split("\n") for t in texts]
    flat = self._sp.encode([line for ls in lines for line in ls])
    out, pos, sep = [], 0, self.sep_id
    for ls in lines:
      ids = []
      for j in range(len(ls)):
        if j:
          ids.append(sep)
        ids.extend(flat[pos + j])
      pos += len(ls)
      out.append(ids)
    return out

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    """Text of ids: stops at the first eos, drops pad/bos and out-of-range ids."""
    sep, size = self.sep_id, self.vocab_size
    lines, line = [], []
    for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
      if i == EOS_ID:
        break
      if i == sep:
        lines.append(line)
        line = []
      elif 0 <= i < size and i not in (PAD_ID, BOS_ID):
        line.append(i)
    lines.append(line)
    return "\n".join(self._sp.decode(l) for l in lines)

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))


def check_type(tokenizer_type: str) -> str:
  """tokenizer_type, or a ConfigError naming the valid ones."""
  if tokenizer_type not in TOKENIZER_TYPES:
    raise errors.ConfigError(f"tokenizer_type={tokenizer_type!r}; valid: "
                             + ", ".join(TOKENIZER_TYPES))
  return tokenizer_type


def check_fingerprint(expected: str, tok: Tokenizer, where: str) -> None:
  """Raises TokenizerMismatchError unless tok is the tokenizer `where` was written with."""
  if expected != tok.fingerprint:
    raise TokenizerMismatchError(
        f"Tokenizer mismatch for {where}: it was written with tokenizer {expected}, but the "
        f"tokenizer in use is {tok.fingerprint}. Token ids would mean different pieces; load "
        "the tokenizer saved beside it (or retrain with the same one).")
