"""The tokenizer a GGUF file describes in its metadata, as a collab HFTokenizer.

    tok = from_metadata(gguf_io.open_gguf(path).metadata, name=path)
    tok.encode("text"), tok.chat_template, tok.add_bos

A GGUF file has no tokenizer.json: it stores the vocabulary (`tokenizer.ggml.tokens`), each
token's type (normal, control, user-defined, byte, ...), and either BPE merges (model 'gpt2':
byte-level BPE, e.g. SmolLM2) or SentencePiece scores (model 'llama', e.g. Gemma 3), plus the
special ids. This module rebuilds the tokenizer as a `tokenizers` JSON, the way transformers
builds it from the same file (integrations/gguf, checked against it on a few hundred strings in
tests/test_gguf*.py), and hands that to HFTokenizer's 'tokenizers' backend:

- gpt2: tokens spelled in GPT-2's byte alphabet, the file's merges, a pre-tokenizer split chosen
  by `tokenizer.ggml.pre` (llama.cpp's regexes; 'smollm' splits digits one by one first, as
  llama.cpp does), ByteLevel decoding.
- llama, Gemma architectures: BPE with byte fallback over the whole text with spaces written
  as '▁'. The file has no merges: they are rebuilt from the vocabulary, ranked by the tokens'
  order in the file (Gemma's merge order). Whitespace-only tokens, which llama.cpp stores with
  real spaces, are spelled with '▁' again.
- llama, other architectures (Llama 2 style): the same with the file's scores as ranks and a
  '▁' prepended to the text (unless `tokenizer.ggml.add_space_prefix` is false).

Control tokens (type 3, e.g. <|im_end|>, <end_of_turn>) match whole as special tokens and
user-defined ones (type 4, e.g. Gemma's '\\n\\n') as plain added tokens. Special ids come from
`tokenizer.ggml.{bos,eos,padding,unknown}_token_id`; `chat_template` is
`tokenizer.chat_template` (None when absent) and `add_bos` is `tokenizer.ggml.add_bos_token`
(llama.cpp's default when absent: True for 'llama' tokenizers, False for 'gpt2').
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from collab.data import hf_tokenizer

CONTROL, USER_DEFINED = 3, 4

# Pre-tokenizer regexes of llama.cpp (llama-vocab.cpp) by `tokenizer.ggml.pre`.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_SPLITS = {"default": None, "gpt-2": None, "gpt2": None, "smollm": "digits",
              "llama3": _LLAMA3, "llama-bpe": _LLAMA3, "llama-v3": _LLAMA3, "qwen2": _QWEN2}


class GGUFTokenizerError(ValueError):
  """A GGUF tokenizer this module cannot rebuild exactly."""


def from_metadata(meta: Mapping[str, Any], name: str = "") -> hf_tokenizer.HFTokenizer:
  """An HFTokenizer of a GGUF file's metadata (gguf_io.open_gguf(path).metadata), with
  `chat_template` and `add_bos` set."""
  where = name or "GGUF file"
  model = meta.get("tokenizer.ggml.model")
  tokens = meta.get("tokenizer.ggml.tokens")
  if model is None or tokens is None:
    raise GGUFTokenizerError(f"{where}: no tokenizer in the metadata (tokenizer.ggml.model / "
                             "tokenizer.ggml.tokens)")
  arch = str(meta.get("general.architecture", ""))
  if model == "gpt2":
    spec = _byte_level(meta, where)
  elif model == "llama":
    spec = _sentencepiece_bpe(meta, gemma=arch.startswith("gemma"))
  else:
    raise GGUFTokenizerError(f"{where}: tokenizer model {model!r} is not supported ('gpt2', "
                             "'llama')")
  declared = {}
  for ours, theirs in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                       ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
    i = meta.get(f"tokenizer.ggml.{theirs}")
    if i is not None and 0 <= int(i) < len(tokens):
      declared[ours] = int(i)
  tok = hf_tokenizer.HFTokenizer(hf_tokenizer._spec_tokenizers(spec, declared),  # pylint: disable=protected-access
                                 name=name)
  tok.chat_template = meta.get("tokenizer.chat_template")
  tok.add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", model == "llama"))
  return tok


def _added_tokens(tok, tokens, types, vocab, byte_alphabet=None):
  import tokenizers  # pylint: disable=g-import-not-at-top
  types = list(types or ())
  control = [tokenizers.AddedToken(t, normalized=False, special=True)
             for t, k in zip(tokens, types)
             if k == CONTROL and (byte_alphabet is None or set(t) <= byte_alphabet)]
  if control:
    tok.add_special_tokens(control)
  user = [tokenizers.AddedToken(t, normalized=False, special=False)
          for t, k in zip(tokens, types) if k == USER_DEFINED and t in vocab]
  if user:
    tok.add_tokens(user)


def _byte_level(meta: Mapping[str, Any], where: str) -> dict:
  import tokenizers  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
  pre = meta.get("tokenizer.ggml.pre", "default")
  if pre not in PRE_SPLITS:
    raise GGUFTokenizerError(f"{where}: tokenizer.ggml.pre {pre!r} is not supported (its "
                             f"pre-tokenizer split is unknown here); supported: "
                             f"{sorted(PRE_SPLITS)}")
  alphabet = _bytes_to_unicode()
  letters = set(alphabet.values())
  tokens = list(meta["tokenizer.ggml.tokens"])
  vocab = {(t if set(t) <= letters else "".join(alphabet[b] for b in t.encode("utf-8"))): i
           for i, t in enumerate(tokens)}
  merges = [tuple(m.split(" ")) for m in meta.get("tokenizer.ggml.merges") or ()]
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None,
                                        continuing_subword_prefix="", end_of_word_suffix="",
                                        fuse_unk=False))
  split = PRE_SPLITS[pre]
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None)
  if split == "digits":
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  elif split is not None:
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(tokenizers.Regex(split), behavior="isolated"), byte_level])
  else:
    tok.pre_tokenizer = byte_level
  tok.decoder = decoders.ByteLevel()
  _added_tokens(tok, tokens, meta.get("tokenizer.ggml.token_type"), vocab, letters)
  return json.loads(tok.to_str())


def _sentencepiece_bpe(meta: Mapping[str, Any], gemma: bool) -> dict:
  import tokenizers  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, normalizers, pre_tokenizers  # pylint: disable=g-import-not-at-top
  tokens = list(meta["tokenizer.ggml.tokens"])
  unk_id = meta.get("tokenizer.ggml.unknown_token_id")
  unk = tokens[int(unk_id)] if unk_id is not None else "<unk>"
  if gemma:
    spelled = ["\u2581" * len(t) if " " in t and not t.strip() else t for t in tokens]
    ranks = {t: -i for i, t in enumerate(spelled)}
  else:
    spelled = tokens
    scores = meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    ranks = dict(zip(spelled, (float(s) for s in scores)))
  vocab = {t: i for i, t in enumerate(spelled)}
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=_merges(vocab, ranks),
                                        fuse_unk=True, byte_fallback=True, dropout=None,
                                        unk_token=unk))
  steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
  if gemma:
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
  else:
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="first" if prefix else "never", split=False)
    if prefix:
      steps.append(decoders.Strip(content=" ", left=1))
  tok.decoder = decoders.Sequence(steps)
  _added_tokens(tok, tokens, meta.get("tokenizer.ggml.token_type"), vocab)
  return json.loads(tok.to_str())


def _merges(vocab: Mapping[str, int], ranks: Mapping[str, float]) -> list[tuple[str, str]]:
  """BPE merges implied by a vocabulary: every split of a token into two tokens, best merged
  token first (ties: longer left piece, then longer right piece, then vocabulary order), as
  transformers' `generate_merges` orders them."""
  merges = []
  for piece, score in ranks.items():
    local = [(piece[:j], piece[j:], score) for j in range(1, len(piece))
             if piece[:j] in vocab and piece[j:] in vocab]
    if len(local) > 1:
      local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
    merges += local
  merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
  return [(l, r) for l, r, _ in merges]


def _bytes_to_unicode() -> dict[int, str]:
  """GPT-2's map from bytes to printable characters."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1)))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return dict(zip(bs, (chr(c) for c in cs)))


def check_against_transformers(tok: hf_tokenizer.HFTokenizer, ref, texts) -> list[str]:
  """Texts (without newlines, or with: both encode whole) whose ids differ between `tok`'s
  backend and a transformers tokenizer `ref`; empty when they agree."""
  ours = tok._encode_plain(list(texts))  # pylint: disable=protected-access
  return [t for t, ids in zip(texts, ours) if ids != ref.encode(t, add_special_tokens=False)]
