"""The cost of a handoff between two tokenizers, and why it is a host callback, not a table.

    python -m benchmarks.handoff [--quick] [--out F]

1. Call rate, mixed against same: benchmarks/call_rate.py's rollout (random asking at forced
   rates, the same random models, problems and batch) once with one tokenizer (the SLM's BPE
   of 512 ids), once with the LLM on another, so every call re-encodes text on the host
   (collab/handoff.py). Two LLM tokenizers:
   - `mixed`: BPE of 512 ids trained on another sample of the corpus: the same algorithm and
     size, so the same model compute and about as many tokens per line, but other ids (63 of
     512 pieces share an id): the cost of the handoff itself.
     handoff_ratio_at_1_8 = time(mixed, 1/8) / time(same, 1/8); the same at 0 and 1 too.
   - `mixed_unigram`: a SentencePiece unigram model (179 ids on this corpus), about 1.4 of its
     tokens per SLM token: the LLM's step and stream are longer (the same text), its
     vocabulary smaller (handoff_unigram_ratio_*).
2. Host time of one re-encoding call (`Handoff.to_llm` on every row of a batch of solutions,
   `to_slm` on every row's step), outside the rollout.
3. The in-graph alternative: a table from each SLM id to the LLM id of the same piece (the
   vocabularies' common strings), with a fallback for the rest. On the task's reference
   solution lines: the share of lines whose every piece has a twin, and the share where the
   twins are also how the LLM's tokenizer writes the line (what it was trained to read).
"""
from __future__ import annotations

import time

import jax
import numpy as np

from benchmarks import call_rate
from benchmarks import common
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib


def llm_tokenizers() -> dict:
  """The LLMs' tokenizers: BPE of common.VOCAB_SIZE on 500 of common.make_tokenizer's 2000
  problems (other ids), and a unigram model on all of them (another segmentation)."""
  cfg = task_lib.TaskConfig(num_train=2000, num_validation=16, num_test=16)
  return dict(
      mixed=tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 500),
                                          vocab_size=common.VOCAB_SIZE),
      mixed_unigram=tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 2000),
                                                  vocab_size=384, model_type="unigram"))


def table_coverage(src, dst, lines) -> dict:
  """Lines of `src` ids an id-for-id table to `dst` could carry (every piece has a twin in
  dst's vocabulary), and lines where the twins are also dst's own encoding of the line."""
  pieces = {dst.id_to_piece(i): i for i in range(dst.vocab_size)}
  covered = exact = tokens = twins = 0
  for ids, want in zip(src.encode_batch(lines), dst.encode_batch(lines)):
    mapped = [pieces.get(src.id_to_piece(i)) for i in ids]
    tokens += len(ids)
    twins += sum(m is not None for m in mapped)
    if all(m is not None for m in mapped):
      covered += 1
      exact += mapped == want
  n = max(len(lines), 1)
  return dict(lines=len(lines), tokens_with_twin=twins / max(tokens, 1),
              lines_covered=covered / n, lines_as_dst_writes_them=exact / n)


def host_cost(env, repeats: int) -> dict:
  """Seconds per call of the two host functions on every row of the batch (a call at rate 1),
  on the contexts an SLM-alone rollout wrote."""
  hand = env.setup.handoff
  _, final = jax.device_get(common.jitted_rollout(env, 0.0))
  B = len(final.length_B)
  start_B = np.asarray(env.batch["prompt_len_B"])
  K = env.setup.rollout.step_tokens
  # Each row's LLM step: its first reference line, in LLM ids.
  Kl = hand.llm_step_tokens
  step_BxKl = np.full((B, Kl), hand.llm_tok.pad_id, np.int32)
  step_len_B = np.zeros((B,), np.int32)
  for b, r in enumerate(env.records):
    ids = (hand.llm_tok.encode(r["steps"][0]) + [hand.llm_tok.sep_id])[:Kl]
    step_BxKl[b, :len(ids)], step_len_B[b] = ids, len(ids)
  to_llm = lambda: hand.to_llm(final.tokens_BxL, start_B, final.length_B)
  to_slm = lambda: hand.to_slm(step_BxKl, step_len_B, env.batch["llm_prompt_BxP"],
                               env.batch["llm_prompt_len_B"], final.tokens_BxL, start_B,
                               final.length_B)
  out = {}
  for name, fn in (("to_llm", to_llm), ("to_slm", to_slm)):
    fn()
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
    out[f"{name}_s"] = min(times)
  served = hand.to_llm(final.tokens_BxL, start_B, final.length_B)[2]
  return dict(out, rows=B, step_tokens=K, served_share=float(np.mean(served)),
              solution_tokens=int(np.sum(final.length_B - start_B)))


def main(argv=None):
  p = common.rollout_parser(__doc__, rounds=True)
  args = p.parse_args(argv)
  if args.quick:
    args.slm, args.llm, args.batch, args.num_steps, args.rounds = (
        "test_tiny", "test_tiny", 32, 4, 2)
  slm_tok, llm_toks = common.make_tokenizer(), llm_tokenizers()
  kw = dict(slm=args.slm, llm=args.llm, batch_size=args.batch, num_steps=args.num_steps,
            step_tokens=args.step_tokens, rounds=args.rounds, tok=slm_tok)
  common.log("[handoff] same tokenizer")
  runs = dict(same=call_rate.run(**kw))
  for name, llm_tok in llm_toks.items():
    common.log(f"[handoff] {name}")
    runs[name] = call_rate.run(**kw, llm_tok=llm_tok)
  at = lambda res, r: next(row for row in res["rates"] if row["rate"] == r)
  result = dict(benchmark="handoff", quick=args.quick,
                slm_tokenizer=dict(model="bpe", vocab=slm_tok.vocab_size), **runs)
  lines = [line for r in common.make_records(512) for line in r["steps"]]
  for name, llm_tok in llm_toks.items():
    suffix = name.replace("mixed", "")
    for rate_name, r in (("0", 0.0), ("1_8", 1 / 8), ("1", 1.0)):
      result[f"handoff{suffix}_ratio_at_{rate_name}"] = (at(runs[name], r)["time_s"]
                                                         / at(runs["same"], r)["time_s"])
    env = common.make_env(slm=args.slm, llm=args.llm, batch_size=args.batch,
                          num_steps=args.num_steps, step_tokens=args.step_tokens, tok=slm_tok,
                          llm_tok=llm_tok)
    result[f"{name}_handoff"] = dict(
        llm_tokenizer=dict(vocab=llm_tok.vocab_size, shared_ids=sum(
            slm_tok.id_to_piece(i) == llm_tok.id_to_piece(i)
            for i in range(min(slm_tok.vocab_size, llm_tok.vocab_size)))),
        llm_step_tokens=env.setup.handoff.llm_step_tokens,
        llm_solution_tokens=env.setup.handoff.llm_solution_tokens,
        host=host_cost(env, 5),
        table=dict(slm_to_llm=table_coverage(slm_tok, llm_tok, lines),
                   llm_to_slm=table_coverage(llm_tok, slm_tok, lines)))
  return common.emit(result, args.out)


if __name__ == "__main__":
  main()
