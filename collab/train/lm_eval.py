"""Held-out evaluation of a pretrained model on the step-by-step task.

Two measurements, both with greedy decoding through the KV-cached `generate`:
- final-answer accuracy: the model writes the whole solution from the question alone; correct
  when its last line equals the reference answer line (exact match);
- per-step accuracy: teacher-forced on the reference prefix (question + earlier reference
  steps), the model writes one line; correct when it equals the reference line. Grouped by step
  category (look-up, arithmetic, answer) and, for look-ups, by whether the model was shown that
  entity's fact in training (`lookup_unseen` is where help from a larger model can fix things).
"""
from __future__ import annotations

import collections
from typing import Any, Sequence

import numpy as np

from collab.data import task as task_lib
from collab.models import decode


def _pad_prompts(prompts: Sequence[Sequence[int]], pad_id: int, multiple: int = 32):
  """Right-pads prompts to a length rounded up to `multiple` (few distinct compiled shapes)."""
  lengths_B = np.array([len(p) for p in prompts], np.int32)
  width = int(-(-lengths_B.max() // multiple) * multiple)
  prompts_BxP = np.full((len(prompts), width), pad_id, np.int32)
  for i, p in enumerate(prompts):
    prompts_BxP[i, :len(p)] = p
  return prompts_BxP, lengths_B


def _generate_lines(params, cfg, tok, prompts, *, stop_id, max_new_tokens, batch_size):
  """Greedy continuations of `prompts` (token lists) decoded to text, batched."""
  outputs = []
  for start in range(0, len(prompts), batch_size):
    chunk = list(prompts[start:start + batch_size])
    real = len(chunk)
    chunk += [chunk[-1]] * (batch_size - real)  # fixed batch shape: one compile
    prompts_BxP, lengths_B = _pad_prompts(chunk, tok.pad_id)
    new_BxN, new_len_B = decode.generate(
        params, cfg, prompts_BxP, lengths_B, max_new_tokens=max_new_tokens,
        stop_id=stop_id, pad_id=tok.pad_id)
    new_BxN, new_len_B = np.asarray(new_BxN), np.asarray(new_len_B)
    for i in range(real):
      ids = [int(t) for t in new_BxN[i, :new_len_B[i]] if t not in (stop_id, tok.pad_id)]
      outputs.append(tok.decode(ids))
  return outputs


def _prefix_ids(tok, lines: Sequence[str]) -> list[int]:
  """bos + lines joined by the step separator + a trailing separator (training layout)."""
  return [tok.bos_id] + tok.encode("\n".join(lines)) + [tok.sep_id]


def evaluate_lm(params, cfg, tok, records: Sequence[dict[str, Any]], *,
                known_mask: np.ndarray | None = None, max_new_tokens: int = 96,
                step_max_new_tokens: int = 24, batch_size: int = 64,
                task_kinds: bool = True, details: bool = False) -> dict[str, Any]:
  """Returns accuracies (final answer, per step category) and a few sample generations.

  records: dicts with 'question', 'steps' (reference lines, last is the answer line),
  optionally 'step_kinds' and 'entity_ids' (generated task).
  task_kinds: step kinds are the generated task's (grouped by task.step_category); False: each
  kind is its own group. details: also 'final_correct' (per record) and 'step_correct'
  ([record index, kind, correct] per step), for paired comparisons.
  """
  # Final answer, free-running.
  full_prompts = [_prefix_ids(tok, [r["question"]]) for r in records]
  solutions = _generate_lines(params, cfg, tok, full_prompts, stop_id=tok.eos_id,
                              max_new_tokens=max_new_tokens, batch_size=batch_size)
  final_correct = []
  for r, sol in zip(records, solutions):
    lines = [l for l in sol.split("\n") if l.strip()]
    final_correct.append(bool(lines) and lines[-1].strip() == r["steps"][-1].strip())

  # Per step, teacher-forced on the reference prefix.
  step_prompts, step_refs, step_groups = [], [], []
  step_rows = []
  for index, r in enumerate(records):
    kinds = r.get("step_kinds") or ["step"] * len(r["steps"])
    entity_ids = list(r.get("entity_ids") or [])
    num_lookups = 0
    for i, (line, kind) in enumerate(zip(r["steps"], kinds)):
      step_prompts.append(_prefix_ids(tok, [r["question"]] + list(r["steps"][:i])))
      step_refs.append(line)
      if not task_kinds:  # another family's kinds (e.g. word_problems.STEP_KINDS)
        groups = [kind]
      else:
        groups = [task_lib.step_category(kind) if kind != "step" else "step"]
        if kind in ("mul", "add", "sub"):
          groups.append(f"arith_{kind}")
      if kind == "lookup":
        # Look-ups come in item order, so the k-th look-up is about the k-th entity.
        if known_mask is not None and num_lookups < len(entity_ids):
          seen = known_mask[entity_ids[num_lookups]]
          groups.append("lookup_seen" if seen else "lookup_unseen")
        num_lookups += 1
      step_groups.append(groups)
      step_rows.append((index, kind))
  step_outputs = _generate_lines(params, cfg, tok, step_prompts, stop_id=tok.sep_id,
                                 max_new_tokens=step_max_new_tokens, batch_size=batch_size)
  hits, totals = collections.Counter(), collections.Counter()
  step_correct = []
  for out, ref, groups, row in zip(step_outputs, step_refs, step_groups, step_rows):
    ok = out.strip() == ref.strip()
    step_correct.append([*row, ok])
    for g in groups + ["all_steps"]:
      totals[g] += 1
      hits[g] += ok

  metrics = {"final_accuracy": float(np.mean(final_correct)) if final_correct else 0.0,
             "num_problems": len(records)}
  for g in sorted(totals):
    metrics[f"step_accuracy/{g}"] = hits[g] / totals[g]
    metrics[f"step_count/{g}"] = totals[g]
  if details:
    metrics["final_correct"] = [bool(c) for c in final_correct]
    metrics["step_correct"] = step_correct
  metrics["samples"] = [
      {"question": r["question"], "generated": s, "reference": "\n".join(r["steps"])}
      for r, s in list(zip(records, solutions))[:3]]
  return metrics

