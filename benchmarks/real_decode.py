"""Decoding a real checkpoint: the project's jitted decode against transformers' `generate`.

    python -m benchmarks.real_decode [--quick] [--batches 1,8,32] [--new_tokens 128]
        [--prompt_len 64] [--kv_buckets 4] [--torch_threads 1] [--gguf FILE] [--out F]

SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32; `make real-models` fetches it),
greedy, `--new_tokens` after a `--prompt_len`-token prompt (distinct windows of one English
text, unpadded), no end token, so every row writes every token. At each batch size, in this one
process, on the same weights and prompts:
  ours               collab.models.decode.generate: prefill, then one lax.while_loop of
                     single-token steps, all in one compiled XLA program; attention reads the
                     cache prefix in use (`--kv_buckets`);
  ours_whole_cache   the same with attention over the whole cache (when --kv_buckets > 1);
  hf_dynamic         transformers `generate` (its own GGUF import, float32) with its default
                     DynamicCache;
  hf_static          the same with cache_implementation="static" (eager on a CPU: transformers
                     torch.compiles a static-cache forward only on accelerators);
  rollout            collab.rollout.rollout with the same model as SLM and as helper LLM, in 8
                     decision steps of new_tokens / 8 tokens, the LLM asked at 1 step in 8
                     (Policy every_k, k=8: every row asks at the last step).
The new tokens of ours and of transformers are compared row by row, and the rollout's against
ours (with the helper being the same model, a greedy rollout writes what greedy decoding writes,
up to float rounding between chunked and token-by-token prefill).

Timing: each is compiled (ours and the rollout: ahead of time, timed apart) and run once, then
they are timed interleaved, round after round, so a busy spell on a shared machine hits all
alike; times are the best of the rounds (medians too). Memory: XLA's memory analysis of the
compiled programs, and the process's peak RSS after each warm-up phase (ours, then the rollout,
then transformers; each phase's increase is an upper bound on what it added).
Goal (issue 20): ours at least TARGET x transformers' tokens/s at batch 32.
"""
from __future__ import annotations

import statistics
import sys
import time

import jax
import numpy as np

from benchmarks import common
from benchmarks import hf_generate
from collab import errors
from collab import gating
from collab import rollout as rollout_lib
from collab.models import decode
from collab.models import gguf_io
from collab.models import real_models

TARGET = 5.0        # ours / hf_dynamic tokens/s at TARGET_BATCH
TARGET_BATCH = 32
STEPS = 8           # the rollout's decisions; its helper writes the last one (k = 8)
NO_STOP = -1        # an id no row ever writes: decoding runs every token
PAD = 0
TEXT = (
    "The history of the printing press begins in the fifteenth century, when movable type "
    "made books cheaper. Within fifty years millions of copies circulated across Europe, "
    "changing how ideas spread. Natalia sold clips to 48 of her friends in April, and then she "
    "sold half as many clips in May. Weng earns $12 an hour for babysitting; yesterday she did "
    "50 minutes of babysitting. Betty is saving money for a new wallet which costs $100, and "
    "her parents decided to give her $15 for that purpose. Rivers carve valleys over millions "
    "of years, and the sediment they carry builds deltas where they meet the sea. ")


def make_prompts(tok, batch: int, prompt_len: int) -> np.ndarray:
  """batch x prompt_len ids: row b is the window of the text's ids starting at token 5 * b."""
  ids = tok.encode(TEXT)
  need = prompt_len + 5 * batch
  ids = (ids * (need // len(ids) + 1))[:need]
  return np.stack([ids[5 * b:5 * b + prompt_len] for b in range(batch)]).astype(np.int32)


def rollout_setup(cfg, new_tokens: int, kv_buckets: int) -> rollout_lib.Setup:
  """The model as SLM and helper; line ends and solution ends that no token matches (ids past
  the vocabulary), so every step writes its K tokens and no row ends early."""
  V = cfg.vocab_size
  return rollout_lib.Setup(
      slm=cfg, llm=cfg, gate=gating.GateConfig(actions=("self", "ask")),
      rollout=rollout_lib.RolloutConfig(num_steps=STEPS, step_tokens=new_tokens // STEPS,
                                        granularity="tokens", budget=STEPS, llm_sizes=1,
                                        kv_buckets=kv_buckets),
      specials=rollout_lib.Specials(pad=PAD, eos=V, sep=V + 1, priv_open=V + 2,
                                    priv_close=V + 3, redacted=V + 4))


def rollout_batch(prompt_BxP: np.ndarray, setup: rollout_lib.Setup) -> dict[str, np.ndarray]:
  B, P = prompt_BxP.shape
  S, K = setup.rollout.num_steps, setup.rollout.step_tokens
  len_B = np.full((B,), P, np.int32)
  return dict(prompt_BxP=prompt_BxP, prompt_len_B=len_B, redacted_prompt_BxP=prompt_BxP,
              redacted_prompt_len_B=len_B, ref_steps_BxSxK=np.full((B, S, K), PAD, np.int32),
              ref_len_BxS=np.zeros((B, S), np.int32),
              answer_BxA=np.full((B, 1), setup.specials.eos, np.int32),
              row_id_B=np.arange(B, dtype=np.int32))


def agreement(ref_BxN: np.ndarray, got_BxN: np.ndarray) -> dict:
  """Rows whose tokens all agree, and the mean length of the agreeing prefix (a greedy row
  that diverges once continues differently, so tokens after the first difference say little)."""
  same_BxN = np.asarray(ref_BxN) == np.asarray(got_BxN)
  prefix_B = np.where(same_BxN.all(1), same_BxN.shape[1], np.argmin(same_BxN, axis=1))
  return dict(rows_identical=float(same_BxN.all(1).mean()),
              prefix_agreement=float(prefix_B.mean() / same_BxN.shape[1]),
              first_difference=[int(p) for p in prefix_B if p < same_BxN.shape[1]])


def prepare(params, cfg, prompt_BxP, *, new_tokens: int, kv_buckets: int, hf_model):
  """Compiles and warms up each implementation at one batch size; returns {name: fn() ->
  new tokens BxN}, compile seconds, first-run seconds, XLA memory and RSS after each phase."""
  B, P = prompt_BxP.shape
  len_B = np.full((B,), P, np.int32)
  fns, compile_s, memory, rss = {}, {}, {}, {}

  temperature, key = np.float32(0.0), jax.random.key(0)
  for name, buckets in (("ours", kv_buckets), ("ours_whole_cache", 1)):
    if name == "ours_whole_cache" and kv_buckets == 1:
      continue
    t0 = time.perf_counter()
    gen = decode.compile_generate(params, cfg, prompt_BxP, len_B, max_new_tokens=new_tokens,
                                  stop_id=NO_STOP, pad_id=PAD, kv_buckets=buckets)
    compile_s[name] = time.perf_counter() - t0
    memory[name] = common.memory_of(gen)
    fns[name] = (lambda gen: lambda: gen(params, prompt_BxP, len_B, temperature, key)[0])(gen)

  setup = rollout_setup(cfg, new_tokens, kv_buckets)
  batch = rollout_batch(prompt_BxP, setup)
  gate = gating.init_gate(setup.gate, cfg.d_model, jax.random.key(1))
  policy = rollout_lib.Policy(kind="every_k", k=STEPS).args(STEPS, setup.gate.actions)
  t0 = time.perf_counter()
  roll = rollout_lib.rollout.lower(params, params, gate, batch, key, policy,
                                   setup=setup).compile()
  compile_s["rollout"] = time.perf_counter() - t0
  memory["rollout"] = common.memory_of(roll)
  fns["rollout"] = lambda: roll(params, params, gate, batch, key, policy)[1]

  if hf_model is not None:
    for cache in hf_generate.CACHES:
      fns[f"hf_{cache}"] = (lambda c: lambda: hf_generate.generate(
          hf_model, prompt_BxP, new_tokens, c))(cache)

  outputs, first_s = {}, {}
  for name, fn in fns.items():
    common.log(f"[real_decode] batch {B}: {name}, first run")
    t0 = time.perf_counter()
    out = jax.device_get(fn())
    first_s[name] = time.perf_counter() - t0
    if name == "rollout":  # its tokens after the prompt, and the calls it made
      outputs["rollout_calls"] = int(np.sum(out.calls_B))
      out = np.asarray(out.tokens_BxL)[:, P:P + new_tokens]
    outputs[name] = np.asarray(out)
    rss[name] = common.maxrss_bytes()
  return fns, outputs, compile_s, first_s, memory, rss


def run(gguf: str, *, batches: tuple[int, ...], new_tokens: int, prompt_len: int,
        kv_buckets: int, rounds: int, torch_threads: int) -> dict:
  common.log(f"[real_decode] loading {gguf}")
  t0 = time.perf_counter()
  params, cfg, tok = gguf_io.load_gguf(gguf)
  params = jax.device_put(params)
  load_s = {"ours": time.perf_counter() - t0}
  rss_loaded = common.maxrss_bytes()
  reason = hf_generate.unavailable_reason()
  hf_model = None
  if not reason:
    common.log("[real_decode] loading it into transformers")
    t0 = time.perf_counter()
    hf_model = hf_generate.load(gguf, torch_threads)
    load_s["transformers"] = time.perf_counter() - t0
  result = dict(model=dict(file=gguf, params=sum(x.size for x in jax.tree.leaves(params)),
                           layers=cfg.num_layers, d_model=cfg.d_model, vocab=cfg.vocab_size,
                           dtype=cfg.dtype),
                new_tokens=new_tokens, prompt_len=prompt_len, kv_buckets=kv_buckets,
                rounds=rounds, rollout=dict(steps=STEPS, step_tokens=new_tokens // STEPS,
                                            policy=f"every_k, k={STEPS}", call_rate=1 / STEPS,
                                            helper="the same model"),
                load_s=load_s, maxrss_after_load_bytes=rss_loaded, target=TARGET,
                target_batch=TARGET_BATCH, per_batch=[])
  if reason:
    result["transformers"] = dict(skipped=reason)
  else:
    result["transformers"] = dict(hf_generate.versions(), static_cache_note=(
        "runs on this device; eager: transformers compiles a static-cache forward only on "
        "cuda/xpu/neuron/tpu" if hf_generate.device() == "cpu" else "runs on this device"))

  for B in batches:
    prompt_BxP = make_prompts(tok, B, prompt_len)
    fns, outputs, compile_s, first_s, memory, rss = prepare(
        params, cfg, prompt_BxP, new_tokens=new_tokens, kv_buckets=kv_buckets,
        hf_model=hf_model)
    times = {name: [] for name in fns}
    for r in range(rounds):
      common.log(f"[real_decode] batch {B}: round {r + 1}/{rounds}")
      for name, fn in fns.items():
        t0 = time.perf_counter()
        common.block(fn())
        times[name].append(time.perf_counter() - t0)
    row = dict(batch=B)
    for name in fns:
      best, median = min(times[name]), statistics.median(times[name])
      row[name] = dict(time_s=best, time_median_s=median, tokens_per_s=B * new_tokens / best,
                       first_run_s=first_s[name], maxrss_after_warmup_bytes=rss[name])
      if name in compile_s:
        row[name].update(compile_s=compile_s[name], xla_memory=memory[name])
    if "ours_whole_cache" in fns:
      row["ours_whole_cache"]["tokens_vs_ours"] = agreement(outputs["ours"],
                                                            outputs["ours_whole_cache"])
      row["speedup_vs_whole_cache"] = row["ours_whole_cache"]["time_s"] / row["ours"]["time_s"]
    row["rollout"].update(tokens_vs_ours=agreement(outputs["ours"], outputs["rollout"]),
                          llm_calls=outputs["rollout_calls"],
                          call_rate=outputs["rollout_calls"] / (B * STEPS))
    row["rollout_time_vs_ours"] = row["rollout"]["time_s"] / row["ours"]["time_s"]
    for cache in hf_generate.CACHES if hf_model is not None else ():
      name = f"hf_{cache}"
      row[name]["tokens_vs_ours"] = agreement(outputs[name], outputs["ours"])
      row[f"speedup_vs_{name}"] = row[name]["time_s"] / row["ours"]["time_s"]
      row[f"speedup_vs_{name}_medians"] = (row[name]["time_median_s"]
                                          / row["ours"]["time_median_s"])
    result["per_batch"].append(row)
    common.log(f"[real_decode] batch {B}: " + ", ".join(
        f"{n} {row[n]['tokens_per_s']:.1f} tok/s" for n in fns))
  at = {row["batch"]: row for row in result["per_batch"]}
  if TARGET_BATCH in at and hf_model is not None:
    result["speedup_at_target_batch"] = at[TARGET_BATCH]["speedup_vs_hf_dynamic"]
    result["meets_target"] = result["speedup_at_target_batch"] >= TARGET
  return result


def main(argv=None):
  p = common.parser(__doc__)
  p.add_argument("--gguf", default="", help="the GGUF file (default: SmolLM2-135M-Instruct "
                 "in the real-models cache, see docs/real_models.md)")
  p.add_argument("--batches", default="1,8,32")
  p.add_argument("--new_tokens", type=int, default=128)
  p.add_argument("--prompt_len", type=int, default=64)
  p.add_argument("--kv_buckets", type=int, default=4,
                 help="cache prefix lengths attention picks from, in ours and the rollout; "
                      "> 1 also times ours with 1 (the whole cache)")
  p.add_argument("--rounds", type=int, default=0, help="timed rounds (0: 2, or 1 with --quick)")
  p.add_argument("--torch_threads", type=int, default=1,
                 help="torch intra-op threads on CPU (0: torch's default, all cores)")
  args = p.parse_args(argv)
  if args.quick:  # one small batch, 16 new tokens (2 per decision step), fewer compiles
    args.batches, args.new_tokens, args.kv_buckets = "4", 16, 1
  gguf = args.gguf or real_models.find("smollm2")
  if not gguf:
    raise errors.UserError(real_models.missing_reason("smollm2"))
  try:
    batches = tuple(int(b) for b in args.batches.split(","))
  except ValueError as e:
    raise errors.UserError(f"--batches must be a comma list of integers, got "
                           f"{args.batches!r}") from e
  if min(batches) < 1 or args.new_tokens < STEPS or args.new_tokens % STEPS:
    raise errors.UserError(f"batches must be >= 1 and --new_tokens a multiple of {STEPS} "
                           f"(the rollout's decisions), got {batches}, {args.new_tokens}")
  result = run(gguf, batches=batches, new_tokens=args.new_tokens, prompt_len=args.prompt_len,
               kv_buckets=args.kv_buckets, rounds=args.rounds or (1 if args.quick else 2),
               torch_threads=args.torch_threads)
  return common.emit(dict(result, benchmark="real_decode", quick=args.quick), args.out)


if __name__ == "__main__":
  errors.wrap(main)(sys.argv[1:])
