"""LLM cost against call rate: does the rollout pay for the calls made, not for the batch?

    python -m benchmarks.call_rate [--quick] [--batch 64] [--slm slm_s --llm llm_s] [--out F]

One compiled rollout with the `random` policy (each row asks at each step with probability
`rate`; the rate is a traced argument, so every rate runs the same executable) at forced rates
0, 1/16, 1/8, 1/4, 1/2 and 1. The LLM capacity is the batch, so no call overflows (overflow is
reported). Rates are timed interleaved, round after round, so a busy spell on a shared machine
hits every rate alike; times are the best of the rounds (medians are reported too).

llm_cost_ratio_at_1_8 = time(1/8) / ideal(1/8), ideal(r) = time(0) + r * (time(1) - time(0)):
1.0 means LLM time exactly proportional to calls. LLM FLOPs per rate are counted from the
rollout's records (benchmarks/common.rollout_work, XLA cost analysis of each model call).
"""
from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from benchmarks import common
from collab import llm_calls
from collab import rollout as rollout_lib

RATES = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
TARGET = 1.5


def run(*, slm: str, llm: str, batch_size: int, num_steps: int, step_tokens: int,
        rounds: int, llm_sizes: int = 4, tok=None, llm_tok=None, llm_step_tokens: int = 0
        ) -> dict:
  """llm_tok: the LLM's own tokenizer (a mixed pair); its FLOPs are not replayed (the host
  replay knows one tokenizer's schedule only), so the llm_flops fields are None."""
  env = common.make_env(slm=slm, llm=llm, batch_size=batch_size, num_steps=num_steps,
                        step_tokens=step_tokens, policy=rollout_lib.Policy(kind="random"),
                        tok=tok, llm_tok=llm_tok, llm_step_tokens=llm_step_tokens)
  env = common.with_setup(env, llm_capacity=batch_size, llm_sizes=llm_sizes)
  rng = jax.random.PRNGKey(0)
  common.log(f"[call_rate] compiling {slm} + {llm}, batch {batch_size}")
  _, compile_s = common.compile_rollout(env, 0.5)
  times = {r: [] for r in RATES}
  for r in RATES:  # warm-up: first runs allocate
    common.block(common.jitted_rollout(env, r, rng))
  for _ in range(rounds):
    for r in RATES:
      t0 = time.perf_counter()
      common.block(common.jitted_rollout(env, r, rng))
      times[r].append(time.perf_counter() - t0)
  per_rate = []
  for r in RATES:
    steps, final = jax.device_get(common.jitted_rollout(env, r, rng))
    work = (common.rollout_work(env.setup, env.batch, steps) if env.setup.handoff is None
            else dict.fromkeys(("llm_flops", "llm_flops_useful", "slm_flops",
                                "llm_tokens_read", "llm_tokens_written")))
    decisions = int(np.sum(steps.valid))
    per_rate.append(dict(
        rate=r, time_s=min(times[r]), time_median_s=statistics.median(times[r]),
        calls=int(np.sum(final.calls_B)), measured_rate=int(np.sum(final.calls_B)) / decisions,
        overflow=int(np.sum(final.overflow_B)),
        written_tokens=common.written_tokens(final.length_B, env.batch["prompt_len_B"]),
        llm_flops=work["llm_flops"], llm_flops_useful=work["llm_flops_useful"],
        slm_flops=work["slm_flops"], llm_tokens_read=work["llm_tokens_read"],
        llm_tokens_written=work["llm_tokens_written"]))
  t0, t1 = per_rate[0]["time_s"], per_rate[-1]["time_s"]
  m0, m1 = per_rate[0]["time_median_s"], per_rate[-1]["time_median_s"]
  f1 = per_rate[-1]["llm_flops"]
  for row in per_rate:
    row["ideal_time_s"] = t0 + row["rate"] * (t1 - t0)
    row["cost_ratio"] = row["time_s"] / row["ideal_time_s"]
    row["cost_ratio_medians"] = row["time_median_s"] / (m0 + row["rate"] * (m1 - m0))
    row["llm_flops_vs_always"] = row["llm_flops"] / f1 if f1 else None
  at = {row["rate"]: row for row in per_rate}
  return dict(
      batch=batch_size, num_steps=num_steps, step_tokens=step_tokens, rounds=rounds,
      llm_capacity=batch_size, llm_call_sizes=list(llm_calls.llm_call_sizes(
          batch_size, llm_sizes)),
      slm=common.model_info(env.setup.slm, slm), llm=common.model_info(env.setup.llm, llm),
      compile_s=compile_s, rates=per_rate, slm_only_time_s=t0, always_time_s=t1,
      llm_cost_ratio_at_1_8=at[1 / 8]["cost_ratio"],
      llm_cost_ratio_at_1_8_medians=at[1 / 8]["cost_ratio_medians"], target=TARGET,
      meets_target=at[1 / 8]["cost_ratio"] <= TARGET)


def main(argv=None):
  p = common.rollout_parser(__doc__, rounds=True)
  p.add_argument("--llm_sizes", type=int, default=4,
                 help="row counts the LLM call compiles for (RolloutConfig.llm_sizes)")
  args = p.parse_args(argv)
  if args.quick:  # tiny models, two compiled call sizes: compiles in seconds
    args.slm, args.llm, args.batch, args.num_steps, args.rounds, args.llm_sizes = (
        "test_tiny", "test_tiny", 32, 4, 2, 2)
  result = run(slm=args.slm, llm=args.llm, batch_size=args.batch, num_steps=args.num_steps,
               step_tokens=args.step_tokens, rounds=args.rounds, llm_sizes=args.llm_sizes)
  return common.emit(dict(result, benchmark="call_rate", quick=args.quick), args.out)


if __name__ == "__main__":
  main()
