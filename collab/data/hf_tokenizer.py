"""Tokenizers of Hugging Face checkpoints behind the interface of collab.data.tokenizer.Tokenizer.

    tok = HFTokenizer.from_dir("path/to/Qwen2.5-0.5B")   # tokenizer.json, else tokenizer.model
    check_same_tokenizer(slm_tok, llm_tok, "Qwen2.5-0.5B", "Qwen2.5-7B")

Two backends: `tokenizer.json` through the `tokenizers` library (Llama 3, Qwen2, most current
checkpoints) and a SentencePiece `tokenizer.model` (Llama 2 style). Special ids come from
tokenizer_config.json (bos/eos/pad/unk tokens), then config.json's ids.

What the rollout needs, mapped onto a foreign vocabulary:
- sep (the step boundary) is the newline token; as in the project tokenizer, `encode` encodes
  each line on its own and joins lines with it, so a step boundary is always exactly that token
  (a native encoder may merge a newline into a neighbour, e.g. '.\\n').
- pad must differ from eos (the rollout tells a line's end from padding): the pad token, else a
  pad-like piece, else unk, else a reserved special token, else an id past the vocabulary.
  A checkpoint without bos (Qwen2) uses its eos (<|endoftext|>, its document separator) as bos.
- The task's markup (<ask>, <ask_redacted>, <redacted>, <priv>, </priv>) keeps the vocabulary's
  own piece when it has one, else takes a reserved special token (Llama 3 has 250), else an id
  past the vocabulary (Qwen2.5's embedding has ~270 spare rows); `vocab_size` counts them. An
  imported pair whose embedding lacks those rows gets them added (collab/hf_pair.py). `encode` maps the
  markup strings in text to these ids, `decode` maps them back.

`model_bytes` is a canonical, self-contained serialization (backend data, no padding or
truncation settings, and the special ids); `fingerprint` is its sha256, so equal fingerprints
mean identical id mappings even when two checkpoint directories differ in irrelevant settings.
"""
from __future__ import annotations

import base64
import json
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from collab import errors
from collab.data import tokenizer as tokenizer_lib

FORMAT = "collab-hf-tokenizer/1"
MARKUP = {"ask": tokenizer_lib.ASK, "ask_redacted": tokenizer_lib.ASK_REDACTED,
          "redacted": tokenizer_lib.REDACTED, "priv_open": tokenizer_lib.PRIV_OPEN,
          "priv_close": tokenizer_lib.PRIV_CLOSE}
_PAD_LIKE = ("<pad>", "<|pad|>", "<|finetune_right_pad_id|>", "[PAD]")
_RESERVED = re.compile(r"^<\|reserved_special_token_(\d+)\|>$")
# Settings of tokenizer.json that do not change what `encode(text, add_special_tokens=False)`
# returns; left out of the fingerprint.
_IRRELEVANT = ("version", "truncation", "padding", "post_processor")


class HFTokenizer(tokenizer_lib.TokenizerBase):
  """A checkpoint's tokenizer with the project Tokenizer's methods and special-id properties."""

  def __init__(self, model_bytes: bytes, name: str = ""):
    spec = json.loads(model_bytes)
    if spec.get("format") != FORMAT:
      raise ValueError(f"Not a {FORMAT} serialization")
    self._set_model_bytes(model_bytes)
    self.name = name or f"hf tokenizer {self._fingerprint[:12]}"
    self.kind = spec["kind"]
    self._ids: dict[str, int] = {k: int(v) for k, v in spec["ids"].items()}
    if self.kind == "tokenizers":
      import tokenizers  # pylint: disable=g-import-not-at-top (optional dependency)
      self._tok = tokenizers.Tokenizer.from_str(json.dumps(spec["model"]))
      self._base_size = self._tok.get_vocab_size(with_added_tokens=True)
    elif self.kind == "sentencepiece":
      import sentencepiece as spm  # pylint: disable=g-import-not-at-top
      self._sp = spm.SentencePieceProcessor(model_proto=base64.b64decode(spec["model"]))
      self._base_size = self._sp.get_piece_size()
    else:
      raise ValueError(f"Unknown tokenizer backend {self.kind!r}")
    self._markup_ids = {self._ids[k]: s for k, s in MARKUP.items()}
    self._split = re.compile("(" + "|".join(re.escape(s) for s in MARKUP.values()) + ")")
    # Set by loaders that know them (collab.data.gguf_tokenizer, from_dir); part of
    # model_bytes only where a pair's prompts depend on them (collab/data/prompts.py).
    self.chat_template: str | None = spec.get("chat_template")
    self.add_bos: bool | None = spec.get("add_bos")

  # -- construction

  @classmethod
  def from_bytes(cls, model_bytes: bytes, name: str = "") -> HFTokenizer:
    return cls(model_bytes, name)

  @classmethod
  def load(cls, path: str) -> HFTokenizer:
    """A tokenizer saved with `save`, or a checkpoint directory (see from_dir)."""
    if os.path.isdir(path):
      return cls.from_dir(path)
    with open(path, "rb") as f:
      return cls(f.read(), name=path)

  @classmethod
  def from_dir(cls, model_dir: str) -> HFTokenizer:
    """The tokenizer of a checkpoint directory: tokenizer.json, else tokenizer.model."""
    tok_json = os.path.join(model_dir, "tokenizer.json")
    spm_path = os.path.join(model_dir, "tokenizer.model")
    declared = _declared_specials(model_dir)
    if os.path.exists(tok_json):
      with open(tok_json, encoding="utf-8") as f:
        model = json.load(f)
      tok = cls(_spec_tokenizers(model, declared), name=model_dir)
    elif os.path.exists(spm_path):
      with open(spm_path, "rb") as f:
        tok = cls(_spec_sentencepiece(f.read(), declared), name=model_dir)
    else:
      raise FileNotFoundError(f"No tokenizer.json or tokenizer.model in {model_dir}")
    tok.chat_template, tok.add_bos = _chat_settings(model_dir)
    return tok

  # -- the project Tokenizer interface

  @property
  def stop_ids(self) -> tuple[int, ...]:
    """Other ids that end a solution (the model's own eos where a chat turn's end is eos)."""
    return (self._ids["stop"],) if "stop" in self._ids else ()

  @property
  def vocab_size(self) -> int:
    """Ids in use, markup ids past the backend's vocabulary included."""
    return max(self._base_size, max(self._ids.values()) + 1)

  def encode(self, text: str) -> list[int]:
    """Ids of text (no bos/eos); lines encoded separately and joined by sep_id."""
    return self.encode_batch([text])[0]

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    # Every text -> lines -> markup-separated pieces; one backend call for all plain pieces.
    structure, plain = [], []
    for text in texts:
      lines = []
      for line in text.split("\n"):
        parts = []
        for part in self._split.split(line):
          if part in _MARKUP_NAME:
            parts.append(self._ids[_MARKUP_NAME[part]])
          elif part:  # a plain piece: its index into `plain`
            parts.append(("plain", len(plain)))
            plain.append(part)
        lines.append(parts)
      structure.append(lines)
    encoded = self._encode_plain(plain)
    out = []
    for lines in structure:
      ids = []
      for j, parts in enumerate(lines):
        if j:
          ids.append(self.sep_id)
        for p in parts:
          ids.extend(encoded[p[1]] if isinstance(p, tuple) else [p])
      out.append(ids)
    return out

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    """Text of ids: stops at the first eos (after any leading bos), drops pad/bos."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
    while ids and ids[0] == self.bos_id:
      ids = ids[1:]
    lines, line, size = [], [], self.vocab_size
    for i in ids:
      if i == self.eos_id:
        break
      if i == self.sep_id:
        lines.append(line)
        line = []
      elif 0 <= i < size and i not in (self.pad_id, self.bos_id):
        line.append(i)
    lines.append(line)
    return "\n".join(self._decode_line(l) for l in lines)

  def id_to_piece(self, i: int) -> str:
    i = int(i)
    if i in self._markup_ids:
      return self._markup_ids[i]
    if self.kind == "tokenizers":
      return self._tok.id_to_token(i)
    return self._sp.id_to_piece(i)

  def describe(self) -> str:
    return (f"{self.name} ({self.kind}, {self.vocab_size} ids, fingerprint "
            f"{self._fingerprint[:12]})")

  # -- backend

  def _encode_plain(self, texts: list[str]) -> list[list[int]]:
    if not texts:
      return []
    if self.kind == "tokenizers":
      return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]
    return self._sp.encode(texts)

  def _decode_line(self, ids: list[int]) -> str:
    out, run = [], []
    for i in ids + [None]:
      if i is None or i in self._markup_ids:
        if run:
          out.append(self._tok.decode(run, skip_special_tokens=False)
                     if self.kind == "tokenizers" else self._sp.decode(run))
          run = []
        if i is not None:
          out.append(self._markup_ids[i])
      else:
        run.append(i)
    return "".join(out)


_MARKUP_NAME = {s: k for k, s in MARKUP.items()}


def _declared_specials(model_dir: str) -> dict[str, Any]:
  """bos/eos/pad/unk as tokenizer_config.json names them (strings), else config.json ids."""
  out: dict[str, Any] = {}
  for file in ("tokenizer_config.json", "special_tokens_map.json"):
    path = os.path.join(model_dir, file)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
      for k in ("bos", "eos", "pad", "unk"):
        v = cfg.get(f"{k}_token")
        v = v.get("content") if isinstance(v, dict) else v
        if isinstance(v, str) and k not in out:
          out[k] = v
  for file in ("generation_config.json", "config.json"):
    path = os.path.join(model_dir, file)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
      for k in ("bos", "eos", "pad"):
        v = cfg.get(f"{k}_token_id")
        v = v[0] if isinstance(v, list) and v else v
        if isinstance(v, int) and k not in out:
          out[k] = v
  return out


def _chat_settings(model_dir: str) -> tuple[str | None, bool | None]:
  """(chat template, add_bos_token) of tokenizer_config.json (or chat_template.jinja)."""
  template, add_bos = None, None
  path = os.path.join(model_dir, "tokenizer_config.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      cfg = json.load(f)
    template = cfg.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
      template = next((t.get("template") for t in template if t.get("name") == "default"),
                      None)
    add_bos = cfg.get("add_bos_token")
  jinja = os.path.join(model_dir, "chat_template.jinja")
  if template is None and os.path.exists(jinja):
    with open(jinja, encoding="utf-8") as f:
      template = f.read()
  return (template if isinstance(template, str) else None,
          add_bos if isinstance(add_bos, bool) else None)


def _resolve(declared: Mapping[str, Any], piece_to_id, pieces_by_id: Mapping[int, str],
             size: int, newline: int | None) -> dict[str, int]:
  """Special ids: declared ones, the fallbacks of the module docstring, then the markup."""
  def lookup(v):
    if isinstance(v, int):
      return v
    i = piece_to_id(v) if isinstance(v, str) else None
    return i if i is not None and i >= 0 else None

  ids = {k: lookup(declared.get(k)) for k in ("bos", "eos", "pad", "unk")}
  if ids["eos"] is None:
    raise errors.CheckpointError("The tokenizer has no eos token (tokenizer_config.json "
                                 "eos_token or config.json eos_token_id)")
  if newline is None:
    raise errors.CheckpointError("The newline does not encode to a single token: steps cannot "
                                 "be lines")
  if ids["bos"] is None:
    ids["bos"] = ids["eos"]
  if ids["unk"] is None:
    ids["unk"] = -1
  ids["sep"] = newline
  reserved = sorted((int(m.group(1)), i) for i, p in pieces_by_id.items()
                    if (m := _RESERVED.match(p)))
  free = [i for _, i in reserved if i not in ids.values()]
  next_free = [size]

  def allocate() -> int:  # a reserved special token, else an id past the vocabulary
    if free:
      return free.pop(0)
    next_free[0] += 1
    return next_free[0] - 1

  # The rollout tells a reference line's end (eos) from its padding: pad must differ from eos.
  if ids["pad"] is None or ids["pad"] == ids["eos"]:
    pad_like = [lookup(p) for p in _PAD_LIKE]
    pad_like = [i for i in pad_like if i is not None and i != ids["eos"]]
    ids["pad"] = (pad_like[0] if pad_like else ids["unk"] if ids["unk"] >= 0
                  else allocate())
    if ids["pad"] in free:
      free.remove(ids["pad"])
  for name, piece in MARKUP.items():
    i = lookup(piece)
    ids[name] = int(i) if i is not None and i != ids["unk"] else allocate()
  return ids


def _spec_tokenizers(model: dict, declared: Mapping[str, Any]) -> bytes:
  import tokenizers  # pylint: disable=g-import-not-at-top (optional dependency)
  model = {k: v for k, v in model.items() if k not in _IRRELEVANT}
  tok = tokenizers.Tokenizer.from_str(json.dumps(model))
  nl = tok.encode("\n", add_special_tokens=False).ids
  pieces = {i: p for p, i in tok.get_vocab(with_added_tokens=True).items()}
  # Ids may be sparse (a vocabulary that spells two ids alike keeps one): ids allocated for
  # markup start past the largest id, not at the count.
  size = max(tok.get_vocab_size(with_added_tokens=True), max(pieces, default=-1) + 1)
  ids = _resolve(declared, tok.token_to_id, pieces, size, nl[0] if len(nl) == 1 else None)
  return _canonical({"format": FORMAT, "kind": "tokenizers", "model": model, "ids": ids})


def _spec_sentencepiece(proto: bytes, declared: Mapping[str, Any]) -> bytes:
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  sp = spm.SentencePieceProcessor(model_proto=proto)
  declared = dict(declared)
  for k, i in (("bos", sp.bos_id()), ("eos", sp.eos_id()), ("pad", sp.pad_id()),
               ("unk", sp.unk_id())):
    if k not in declared and i >= 0:
      declared[k] = int(i)
  size = sp.get_piece_size()

  def piece_to_id(p):
    i = sp.piece_to_id(p)
    return None if i == sp.unk_id() and p != sp.id_to_piece(i) else i

  # SentencePiece writes a newline as its byte piece (byte_fallback), or not at all.
  nl = piece_to_id("<0x0A>")
  nl = nl if nl is not None and sp.encode("\n") in ([nl], [piece_to_id("▁"), nl]) else None
  pieces = {i: sp.id_to_piece(i) for i in range(size)}
  ids = _resolve(declared, piece_to_id, pieces, size, nl)
  return _canonical({"format": FORMAT, "kind": "sentencepiece",
                     "model": base64.b64encode(proto).decode(), "ids": ids})


def _canonical(obj) -> bytes:
  return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_any(path: str):
  """A project Tokenizer (sentencepiece file written by collab), an HFTokenizer saved with
  `save`, or the tokenizer of an HF checkpoint directory."""
  if os.path.isdir(path):
    return HFTokenizer.from_dir(path)
  with open(path, "rb") as f:
    data = f.read()
  if data.lstrip().startswith(b"{"):
    return HFTokenizer(data, name=path)
  return tokenizer_lib.Tokenizer(data)


def check_same_tokenizer(a, b, a_name: str, b_name: str) -> None:
  """Raises TokenizerMismatchError, naming both, unless a and b map ids identically."""
  if a.fingerprint == b.fingerprint:
    return
  detail = ""
  if isinstance(a, HFTokenizer) and isinstance(b, HFTokenizer):
    detail = f" {a.describe()} vs {b.describe()}."
    for i in range(min(a.vocab_size, b.vocab_size)):
      try:
        pa, pb = a.id_to_piece(i), b.id_to_piece(i)
      except Exception:  # pylint: disable=broad-except (ids past a backend's vocabulary)
        break
      if pa != pb:
        detail += f" First difference: id {i} is {pa!r} vs {pb!r}."
        break
  raise tokenizer_lib.TokenizerMismatchError(
      f"{a_name} and {b_name} use different tokenizers (fingerprints {a.fingerprint[:12]} "
      f"vs {b.fingerprint[:12]}): a pair must share one, since the LLM's tokens are fed to the "
      f"SLM as ids.{detail}")


def check_fits(tok, vocab_size: int, where: str) -> None:
  """Raises CheckpointError (a ValueError) when the tokenizer uses ids past a model's
  embedding table."""
  if tok.vocab_size > vocab_size:
    raise errors.CheckpointError(
        f"{where}: the tokenizer uses {tok.vocab_size} ids (its vocabulary plus the task's "
        f"markup tokens) but the model's embedding has only {vocab_size} rows")
