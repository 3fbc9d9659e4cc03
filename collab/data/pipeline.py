"""Grain input pipeline for LM pretraining on task text.

Layout of one sequence: `bos question <sep> step <sep> ... answer eos pad...`. The loss mask is
1 on the solution tokens (everything after the question's `<sep>`, eos included) and 0 on bos,
the question, its `<sep>` and padding: the model learns to write solutions given questions,
which is exactly the prompt `lm_eval` and the rollout give it.

The dataset is a grain MapDataset of batches: `ds[step]` is the batch of that training step,
a pure function of (data, seed, step), so resuming at step k is exact.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import grain
import numpy as np

from collab.data import task as task_lib


def _as_str(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text_and_entities(example: Any) -> tuple[str, str, np.ndarray]:
  """(text, question, entity_ids) of a task.Problem or a TFDS / plain dict example."""
  if isinstance(example, task_lib.Problem):
    return example.text(), example.question, np.asarray(example.entity_ids, np.int64)
  text = _as_str(example["text"])
  question = _as_str(example["question"]) if "question" in example else text.split("\n")[0]
  entity_ids = np.asarray(example.get("entity_ids", ()), np.int64).reshape(-1)
  return text, question, entity_ids


def _read_all(source) -> list[Any]:
  """All examples of a random-access source (batched reads when the source supports them)."""
  n = len(source)
  if hasattr(source, "__getitems__"):
    return list(source.__getitems__(list(range(n))))
  return [source[i] for i in range(n)]


def tokenize_examples(examples: Sequence[Any], tokenizer, seq_len: int
                      ) -> tuple[np.ndarray, np.ndarray, int]:
  """(tokens_NxT int32, loss_mask_NxT float32, num_truncated) in the layout above."""
  texts, questions = [], []
  for ex in examples:
    text, question, _ = _text_and_entities(ex)
    texts.append(text)
    questions.append(question)
  ids = tokenizer.encode_batch(texts)
  question_lens = [len(q) for q in tokenizer.encode_batch(questions)]
  n = len(texts)
  tokens_NxT = np.full((n, seq_len), tokenizer.pad_id, np.int32)
  loss_mask_NxT = np.zeros((n, seq_len), np.float32)
  truncated = 0
  for i, (seq, q_len) in enumerate(zip(ids, question_lens)):
    full = [tokenizer.bos_id] + seq + [tokenizer.eos_id]
    if len(full) > seq_len:
      truncated += 1
      full = full[:seq_len]
    tokens_NxT[i, :len(full)] = full
    loss_mask_NxT[i, 2 + q_len:len(full)] = 1.0  # after bos, the question and its <sep>
  return tokens_NxT, loss_mask_NxT, truncated


def known_examples(examples: Sequence[Any], known_mask: np.ndarray) -> list[Any]:
  """The examples whose entities are all known (entity-free examples are kept)."""
  known_mask = np.asarray(known_mask, bool)
  keep = []
  for ex in examples:
    _, _, entity_ids = _text_and_entities(ex)
    if known_mask[entity_ids].all():
      keep.append(ex)
  return keep


def _line_spans(examples: Sequence[Any], tokenizer):
  """Yields (row, kind, entity, start, end) for every solution line of every example, where
  tokens [start, end) of its row in the `tokenize_examples` layout are the line and `entity`
  is a look-up line's entity (else -1)."""
  parsed = []
  for ex in examples:
    if isinstance(ex, task_lib.Problem):
      steps, kinds, entity_ids = ex.step_texts, ex.step_kinds, ex.entity_ids
    else:
      steps = [_as_str(t) for t in ex["steps"]]
      kinds = [_as_str(k) for k in ex["step_kinds"]]
      entity_ids = np.asarray(ex["entity_ids"]).reshape(-1)
    parsed.append((_text_and_entities(ex)[1], list(steps), list(kinds), entity_ids))
  # One batched encode of every question and line (per-line calls dominate otherwise).
  question_lens = [len(ids) for ids in tokenizer.encode_batch([p[0] for p in parsed])]
  line_lens = iter(len(ids) for ids in tokenizer.encode_batch(
      [line for p in parsed for line in p[1]]))
  for i, ((_, steps, kinds, entity_ids), q_len) in enumerate(zip(parsed, question_lens)):
    offset = 2 + q_len  # bos, question, <sep>
    lookups = 0
    for kind in kinds:
      n = next(line_lens)
      entity = -1
      if kind == "lookup":
        entity = int(entity_ids[lookups])
        lookups += 1
      yield i, kind, entity, offset, offset + n
      offset += n + 1


def mask_unknown_lookups(examples: Sequence[Any], tokenizer, loss_mask_NxT: np.ndarray,
                         known_mask: np.ndarray) -> int:
  """Zeroes the loss on look-up lines of entities outside `known_mask` (in place).

  The model still trains on the arithmetic of every problem, but never on an unknown fact:
  a look-up line is the only place a fact is stated before its value can be copied from the
  context. Returns the number of lines masked.
  """
  known_mask = np.asarray(known_mask, bool)
  masked = 0
  for i, kind, entity, start, end in _line_spans(examples, tokenizer):
    if kind == "lookup" and not known_mask[entity]:
      loss_mask_NxT[i, start:end] = 0.0
      masked += 1
  return masked


def weight_arithmetic(examples: Sequence[Any], tokenizer, loss_mask_NxT: np.ndarray,
                      weight: float) -> int:
  """Multiplies the loss weight of every arithmetic line (mul, add, sub) by `weight` (in
  place): more arithmetic practice per step for the same data. Returns the lines weighted."""
  weighted = 0
  for i, kind, _, start, end in _line_spans(examples, tokenizer):
    if kind in task_lib.STEP_KINDS and task_lib.step_category(kind) == "arith":
      loss_mask_NxT[i, start:end] *= weight
      weighted += 1
  return weighted


def redact_some(examples: Sequence[Any], redact_prob: float, seed: int) -> list[Any]:
  """A seeded share of the examples in redacted form (private spans -> <redacted>), so that
  a model learns to work from the contexts an `ask_redacted` request sends it."""
  chosen = np.random.default_rng([seed, 7]).random(len(examples)) < redact_prob
  out = list(examples)
  for i in np.flatnonzero(chosen):
    ex = out[i]
    if isinstance(ex, task_lib.Problem):
      steps, kinds = ex.step_texts, ex.step_kinds
    else:
      steps, kinds = [_as_str(t) for t in ex["steps"]], [_as_str(k) for k in ex["step_kinds"]]
    text, question, entity_ids = _text_and_entities(ex)
    out[i] = {"text": task_lib.redacted(text), "question": task_lib.redacted(question),
              "steps": [task_lib.redacted(line) for line in steps], "step_kinds": list(kinds),
              "entity_ids": entity_ids}
  return out


def mask_redacted_lines(tokens_NxT: np.ndarray, loss_mask_NxT: np.ndarray, tokenizer) -> None:
  """Zeroes the loss on every line holding <redacted>: its numbers cannot be known."""
  for i in np.flatnonzero((tokens_NxT == tokenizer.redacted_id).any(-1)):
    row = tokens_NxT[i]
    seps = np.flatnonzero(row == tokenizer.sep_id)
    for pos in np.flatnonzero(row == tokenizer.redacted_id):
      start = seps[seps < pos].max(initial=-1) + 1
      end = seps[seps > pos].min(initial=len(row) - 1)
      loss_mask_NxT[i, start:end + 1] = 0.0


def make_lm_dataset(source, tokenizer, *, seq_len: int, batch_size: int, seed: int,
                    known_mask: np.ndarray | None = None,
                    entity_filter: bool = True,
                    unknown_facts: str = "filter",
                    redact_prob: float = 0.0,
                    arith_weight: float = 1.0) -> grain.MapDataset:
  """Infinite MapDataset of batches {'tokens_BxT': int32, 'loss_mask_BxT': float32}.

  source: random-access examples (a TFDS data source of the task, or task.Problem objects).
  known_mask: bool[E]; a model with partial fact coverage never learns the other facts:
    unknown_facts='filter' keeps only problems whose entities are all known; 'mask' keeps
    every problem (so arithmetic trains on all of them) but zeroes the loss on the look-up
    lines of unknown entities.
  arith_weight: the loss weight of arithmetic lines (mul, add, sub) relative to the others;
    the loss is a weighted mean, so a weight above 1 spends more of each step on arithmetic.
  Tokenized once up front; shuffled with `seed`, reshuffled each epoch, batches may span two
  epochs.
  """
  if unknown_facts not in ("filter", "mask"):
    raise ValueError(f"unknown_facts must be 'filter' or 'mask', got {unknown_facts!r}")
  if not arith_weight > 0:
    raise ValueError(f"arith_weight must be > 0, got {arith_weight}")
  examples = _read_all(source)
  if known_mask is not None and entity_filter and unknown_facts == "filter":
    examples = known_examples(examples, known_mask)
  if not examples:
    raise ValueError("No training examples left (empty source, or known_mask covers no "
                     "problem's entities).")
  if redact_prob > 0:
    examples = redact_some(examples, redact_prob, seed)
  tokens_NxT, loss_mask_NxT, truncated = tokenize_examples(examples, tokenizer, seq_len)
  if truncated:
    warnings.warn(f"{truncated} of {len(examples)} sequences longer than seq_len={seq_len} "
                  "were truncated (their answer line and eos may be lost).", stacklevel=2)
  if known_mask is not None and entity_filter and unknown_facts == "mask":
    mask_unknown_lookups(examples, tokenizer, loss_mask_NxT, known_mask)
  if arith_weight != 1.0:
    weight_arithmetic(examples, tokenizer, loss_mask_NxT, arith_weight)
  mask_redacted_lines(tokens_NxT, loss_mask_NxT, tokenizer)

  def gather(indices_B):
    indices_B = np.asarray(indices_B)
    return {"tokens_BxT": tokens_NxT[indices_B], "loss_mask_BxT": loss_mask_NxT[indices_B]}

  ds = grain.MapDataset.range(len(examples)).shuffle(seed=seed).repeat()
  return ds.batch(batch_size, batch_fn=np.stack).map(gather)


def encode_prompts(tokenizer, prompts: Sequence[str], *, add_bos: bool = True,
                   add_sep: bool = True, pad_to_multiple: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(prompts_BxP int32 right-padded with pad_id, lengths_B int32) for generation.

  With the defaults a question becomes `bos question <sep>`, the training layout's prompt.
  pad_to_multiple rounds P up so that few distinct shapes get compiled.
  """
  ids = tokenizer.encode_batch(list(prompts))
  ids = [([tokenizer.bos_id] if add_bos else []) + s + ([tokenizer.sep_id] if add_sep else [])
         for s in ids]
  lengths_B = np.array([len(s) for s in ids], np.int32)
  width = max(int(lengths_B.max(initial=1)), 1)
  width = -(-width // pad_to_multiple) * pad_to_multiple
  prompts_BxP = np.full((len(ids), width), tokenizer.pad_id, np.int32)
  for i, s in enumerate(ids):
    prompts_BxP[i, :len(s)] = s
  return prompts_BxP, lengths_B

