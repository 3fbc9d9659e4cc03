"""Handoff between an SLM and an LLM with different tokenizers: text at step boundaries.

The SLM's context (full and redacted) stays in SLM ids, as in a same-tokenizer pair. The LLM
reads its own stream: the prompt translated once on the host (`llm_prompts`), then the
solution's text, decoded from SLM ids and encoded with the LLM's tokenizer (`to_llm`) on the
host, through `jax.pure_callback`, once per decision step with calls and only for the routed
rows (collab/mixed_calls.py). The step the LLM writes comes back the same way (`to_slm`), and
the SLM absorbs it with its chunked prefill.

What a step means across tokenizers:
- The unit of exchange is text, line by line: `encode` of both tokenizers encodes each line on
  its own and joins lines with <sep>, so the LLM's stream is always the LLM's own encoding of
  the context's lines, whatever the SLM's tokens were. The whole solution is re-encoded at each
  call (a few hundred characters a row), so a line cut at K tokens and continued in the next
  step is read as one line, as the LLM would have written it.
- K-token steps have no common meaning (K SLM tokens are not K LLM tokens, and a step boundary
  inside a word has no text to cut at), so `granularity='tokens'` is refused.
- A step of the LLM longer than K SLM tokens is cut at K, as any step is; the LLM's stream
  holds what the SLM's context holds, so both sides see the cut step.

Bad input: text one tokenizer cannot write (a character missing from a vocabulary without byte
fallback encodes to <unk>) would reach the other model changed. `make_handoff` checks every
piece of each vocabulary against the other tokenizer and raises TokenizerMismatchError naming
the pieces, unless strict=False. Then, and as a net for text the piece check cannot foresee,
every translation is checked to decode back to the same text; a row whose text does not is
not served (its draft is kept, counted as overflow), never fed changed text. A prompt the LLM
cannot read raises DataError. An <unk> a model wrote crosses as the other side's <unk> (it has
no text to lose; `same_text`).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import re
from typing import Sequence

import numpy as np

from collab import errors
from collab.data import tokenizer as tokenizer_lib
from collab.rollout_types import Specials


@dataclasses.dataclass(frozen=True, eq=False)
class Handoff:
  """Two tokenizers and the shapes of the LLM's side of a mixed pair (Setup.handoff).

  llm_step_tokens (Kl): most tokens the LLM writes per step. llm_solution_tokens (Ls): most
  LLM tokens of solution text its stream holds after the prompt; a row whose solution does not
  fit is not served. Hashable by the tokenizers' fingerprints and the shapes, so a rollout
  compiles once per pair.
  """
  slm_tok: object
  llm_tok: object
  step_tokens: int        # K: most SLM tokens per step (RolloutConfig.step_tokens)
  llm_step_tokens: int
  llm_solution_tokens: int
  # Where the LLM's step ends when steps are non-empty lines (Specials.line_ends / blanks in
  # its ids: a Gemma step ends at '\n\n' too); empty: at its <sep>.
  llm_line_ends: tuple[int, ...] = ()
  llm_blanks: tuple[int, ...] = ()

  def _key(self):
    return (self.slm_tok.fingerprint, self.llm_tok.fingerprint, self.step_tokens,
            self.llm_step_tokens, self.llm_solution_tokens, self.llm_line_ends,
            self.llm_blanks)

  def __hash__(self):
    return hash(self._key())

  def __eq__(self, other):
    return isinstance(other, Handoff) and other._key() == self._key()

  @property
  def llm_specials(self) -> Specials:
    sp = Specials.from_tokenizer(self.llm_tok)
    return sp._replace(stops=tuple(getattr(self.llm_tok, "stop_ids", ())),
                       line_ends=self.llm_line_ends, blanks=self.llm_blanks)

  # -- host functions run by jax.pure_callback (numpy in, numpy out)

  def to_llm(self, src_NxL, start_N, end_N):
    """LLM ids of each row's solution text src[start:end] (SLM ids). Returns (ids_NxLs,
    len_N, ok_N); ok is False where the text does not fit Ls or does not decode back."""
    src_NxL, start_N, end_N = np.asarray(src_NxL), np.asarray(start_N), np.asarray(end_N)
    N, Ls = src_NxL.shape[0], self.llm_solution_tokens
    texts = [self.slm_tok.decode(src_NxL[n, start_N[n]:end_N[n]]) for n in range(N)]
    ids_NxLs = np.full((N, Ls), self.llm_tok.pad_id, np.int32)
    len_N, ok_N = np.zeros((N,), np.int32), np.zeros((N,), bool)
    for n, ids in enumerate(self.llm_tok.encode_batch(texts)):
      if len(ids) <= Ls and same_text(self.llm_tok.decode(ids), texts[n]):
        ids_NxLs[n, :len(ids)] = ids
        len_N[n], ok_N[n] = len(ids), True
    return ids_NxLs, len_N, ok_N

  def to_slm(self, step_NxKl, step_len_N, src_NxLl, src_len_N, ctx_NxL, prompt_len_N,
             ctx_len_N):
    """SLM ids of each row's LLM step (at most K; an <eos> the LLM wrote stays one).

    A step may continue a line (the SLM's last step was cut at K tokens): its text is read
    after the LLM's unfinished line in its stream src (a step decoded alone would lose the
    space a word-start piece begins with), and encoded for the SLM after the SLM context's
    unfinished line, so the line is tokenized as one. Returns (ids_NxK, len_N, ok_N); ok is
    False where no SLM ids make the context read as it did plus the step's text, or the step
    is empty."""
    step_NxKl, step_len_N = np.asarray(step_NxKl), np.asarray(step_len_N)
    src_NxLl, src_len_N = np.asarray(src_NxLl), np.asarray(src_len_N)
    ctx_NxL, prompt_len_N, ctx_len_N = (np.asarray(ctx_NxL), np.asarray(prompt_len_N),
                                        np.asarray(ctx_len_N))
    slm, llm, K = self.slm_tok, self.llm_tok, self.step_tokens
    ends = {llm.eos_id, *getattr(llm, "stop_ids", ())}
    N = step_NxKl.shape[0]
    texts, ended, lines = [], [], []
    for n in range(N):
      step = step_NxKl[n, :step_len_N[n]].tolist()
      ended.append(bool(step) and step[-1] in ends)
      texts.append(_text_after(llm, _unfinished_line(src_NxLl[n, :src_len_N[n]], llm.sep_id),
                               step[:-1] if ended[-1] else step))
      lines.append(_unfinished_line(ctx_NxL[n, prompt_len_N[n]:ctx_len_N[n]], slm.sep_id))
    ids_N = self._continue_lines(lines, texts)
    ids_NxK = np.full((N, K), slm.pad_id, np.int32)
    len_N, ok_N = np.zeros((N,), np.int32), np.zeros((N,), bool)
    for n, ids in enumerate(ids_N):
      if ids is None:
        continue
      ids = (ids + [slm.eos_id] if ended[n] else ids)[:K]
      if ids:
        ids_NxK[n, :len(ids)] = ids
        len_N[n], ok_N[n] = len(ids), True
    return ids_NxK, len_N, ok_N

  def _continue_lines(self, lines: list[list[int]], texts: list[str]) -> list[list[int] | None]:
    """SLM ids of each text written after its unfinished line, such that the line then reads
    as the line's text followed by the text; None when none is found. Tried in order: the
    line's text and the text encoded together, from the token that starts where the line's
    text ends (the text tokenized as part of the line), then the text alone (fine at a line
    start). (Batched: one SentencePiece call costs about as much as a hundred lines.)"""
    slm = self.slm_tok
    heads = [slm.decode(line) if line else "" for line in lines]
    joined = slm.encode_batch([head + text for head, text in zip(heads, texts)])
    alone = slm.encode_batch(texts)
    out = []
    for line, head, text, whole, plain in zip(lines, heads, texts, joined, alone):
      tries = [plain]
      if line:
        # The first k whose text covers the line's: the line's own ids when they are how the
        # tokenizer writes it (no decoding), else a bisection (text grows with k).
        k = len(line) if whole[:len(line)] == line else bisect.bisect_left(
            range(len(whole) + 1), len(head), key=lambda k: len(slm.decode(whole[:k])))
        tries = [whole[k:]] + tries
      out.append(next((ids for ids in tries if same_text(slm.decode(line + ids), head + text)),
                      None))
    return out


# SentencePiece writes an <unk> as this, with a space on each side.
UNK_SURFACE = "\u2047"
_UNK_RE = re.compile(r"\s*" + UNK_SURFACE + r"\s*")


def same_text(got: str, want: str) -> bool:
  """Whether `got` (text after a round trip) is `want`. An <unk> a model wrote has no text to
  lose: it crosses as the other tokenizer's <unk>, the spaces SentencePiece writes around it
  aside. A character one tokenizer cannot write is not an <unk> in `want`, so it never
  passes."""
  return got == want or _UNK_RE.sub(UNK_SURFACE, got) == _UNK_RE.sub(UNK_SURFACE, want)


def _text_after(tok, line: list[int], ids: list[int]) -> str:
  """The text `ids` add after `line` (ids of one unfinished line)."""
  if not line:
    return tok.decode(ids)
  head, whole = tok.decode(line), tok.decode(line + ids)
  return whole[len(head):] if whole.startswith(head) else tok.decode(ids)


def _unfinished_line(solution_ids, sep: int) -> list[int]:
  """The ids after the last `sep` (all of them without one)."""
  ids = [int(i) for i in solution_ids]
  seps = [j for j, i in enumerate(ids) if i == sep]
  return ids[seps[-1] + 1:] if seps else ids


def unexpressible(src, dst, limit: int = 8) -> list[tuple[int, str, str]]:
  """Pieces of `src`'s vocabulary whose text `dst` cannot write: (id, text, what dst's
  encoding decodes to), at most `limit`. Special and byte pieces are skipped (specials are
  markup both tokenizers share by name; bytes are parts of characters)."""
  skip = {src.pad_id, src.bos_id, src.eos_id, src.unk_id, src.sep_id, src.ask_id,
          src.ask_redacted_id, src.redacted_id, src.priv_open_id, src.priv_close_id,
          *getattr(src, "stop_ids", ())}
  ids = [i for i in range(src.vocab_size) if i not in skip
         and not _is_byte_piece(src.id_to_piece(i))]
  texts = [src.decode([i]) for i in ids]
  bad = []
  for i, text, enc in zip(ids, texts, dst.encode_batch(texts)):
    back = dst.decode(enc)
    if back != text:
      bad.append((i, text, back))
      if len(bad) >= limit:
        break
  return bad


def _is_byte_piece(piece: str) -> bool:
  return len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")


def check_expressible(slm_tok, llm_tok) -> None:
  """Raises TokenizerMismatchError when either tokenizer has pieces the other cannot write."""
  for name, src, dst, other in (("SLM", slm_tok, llm_tok, "LLM"),
                                ("LLM", llm_tok, slm_tok, "SLM")):
    bad = unexpressible(src, dst)
    if bad:
      shown = ", ".join(f"{text!r} (id {i}) -> {back!r}" for i, text, back in bad[:4])
      raise tokenizer_lib.TokenizerMismatchError(
          f"The {other}'s tokenizer cannot write the text of some {name} tokens: {shown}"
          f"{' ...' if len(bad) > 4 else ''}. Text with them would reach the {other} changed. "
          "Use tokenizers that cover each other's characters (byte fallback does), or build "
          "the handoff with strict=False: a row whose text does not survive the round trip "
          "then keeps the SLM's draft (counted as overflow).")


def step_ratio(slm_tok, llm_tok, texts: Sequence[str]) -> float:
  """LLM tokens per SLM token over all of `texts` (at least 1.0; 1.0 without texts): the
  LLM's step holds about as much text as the SLM's, on average."""
  slm_n = sum(len(ids) for ids in slm_tok.encode_batch(list(texts)))
  llm_n = sum(len(ids) for ids in llm_tok.encode_batch(list(texts)))
  return max(1.0, llm_n / slm_n) if slm_n else 1.0


def check_granularity(granularity: str) -> None:
  """ConfigError unless steps are lines: the only unit two tokenizers share."""
  if granularity != "line":
    raise errors.ConfigError(
        "rollout.granularity='tokens' needs one tokenizer: K SLM tokens are not K LLM "
        "tokens, and a cut inside a word has no text to hand over. Pairs with different "
        "tokenizers exchange whole lines (granularity='line').")


def make_handoff(slm_tok, llm_tok, *, step_tokens: int, num_steps: int, granularity: str,
                 texts: Sequence[str] = (), llm_step_tokens: int = 0,
                 stream_margin: float = 1.0, strict: bool = True,
                 llm_line_ends: tuple[int, ...] = (), llm_blanks: tuple[int, ...] = ()
                 ) -> Handoff | None:
  """The handoff of a pair, or None when both tokenizers are the same (the rollout then
  exchanges ids, as before). texts: sample solution lines; the LLM's step is sized by their
  LLM tokens per SLM token (llm_step_tokens overrides it), its solution stream by num_steps
  such steps times stream_margin (room for text denser than the samples, paid for in the
  LLM's cache length: a margin of 1.5 cost the call-rate benchmark 8% at rate 1/8).
  llm_line_ends / llm_blanks: see Handoff."""
  if slm_tok.fingerprint == llm_tok.fingerprint:
    return None
  check_granularity(granularity)
  if strict:
    check_expressible(slm_tok, llm_tok)
  ratio = step_ratio(slm_tok, llm_tok, texts)
  Kl = llm_step_tokens or math.ceil(step_tokens * ratio)
  Ls = math.ceil(num_steps * max(Kl, step_tokens) * stream_margin)
  return Handoff(slm_tok, llm_tok, step_tokens, Kl, Ls, tuple(llm_line_ends),
                 tuple(llm_blanks))


def llm_prompts(batch: dict[str, np.ndarray], handoff: Handoff, multiple: int = 16
                ) -> dict[str, np.ndarray]:
  """`batch` with the LLM's prompts (full and redacted), translated from the SLM's prompt ids:
  llm_prompt_BxP / llm_prompt_len_B and llm_redacted_prompt_BxP / llm_redacted_prompt_len_B,
  <bos> of the LLM first; the width rounded up to `multiple`. Raises DataError for a prompt
  whose text the LLM's tokenizer cannot write."""
  slm, llm = handoff.slm_tok, handoff.llm_tok
  rows = {}
  for key in ("prompt", "redacted_prompt"):
    ids_BxP, len_B = np.asarray(batch[f"{key}_BxP"]), np.asarray(batch[f"{key}_len_B"])
    texts = [slm.decode(ids_BxP[b, :len_B[b]]) for b in range(len(len_B))]
    encoded = llm.encode_batch(texts)
    for b, (text, ids) in enumerate(zip(texts, encoded)):
      if llm.decode(ids) != text:
        raise errors.DataError(
            f"Row {b}'s {key.replace('_', ' ')} has text the LLM's tokenizer cannot write: "
            f"{text!r} reads back as {llm.decode(ids)!r}")
    rows[key] = [[llm.bos_id] + ids for ids in encoded]
  width = max(len(r) for rs in rows.values() for r in rs)
  return with_llm_prompts(batch, llm.pad_id, rows["prompt"], rows["redacted_prompt"],
                          -(-width // multiple) * multiple)


def with_llm_prompts(batch: dict[str, np.ndarray], pad_id: int, prompts: Sequence[list[int]],
                     redacted: Sequence[list[int]], width: int) -> dict[str, np.ndarray]:
  """`batch` with the LLM's prompt ids (one list per row, full and redacted) padded to
  `width` (a static shape: the LLM's stream is `width` + llm_solution_tokens long). Pairs
  built from a config write each side's prompt with its own tokenizer and template
  (collab/pair.py); ValueError for a prompt longer than `width`."""
  out = dict(batch)
  for key, rs in (("prompt", prompts), ("redacted_prompt", redacted)):
    arr = np.full((len(rs), width), pad_id, np.int32)
    for b, r in enumerate(rs):
      if len(r) > width:
        raise ValueError(f"An LLM {key.replace('_', ' ')} of {len(r)} tokens does not fit in "
                         f"{width}: raise the limit (llm_prompt_len, default prompt_len)")
      arr[b, :len(r)] = r
    out[f"llm_{key}_BxP"] = arr
    out[f"llm_{key}_len_B"] = np.array([len(r) for r in rs], np.int32)
  return out
