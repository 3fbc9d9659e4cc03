"""Rollout throughput: the jitted rollout against a Python loop and PyTorch/transformers.

    python -m benchmarks.rollout [--quick] [--batch 64] [--slm slm_s --llm llm_s] [--out F]

All three run the same models (random-initialised presets), the same batch of test problems,
the same greedy decisions (by default the gate, its output layer randomised so that it mixes
self / ask / ask_redacted; see benchmarks/common.py), in this one process:
  jitted        collab.rollout.rollout: one XLA program for the whole batch of episodes;
  jitted, whole cache   the same with kv_buckets=1: attention reads every cache slot at every
                token (the rollout before bucketed attention), when --kv_buckets > 1;
  python loop   benchmarks/python_loop.py: one jitted call per token per model, host decisions;
  torch         benchmarks/torch_rollout.py: transformers' Llama, generate-style loop.
Each is warmed up (compiled), then the three are timed interleaved, round after round, so a busy
spell on the shared machine hits all alike. Speedups are ratios of the best time of each (also
given: ratios of medians). Outputs are checked against the jitted rollout's (the Python loop
must write the same tokens; torch agrees up to float rounding). The last line printed is the
JSON result.
"""
from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from benchmarks import common
from benchmarks import python_loop
from benchmarks import torch_rollout
from collab import rollout as rollout_lib

TARGETS = {"speedup_vs_python_loop": 5.0, "speedup_vs_torch": 10.0}


def _agreement(final_tokens_BxL, other_tokens_BxL) -> dict:
  same_BxL = np.asarray(final_tokens_BxL) == np.asarray(other_tokens_BxL)
  return dict(rows_identical=float(np.mean(np.all(same_BxL, 1))),
              tokens_identical=float(np.mean(same_BxL)))


def run(*, slm: str, llm: str, batch_size: int, num_steps: int, step_tokens: int,
        policy: rollout_lib.Policy, policy_value: float, rounds: int, torch_threads: int,
        skip_torch: bool = False, llm_sizes: int = 4, kv_buckets: int = 4) -> dict:
  env = common.make_env(slm=slm, llm=llm, batch_size=batch_size, num_steps=num_steps,
                        step_tokens=step_tokens, policy=policy, llm_sizes=llm_sizes,
                        kv_buckets=kv_buckets)
  rng = jax.random.PRNGKey(0)
  result = dict(batch=batch_size, num_steps=num_steps, step_tokens=step_tokens,
                granularity=env.setup.rollout.granularity, policy=policy.kind,
                policy_value=policy_value, slm=common.model_info(env.setup.slm, slm),
                llm=common.model_info(env.setup.llm, llm), targets=TARGETS, rounds=rounds,
                kv_buckets=kv_buckets)
  prompt_len_B = env.batch["prompt_len_B"]

  common.log(f"[rollout] jitted: compiling {slm} + {llm}, batch {batch_size}")
  _, compile_s = common.compile_rollout(env, policy_value)
  impls = {"jitted": lambda: common.block(common.jitted_rollout(env, policy_value, rng)),
           "python_loop": lambda: python_loop.python_loop_rollout(
               env.slm, env.llm, env.gate, env.batch, rng, policy_value, setup=env.setup,
               policy=env.policy)}
  if kv_buckets > 1:
    whole = common.with_setup(env, kv_buckets=1)
    impls["jitted_whole_cache"] = lambda: common.block(
        common.jitted_rollout(whole, policy_value, rng))
  reason = ("--skip_torch" if skip_torch
            else torch_rollout.unavailable_reason(env.setup, env.policy))
  if not reason:
    torch_rollout.set_threads(torch_threads)
    slm_t = torch_rollout.to_torch_model(env.slm, env.setup.slm)
    llm_t = torch_rollout.to_torch_model(env.llm, env.setup.llm)
    gate_t = torch_rollout.TorchGate(env.gate, env.setup.gate)
    impls["torch"] = lambda: torch_rollout.torch_rollout(
        slm_t, llm_t, gate_t, env.batch, rng, policy_value, setup=env.setup, policy=env.policy)

  outputs, first_s = {}, {}
  for name, fn in impls.items():  # warm-up: compiles the jitted pieces, loads torch kernels
    common.log(f"[rollout] {name}: first run")
    t0 = time.perf_counter()
    outputs[name] = jax.device_get(fn())
    first_s[name] = time.perf_counter() - t0
  times = {name: [] for name in impls}
  for r in range(rounds):
    common.log(f"[rollout] round {r + 1}/{rounds}")
    for name, fn in impls.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  best = {name: min(t) for name, t in times.items()}
  median = {name: statistics.median(t) for name, t in times.items()}

  steps, final = outputs["jitted"]
  written = common.written_tokens(final.length_B, prompt_len_B)
  calls = int(np.sum(final.calls_B))
  result.update(
      compile_s=compile_s, written_tokens=written, llm_calls=calls,
      call_rate=calls / max(int(np.sum(steps.valid)), 1), overflow=int(np.sum(final.overflow_B)),
      time_s=best["jitted"], time_median_s=median["jitted"], tokens_per_s=written / best["jitted"])
  out = outputs["python_loop"]
  same = {k: bool(np.array_equal(np.asarray(getattr(final, k)), out[k])) for k in final._fields}
  result["python_loop"] = dict(
      time_s=best["python_loop"], time_median_s=median["python_loop"],
      first_run_s=first_s["python_loop"],
      tokens_per_s=common.written_tokens(out["length_B"], prompt_len_B) / best["python_loop"],
      outputs_equal=all(same.values()), fields_differing=[k for k, v in same.items() if not v])
  if "jitted_whole_cache" in outputs:
    _, final_w = outputs["jitted_whole_cache"]
    result["jitted_whole_cache"] = dict(
        time_s=best["jitted_whole_cache"], time_median_s=median["jitted_whole_cache"],
        tokens_per_s=common.written_tokens(final_w.length_B, prompt_len_B)
        / best["jitted_whole_cache"],
        **_agreement(final.tokens_BxL, final_w.tokens_BxL))
    result["speedup_vs_whole_cache"] = best["jitted_whole_cache"] / best["jitted"]
  result["speedup_vs_python_loop"] = best["python_loop"] / best["jitted"]
  result["speedup_vs_python_loop_medians"] = median["python_loop"] / median["jitted"]
  if reason:
    result["torch"] = dict(skipped=reason)
    result["speedup_vs_torch"] = result["speedup_vs_torch_medians"] = None
  else:
    import torch  # pylint: disable=g-import-not-at-top (optional)
    out_t = outputs["torch"]
    result["torch"] = dict(
        time_s=best["torch"], time_median_s=median["torch"], device=torch_rollout.device(),
        threads=torch.get_num_threads(), torch=torch.__version__,
        transformers=torch_rollout.transformers.__version__,
        tokens_per_s=common.written_tokens(out_t["length_B"], prompt_len_B) / best["torch"],
        calls_equal=bool(np.array_equal(out_t["calls_B"], final.calls_B)),
        **_agreement(final.tokens_BxL, out_t["tokens_BxL"]))
    result["speedup_vs_torch"] = best["torch"] / best["jitted"]
    result["speedup_vs_torch_medians"] = median["torch"] / median["jitted"]
  result["meets_targets"] = {k: (result[k] is not None and result[k] >= v)
                             for k, v in TARGETS.items()}
  return result


def main(argv=None):
  p = common.rollout_parser(__doc__)
  p.add_argument("--policy", default="gate", help="gate (greedy) or a baseline kind")
  p.add_argument("--policy_value", type=float, default=0.0)
  p.add_argument("--k", type=int, default=2, help="every_k's k")
  p.add_argument("--torch_threads", type=int, default=1,
                 help="torch intra-op threads on CPU (0: all cores). 1 is the fastest on the "
                      "shared 2-core machine: 2 threads spin against each other")
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--llm_sizes", type=int, default=4,
                 help="row counts the LLM call compiles for (RolloutConfig.llm_sizes)")
  p.add_argument("--kv_buckets", type=int, default=4,
                 help="cache prefix lengths cached attention picks from (RolloutConfig."
                      "kv_buckets); > 1 also times the rollout with 1 (the whole cache)")
  p.add_argument("--rounds", type=int, default=0, help="timed rounds (0: 5, or 2 with --quick)")
  args = p.parse_args(argv)
  if args.quick:  # tiny models, two compiled LLM call sizes, few rounds: a smoke run
    args.slm, args.llm, args.batch, args.num_steps, args.llm_sizes = (
        "test_tiny", "test_tiny", 16, 4, 2)
  policy = rollout_lib.Policy(kind=args.policy, greedy=True, k=args.k)
  result = run(slm=args.slm, llm=args.llm, batch_size=args.batch, num_steps=args.num_steps,
               step_tokens=args.step_tokens, policy=policy, policy_value=args.policy_value,
               rounds=args.rounds or (2 if args.quick else 5), torch_threads=args.torch_threads,
               skip_torch=args.skip_torch, llm_sizes=args.llm_sizes,
               kv_buckets=args.kv_buckets)
  return common.emit(dict(result, benchmark="rollout", quick=args.quick), args.out)


if __name__ == "__main__":
  main()
