"""Where greedy decoding of a real checkpoint spends its time: prefill, each decoded token, and
the floor its matrix products set, for the jitted decode and for transformers.

    python -m benchmarks.decode_profile [--quick] [--batch 32] [--tokens 16] [--out F]

SmolLM2-135M-Instruct (see benchmarks/real_decode.py), at one batch size, in one process:
  prefill_s        `generate` of 1 new token after the 64-token prompt (ours: decode.generate,
                   kv_buckets 4; transformers: generate with its DynamicCache, float32);
  step_s           (time of 1 + n new tokens - time of 1) / n: one decoded token for the batch;
  matmul_floor_s   the model's matrix products alone for one decoded token (every layer's
                   q, k, v, o, gate, up and down projections and the vocabulary projection, on the
                   real weights, batch x d_model activations), chained n times: ours in one
                   jitted loop, transformers' as torch.nn.functional.linear calls; in float32 and
                   bfloat16 (the same weights rounded).
A decoded token can be no faster than its matrix products, so hf step_s / ours matmul_floor_s
bounds how much faster than transformers any jitted decode on this backend can be. Timed
interleaved, best of `--rounds`.
"""
from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import hf_generate
from benchmarks import real_decode
from collab import errors
from collab.models import decode
from collab.models import gguf_io
from collab.models import real_models

DTYPES = ("float32", "bfloat16")


def _kernels(params, cfg) -> list[np.ndarray]:
  """The DxF kernels one decoded token multiplies by, in order, then the vocabulary's DxV."""
  out = []
  for i in range(cfg.num_layers):
    layer = params[f"layer_{i}"]
    out += [layer["self_attn"][n]["kernel"] for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
    out += [layer["mlp"][n]["kernel"] for n in ("gate_proj", "up_proj", "down_proj")]
  head = params["embed"]["embedding"].T if cfg.tie_embeddings else params["lm_head"]["kernel"]
  return [np.asarray(k) for k in out] + [np.asarray(head)]


def jax_matmuls(kernels, batch: int, n: int, dtype: str):
  """fn() running n tokens' matrix products in one jit (the residual keeps them dependent)."""
  ws = [jnp.asarray(k, dtype) for k in kernels]
  D = ws[0].shape[0]

  @jax.jit
  def run(ws, x_BxD):
    def token(_, x_BxD):
      for j in range(0, len(ws) - 1, 7):
        q, k, v, o, g, u, d = ws[j:j + 7]
        kv_Bx1 = jnp.sum(x_BxD @ k + x_BxD @ v, -1, keepdims=True)  # used, so not pruned
        x_BxD = x_BxD + (x_BxD @ q) @ o + kv_Bx1 * 1e-6
        x_BxD = x_BxD + (jax.nn.silu(x_BxD @ g) * (x_BxD @ u)) @ d
      return x_BxD + (x_BxD @ ws[-1])[:, :D] * 1e-6
    return jax.lax.fori_loop(0, n, token, x_BxD)

  x_BxD = jnp.full((batch, D), 0.01, dtype)
  return lambda: run(ws, x_BxD).block_until_ready()


def torch_matmuls(kernels, batch: int, n: int, dtype: str):
  torch = hf_generate.torch
  lin, tdtype = torch.nn.functional.linear, getattr(torch, dtype)
  ws = [torch.as_tensor(np.ascontiguousarray(k.T)).to(tdtype) for k in kernels]
  D = ws[0].shape[1]
  x0 = torch.full((batch, D), 0.01, dtype=tdtype)

  def run():
    x = x0
    with torch.no_grad():
      for _ in range(n):
        for j in range(0, len(ws) - 1, 7):
          q, k, v, o, g, u, d = ws[j:j + 7]
          kv = (lin(x, k) + lin(x, v)).sum(-1, keepdim=True)
          x = x + lin(lin(x, q), o) + kv * 1e-6
          x = x + lin(torch.nn.functional.silu(lin(x, g)) * lin(x, u), d)
        x = x + lin(x, ws[-1])[:, :D] * 1e-6
    return x
  return run


def run(gguf: str, *, batch: int, tokens: int, prompt_len: int, rounds: int,
        torch_threads: int) -> dict:
  params, cfg, tok = gguf_io.load_gguf(gguf)
  params = jax.device_put(params)
  prompt_BxP = real_decode.make_prompts(tok, batch, prompt_len)
  len_B = np.full((batch,), prompt_len, np.int32)
  kernels = _kernels(params, cfg)
  fns = {}
  for n in (1, 1 + tokens):
    gen = decode.compile_generate(params, cfg, prompt_BxP, len_B, max_new_tokens=n,
                                  stop_id=real_decode.NO_STOP, pad_id=real_decode.PAD,
                                  kv_buckets=4)
    fns[f"ours_{n}"] = (lambda gen: lambda: gen(params, prompt_BxP, len_B, np.float32(0.0),
                                                jax.random.key(0))[0].block_until_ready())(gen)
  for dtype in DTYPES:
    fns[f"ours_matmuls_{dtype}"] = jax_matmuls(kernels, batch, tokens, dtype)
  reason = hf_generate.unavailable_reason()
  if not reason:
    model = hf_generate.load(gguf, torch_threads)
    for n in (1, 1 + tokens):
      fns[f"hf_{n}"] = (lambda n: lambda: hf_generate.generate(model, prompt_BxP, n,
                                                               "dynamic"))(n)
    for dtype in DTYPES:
      fns[f"hf_matmuls_{dtype}"] = torch_matmuls(kernels, batch, tokens, dtype)
  for name, fn in fns.items():
    common.log(f"[decode_profile] {name}: first run")
    fn()
  times = {name: [] for name in fns}
  for r in range(rounds):
    common.log(f"[decode_profile] round {r + 1}/{rounds}")
    for name, fn in fns.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  best = {name: min(t) for name, t in times.items()}
  result = dict(batch=batch, tokens=tokens, prompt_len=prompt_len, rounds=rounds,
                matmul_gflop_per_token=2 * sum(k.size for k in kernels) * batch / 1e9)
  for impl in ("ours", "hf") if not reason else ("ours",):
    prefill, longer = best[f"{impl}_1"], best[f"{impl}_{1 + tokens}"]
    result[impl] = dict(prefill_s=prefill, step_s=(longer - prefill) / tokens,
                        **{f"matmul_floor_{d}_s": best[f"{impl}_matmuls_{d}"] / tokens
                           for d in DTYPES})
  if reason:
    result["transformers"] = dict(skipped=reason)
  else:
    result["transformers"] = hf_generate.versions()
    ours, hf = result["ours"], result["hf"]
    result["step_speedup"] = hf["step_s"] / ours["step_s"]
    result["prefill_speedup"] = hf["prefill_s"] / ours["prefill_s"]
    result["step_speedup_bound_float32"] = hf["step_s"] / ours["matmul_floor_float32_s"]
  return result


def main(argv=None):
  p = common.parser(__doc__)
  p.add_argument("--gguf", default="")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--tokens", type=int, default=16, help="decoded tokens timed per step")
  p.add_argument("--prompt_len", type=int, default=64)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--torch_threads", type=int, default=1)
  args = p.parse_args(argv)
  if args.quick:
    args.batch, args.tokens, args.rounds = 4, 4, 1
  gguf = args.gguf or real_models.find("smollm2")
  if not gguf:
    raise errors.UserError(real_models.missing_reason("smollm2"))
  if args.batch < 1 or args.tokens < 1:
    raise errors.UserError(f"--batch and --tokens must be >= 1, got {args.batch}, {args.tokens}")
  result = run(gguf, batch=args.batch, tokens=args.tokens, prompt_len=args.prompt_len,
               rounds=args.rounds, torch_threads=args.torch_threads)
  return common.emit(dict(result, benchmark="decode_profile", quick=args.quick), args.out)


if __name__ == "__main__":
  errors.wrap(main)(sys.argv[1:])
