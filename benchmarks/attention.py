"""One decoded token's attention over a KV cache, in the three equal forms of
collab/models/transformer.py, side by side: two 5-D einsums (`attend_einsum`, the prefill's
form), broadcast products summed (`attend_one`) and 3-D batched matrix products
(`attend_matmul`), and which of them `attend` picks.

    python -m benchmarks.attention [--quick] [--out F]

Shapes are SmolLM2-135M-Instruct's (9 query heads, 3 KV heads, head_dim 64) and Gemma 3
270M's (4 / 1, head_dim 256), at batch 1, 8 and 30 (the SmolLM2 pair's evaluation batch) and
cache lengths 64 to 640 (configs/pairs/smollm2.py's rollout reaches 192 + 8 x 48 = 576
slots). One call = `layers` attention calls chained in one jit (each output feeds the next
query), as a decoded token runs them, timed as the median of repeated calls; every form gets
the same inputs and its output is compared with the einsums'.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from collab.models import transformer

# name: (query heads, KV heads, head_dim, layers)
MODELS = {"smollm2": (9, 3, 64, 30), "gemma3": (4, 1, 256, 18)}
FORMS = {"einsum": transformer.attend_einsum, "broadcast": transformer.attend_one,
         "matmul": transformer.attend_matmul}


def _chained(form, layers: int):
  """fn(q, k, v, visible) running `layers` attention calls, each query the last output."""
  attend = FORMS[form]

  @jax.jit
  def run(q_Bx1xNxH, k_BxKxSxH, v_BxKxSxH, visible_BxS):
    scale = q_Bx1xNxH.shape[-1] ** -0.5
    visible = visible_BxS[:, None] if form == "einsum" else visible_BxS  # einsum: BxTxS

    def layer(_, q):
      return attend(q, k_BxKxSxH, v_BxKxSxH, visible, scale)
    return jax.lax.fori_loop(0, layers, layer, q_Bx1xNxH)
  return run


def point(model: str, batch: int, slots: int, repeats: int) -> dict:
  N, K, H, layers = MODELS[model]
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.standard_normal((batch, 1, N, H)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((batch, K, slots, H)), jnp.float32)
  v = jnp.asarray(rng.standard_normal((batch, K, slots, H)), jnp.float32)
  # Rows at different lengths, as in a rollout: row b sees its first slots - b % 8 keys.
  visible = jnp.arange(slots)[None, :] < (slots - jnp.arange(batch) % 8)[:, None]
  out, times = {}, {}
  for form in FORMS:
    fn = _chained(form, layers)
    out[form] = np.asarray(fn(q, k, v, visible))
    times[form] = common.time_fn(lambda: fn(q, k, v, visible), repeats=repeats,
                                 min_time=0.5)["median_s"]
  # What `attend` runs at these shapes: the form whose output it matches exactly.
  picked = transformer.attend(q, k, v, jnp.full((batch, 1), slots - 1),
                              jnp.where(visible, jnp.arange(slots), slots))
  chosen = next(f for f in ("broadcast", "matmul")
                if np.array_equal(np.asarray(picked), np.asarray(
                    FORMS[f](q, k, v, visible, H ** -0.5))))
  return dict(model=model, batch=batch, slots=slots, layers=layers, chosen=chosen,
              **{f"{f}_s": times[f] for f in FORMS},
              einsum_over_chosen=times["einsum"] / times[chosen],
              best=min(FORMS, key=times.get),
              max_abs_diff={f: float(np.max(np.abs(out[f] - out["einsum"]))) for f in FORMS})


def main(argv=None):
  args = common.parser(__doc__).parse_args(argv)
  grid = ([("smollm2", b, s) for b in (1, 30) for s in (64, 576)] if args.quick else
          [(m, b, s) for m in MODELS for b in (1, 8, 30) for s in (64, 192, 576, 640)])
  rows = []
  for model, batch, slots in grid:
    rows.append(point(model, batch, slots, repeats=3 if args.quick else 7))
    r = rows[-1]
    common.log(f"[attention] {model} batch {batch} slots {slots}: " + ", ".join(
        f"{f} {r[f + '_s'] * 1e3:.1f} ms" for f in FORMS) + f"; attend picks {r['chosen']}")
  return common.emit(dict(benchmark="attention", quick=args.quick, points=rows), args.out)


if __name__ == "__main__":
  main()
