"""Shared pieces of the benchmarks: one environment (models, problems, batch), timing, output.

Every benchmark builds its models, tokenizer and problems here, so the implementations it
compares run on the same weights and the same batch. Models are random-initialised presets
(collab/models/presets.py): speed does not depend on what the weights learned, and random
models rarely write <sep> or <eos>, so every step runs its full K tokens (the worst case for
the jitted rollout, which always runs K, and no early exit for a Python loop).
The untrained gate's zero output layer is replaced by a random one, so greedy gate decisions
mix `self`, `ask` and `ask_redacted` instead of always picking `self`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from collab import gating
from collab import handoff as handoff_lib
from collab import llm_calls
from collab import rollout as rollout_lib
from collab.data import episodes
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import config as model_config
from collab.models import presets
from collab.models import transformer

VOCAB_SIZE = 512      # configs/pretrain.py
PROMPT_LEN = 32       # configs/gate.py


@dataclasses.dataclass
class Env:
  tok: Any
  setup: rollout_lib.Setup
  policy: rollout_lib.Policy
  slm: Any
  llm: Any
  gate: Any
  batch: dict[str, np.ndarray]
  records: list[dict[str, Any]]


def make_tokenizer():
  """The task's tokenizer, trained in-process (a tenth of a second; no assets on disk)."""
  cfg = task_lib.TaskConfig(num_train=2000, num_validation=16, num_test=16)
  return tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 2000), vocab_size=VOCAB_SIZE)


def make_records(num: int) -> list[dict[str, Any]]:
  """`num` held-out test problems (repeated when the split is smaller)."""
  cfg = task_lib.TaskConfig(num_train=16, num_validation=16, num_test=min(num, 2048))
  probs = task_lib.generate_split(cfg, "test")
  return [{"question": p.question, "steps": list(p.step_texts)}
          for p in (probs[i % len(probs)] for i in range(num))]


def make_env(*, slm: str = "slm_s", llm: str = "llm_s", batch_size: int = 64,
             num_steps: int = 8, step_tokens: int = 16, granularity: str = "line",
             policy: rollout_lib.Policy = rollout_lib.Policy(kind="gate", greedy=True),
             llm_capacity: int = 0, llm_sizes: int = 4, kv_buckets: int = 4, seed: int = 0,
             tok=None, llm_tok=None, llm_step_tokens: int = 0) -> Env:
  """llm_tok: the LLM's own tokenizer (a mixed pair, collab/handoff.py); default the SLM's.
  llm_step_tokens: the most tokens the LLM writes per step in a mixed pair (0: sized by the
  two tokenizers, handoff.make_handoff)."""
  tok = tok or make_tokenizer()
  slm_cfg = presets.get_model_config(slm, tok.vocab_size)
  llm_cfg = presets.get_model_config(llm, (llm_tok or tok).vocab_size)
  rngs = jax.random.split(jax.random.PRNGKey(seed), 4)
  slm_params = transformer.init_params(slm_cfg, rngs[0])
  llm_params = transformer.init_params(llm_cfg, rngs[1])
  gate_cfg = gating.GateConfig()
  gate_params = gating.init_gate(gate_cfg, slm_cfg.d_model, rngs[2])
  out = dict(gate_params["out"])
  out["kernel"] = 0.5 * jax.random.normal(rngs[3], out["kernel"].shape)
  gate_params = dict(gate_params, out=out)
  records = make_records(batch_size)
  batch = episodes.make_episodes(records, tok, prompt_len=PROMPT_LEN, num_steps=num_steps,
                                 step_tokens=step_tokens, granularity=granularity)
  hand = None
  if llm_tok is not None:
    hand = handoff_lib.make_handoff(tok, llm_tok, step_tokens=step_tokens, num_steps=num_steps,
                                    granularity=granularity,
                                    texts=[line for r in records for line in r["steps"]],
                                    llm_step_tokens=llm_step_tokens)
    batch = handoff_lib.llm_prompts(batch, hand) if hand else batch
  setup = rollout_lib.Setup(
      slm=slm_cfg, llm=llm_cfg, gate=gate_cfg,
      rollout=rollout_lib.RolloutConfig(num_steps=num_steps, step_tokens=step_tokens,
                                        granularity=granularity, budget=num_steps,
                                        llm_capacity=llm_capacity, llm_sizes=llm_sizes,
                                        kv_buckets=kv_buckets),
      specials=rollout_lib.Specials.from_tokenizer(tok), handoff=hand)
  return Env(tok, setup, policy, slm_params, llm_params, gate_params, batch, records)


def with_setup(env: Env, *, policy: rollout_lib.Policy | None = None, **rollout_kw) -> Env:
  setup = env.setup
  if rollout_kw:
    setup = dataclasses.replace(setup, rollout=dataclasses.replace(setup.rollout, **rollout_kw))
  return dataclasses.replace(env, setup=setup, policy=env.policy if policy is None else policy)


def policy_args(env: Env, policy_value: float = 0.0) -> rollout_lib.PolicyArgs:
  return env.policy.args(env.setup.rollout.num_steps, env.setup.gate.actions, policy_value)


def jitted_rollout(env: Env, policy_value: float = 0.0, rng=None):
  """The rollout under test; returns (steps, final) with results on the device."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  return rollout_lib.rollout(env.slm, env.llm, env.gate, env.batch, rng,
                             policy_args(env, policy_value), setup=env.setup)


def compile_rollout(env: Env, policy_value: float = 0.0):
  """(compiled executable, seconds to lower and compile)."""
  t0 = time.perf_counter()
  compiled = rollout_lib.rollout.lower(env.slm, env.llm, env.gate, env.batch,
                                       jax.random.PRNGKey(0), policy_args(env, policy_value),
                                       setup=env.setup).compile()
  return compiled, time.perf_counter() - t0


def model_info(cfg: model_config.ModelConfig, name: str) -> dict[str, Any]:
  return dict(preset=name, params=transformer.num_params(cfg), d_model=cfg.d_model,
              layers=cfg.num_layers, vocab=cfg.vocab_size)


def written_tokens(length_B, prompt_len_B) -> int:
  """Solution tokens a rollout wrote (the context beyond each prompt)."""
  return int(np.sum(np.asarray(length_B) - np.asarray(prompt_len_B)))


def block(tree):
  return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x,
                      tree)


def time_fn(fn: Callable[[], Any], *, repeats: int, min_time: float = 0.0) -> dict[str, Any]:
  """Median wall time of fn() (results blocked on), after one untimed warm-up call."""
  block(fn())
  times = []
  t_start = time.perf_counter()
  while len(times) < repeats or (time.perf_counter() - t_start < min_time and len(times) < 50):
    t0 = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - t0)
  return dict(median_s=statistics.median(times), min_s=min(times), runs=len(times))


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_info() -> dict[str, Any]:
  """The device the benchmark ran on, in words, and how loaded the host was (1-min average)."""
  d = jax.devices()[0]
  info = dict(platform=d.platform, device_kind=d.device_kind, num_devices=jax.device_count(),
              host_cpus=os.cpu_count(), cpu=_cpu_model(), jax=jax.__version__,
              load_avg_1m=os.getloadavg()[0])
  if d.platform == "cpu":
    info["device"] = f"{os.cpu_count()}-core CPU ({info['cpu']})"
  else:
    info["device"] = f"{jax.device_count()}x {d.device_kind}"
  return info


def maxrss_bytes() -> int:
  """Peak resident memory of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_of(compiled) -> dict[str, int] | None:
  """XLA's memory analysis of a compiled executable: bytes of arguments, outputs and temps."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (not every backend implements it)
    return None
  if m is None:
    return None
  out = dict(argument_bytes=int(m.argument_size_in_bytes), output_bytes=int(m.output_size_in_bytes),
             temp_bytes=int(m.temp_size_in_bytes), alias_bytes=int(m.alias_size_in_bytes))
  out["peak_bytes"] = (out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"]
                       - out["alias_bytes"])
  return out


def flops_of(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
    cost = cost[0]
  return float(cost.get("flops", 0.0))


def unit_flops(cfg: model_config.ModelConfig, tokens: int, cache_len: int) -> float:
  """XLA's FLOPs of one model call on one row: `tokens` new tokens, a cache of cache_len slots.
  (XLA counts a loop body once, so the rollout's own cost analysis cannot give totals; its
  work is counted as these units times how often they run, see rollout_work.)"""
  params = jax.eval_shape(lambda: transformer.init_params(cfg, jax.random.PRNGKey(0)))
  tok = jax.ShapeDtypeStruct((1, tokens), jnp.int32)
  cache = jax.eval_shape(lambda: transformer.init_cache(cfg, 1, cache_len))
  fn = jax.jit(lambda p, t, c: transformer.apply(p, cfg, t, t, c))
  return flops_of(fn.lower(params, tok, cache).compile())


def rollout_work(setup: rollout_lib.Setup, batch, steps) -> dict[str, float]:
  """FLOPs the jitted rollout executed, from its records (host replay of its schedule).

  SLM: the prompt prefill; at each step, one token for every row per iteration of the draft
  loop (it runs until the longest active draft ends); the absorb chunk of each LLM call. LLM:
  per step with calls, the catch-up chunks (W tokens each; chunk j on the compiled size that
  holds the rows still reading) and one token on N rows (the compiled size that holds the
  routed rows) per iteration until the longest answer ends. Each call is counted at the cache
  prefix its attention reads (RolloutConfig.kv_buckets), taken from the largest position in
  play (for the LLM, of the routed rows; an empty slot may read a longer prefix).
  `llm_flops_useful` counts only the tokens the LLM had to read or write (no padding).
  The replay ignores one rare case: a redacted request whose answer holds private spans (its
  step is read again at the next call).
  """
  cfg = setup.rollout
  prompt_BxP = np.asarray(batch["prompt_BxP"])
  B, P = prompt_BxP.shape
  S, K = cfg.num_steps, cfg.step_tokens
  L = P + S * K
  C = min(cfg.llm_capacity or B, B)
  W = llm_calls.catchup_width(K)
  sizes = np.asarray(llm_calls.llm_call_sizes(C, cfg.llm_sizes))
  red_A = np.array([a in rollout_lib.REDACTED_KINDS for a in setup.gate.actions])
  units: dict[tuple, float] = {}

  def unit(model_cfg, tokens, cache_len, needed):
    """FLOPs of one call on one row, at the bucket that holds `needed` cache slots."""
    lens = transformer.kv_bucket_lengths(cache_len, cfg.kv_buckets) if cfg.kv_buckets > 1 \
        else (cache_len,)
    n = lens[min(int(np.searchsorted(lens, needed)), len(lens) - 1)]
    key = (model_cfg, tokens, n)
    if key not in units:
      units[key] = unit_flops(model_cfg, tokens, n)
    return units[key]

  valid_SxB = np.asarray(steps.valid).astype(bool)
  routed_SxB = np.asarray(steps.routed).astype(bool)
  src_len_SxB = np.asarray(steps.context_tokens)
  gen_SxB = np.asarray(steps.llm_tokens)
  draft_SxB = np.where(valid_SxB, np.asarray(steps.draft_len), 0)
  red_SxB = red_A[np.asarray(steps.action)]
  step_len_SxB = np.where(routed_SxB, gen_SxB, draft_SxB)
  ctx_SxB = np.asarray(batch["prompt_len_B"])[None] + np.cumsum(step_len_SxB, 0) - step_len_SxB
  synced, kind = np.zeros(B, np.int64), np.zeros(B, bool)
  slm = B * unit(setup.slm, P, L, P)
  llm_exec = llm_useful = 0.0
  fed = generated = 0
  for s in range(S):
    top = int(ctx_SxB[s].max())
    slm += B * sum(unit(setup.slm, 1, L, top + t + 1) for t in range(int(draft_SxB[s].max())))
    rows = np.flatnonzero(routed_SxB[s])
    if not rows.size:
      continue
    N = int(sizes[np.searchsorted(sizes, rows.size)])
    red = red_SxB[s, rows]
    src_top = int(src_len_SxB[s, rows].max())
    pending = src_len_SxB[s, rows] - np.where(kind[rows] == red, synced[rows], 0)
    for j in range(-(-int(pending.max()) // W)):
      M = int(sizes[np.searchsorted(sizes, int(np.sum(pending > j * W)))])
      llm_exec += M * unit(setup.llm, W, L + K, src_top)
    gen_top = int(gen_SxB[s, rows].max())
    llm_exec += N * sum(unit(setup.llm, 1, L + K, src_top + t + 1) for t in range(gen_top))
    token = unit(setup.llm, 1, L + K, src_top)
    llm_useful += (pending.sum() + gen_SxB[s, rows].sum()) * token
    slm += N * unit(setup.slm, K, L, int(ctx_SxB[s, rows].max()) + K)
    fed += int(pending.sum())
    generated += int(gen_SxB[s, rows].sum())
    synced[rows] = src_len_SxB[s, rows] + gen_SxB[s, rows]
    kind[rows] = red
  return dict(slm_flops=slm, llm_flops=llm_exec, llm_flops_useful=llm_useful,
              total_flops=slm + llm_exec, llm_tokens_read=fed, llm_tokens_written=generated,
              unit_flops={f"{'slm' if k[0] is setup.slm else 'llm'}_T{k[1]}_L{k[2]}": v
                          for k, v in units.items()})


def parser(description: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--quick", action="store_true", help="small sizes: finishes in under 2 min")
  p.add_argument("--out", default="", help="also write the JSON result to this file")
  return p


def rollout_parser(description: str, *, step_tokens: bool = True,
                   rounds: bool = False) -> argparse.ArgumentParser:
  """`parser` with the rollout benchmarks' pair and shape flags."""
  p = parser(description)
  p.add_argument("--slm", default="slm_s")
  p.add_argument("--llm", default="llm_s")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--num_steps", type=int, default=8)
  if step_tokens:
    p.add_argument("--step_tokens", type=int, default=16)
  if rounds:
    p.add_argument("--rounds", type=int, default=7)
  return p


def emit(result: dict[str, Any], out: str = "") -> dict[str, Any]:
  """Prints the result as one JSON line (the last line of output); writes it to `out` too."""
  result = dict(result, device=device_info(), argv=sys.argv[1:],
                maxrss_bytes=maxrss_bytes())
  line = json.dumps(result, sort_keys=True, default=_jsonable)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      json.dump(json.loads(line), f, indent=2, sort_keys=True)
      f.write("\n")
  print(line, flush=True)
  return result


def _jsonable(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, (np.ndarray, jnp.ndarray)):
    return np.asarray(x).tolist()
  return str(x)


def log(*args):
  """Progress to stderr, so stdout's last line stays the JSON result."""
  print(*args, file=sys.stderr, flush=True)
