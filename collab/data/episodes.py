"""Problems as fixed-shape rollout batches (see collab/rollout.py for how each array is used)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from collab.data import prompts as prompts_lib
from collab.data import task as task_lib


def _pad_rows(rows: Sequence[Sequence[int]], width: int, pad: int, what: str) -> np.ndarray:
  out = np.full((len(rows), width), pad, np.int32)
  for i, r in enumerate(rows):
    if len(r) > width:
      raise ValueError(f"{what} of {len(r)} tokens does not fit in {width}: raise the limit")
    out[i, :len(r)] = r
  return out


def reference_steps(tok, steps: Sequence[str], granularity: str, step_tokens: int
                    ) -> list[list[int]]:
  """The reference solution cut into rollout steps: lines (each with its <sep>, the last with
  <eos>) or chunks of `step_tokens` tokens."""
  if granularity == "line":
    ids = [tok.encode(line) + [tok.sep_id] for line in steps]
    ids[-1][-1] = tok.eos_id
    return [s[:step_tokens] for s in ids]
  flat = tok.encode("\n".join(steps)) + [tok.eos_id]
  return [flat[i:i + step_tokens] for i in range(0, len(flat), step_tokens)]


def make_episodes(records: Sequence[dict[str, Any]], tok, *, prompt_len: int, num_steps: int,
                  step_tokens: int, granularity: str = "line", answer_len: int = 16,
                  repeat: int = 1, prompt_fn: Callable[[str], list[int]] | None = None,
                  answers: str = "line") -> dict[str, np.ndarray]:
  """Rollout inputs for `records` (each repeated `repeat` times, consecutively: a GRPO group).

  prompt_fn: question text -> prompt ids (collab/data/prompts.py); default bos question <sep>.
  answers: 'line' (the reference answer line, then eos) or 'number' (the answer's number, then
  eos: for a NumberScorer)."""
  records = [r for r in records for _ in range(repeat)]
  bos, sep = [tok.bos_id], [tok.sep_id]
  if prompt_fn is None:
    prompt_fn = lambda q: bos + tok.encode(q) + sep
  prompts = [prompt_fn(r["question"]) for r in records]
  redacted = [prompt_fn(task_lib.redacted(r["question"])) for r in records]
  refs = [reference_steps(tok, r["steps"], granularity, step_tokens)[:num_steps]
          for r in records]
  ref_BxSxK = np.full((len(records), num_steps, step_tokens), tok.pad_id, np.int32)
  ref_len_BxS = np.zeros((len(records), num_steps), np.int32)
  for b, steps in enumerate(refs):
    for s, ids in enumerate(steps):
      ref_BxSxK[b, s, :len(ids)] = ids
      ref_len_BxS[b, s] = len(ids)
  if answers not in ("line", "number"):
    raise ValueError(f"answers must be 'line' or 'number', got {answers!r}")
  # The kind of line each step writes, planned from the question (-1: unknown), for the
  # line-kind baseline: known before the line is written, without the reference.
  kind_BxS = np.full((len(records), num_steps), -1, np.int32)
  for b, r in enumerate(records):
    plan = task_lib.plan_kinds(r["question"]) if granularity == "line" else None
    for s, kind in enumerate((plan or ())[:num_steps]):
      kind_BxS[b, s] = task_lib.STEP_KINDS.index(kind)
  answers = [tok.encode(r["steps"][-1] if answers == "line" else prompts_lib.answer_text(r))
             + [tok.eos_id] for r in records]
  return {
      "prompt_BxP": _pad_rows(prompts, prompt_len, tok.pad_id, "A prompt"),
      "prompt_len_B": np.array([len(p) for p in prompts], np.int32),
      "redacted_prompt_BxP": _pad_rows(redacted, prompt_len, tok.pad_id, "A redacted prompt"),
      "redacted_prompt_len_B": np.array([len(p) for p in redacted], np.int32),
      "ref_steps_BxSxK": ref_BxSxK,
      "ref_len_BxS": ref_len_BxS,
      "kind_BxS": kind_BxS,
      "answer_BxA": _pad_rows(answers, answer_len, tok.pad_id, "An answer line"),
      "row_id_B": np.arange(len(records), dtype=np.int32),
  }


def select(episodes: dict[str, np.ndarray], rows, repeat: int = 1) -> dict[str, np.ndarray]:
  """Rows of an episode batch, each repeated `repeat` times (a group); row ids renumbered."""
  rows = np.repeat(np.asarray(rows), repeat)
  out = {k: v[rows] for k, v in episodes.items()}
  out["row_id_B"] = np.arange(len(rows), dtype=np.int32)
  return out
