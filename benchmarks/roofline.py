"""Achieved FLOP/s of the rollout and of pretraining against the machine's matmul peak; memory;
how rollout time grows with batch, steps and model size.

    python -m benchmarks.roofline [--quick] [--out F]

peak        FLOP/s of a large jitted float32 matmul (n x n @ n x n), measured in this run.
rollout     executed FLOPs (benchmarks/common.rollout_work: XLA cost analysis of each model
            call times how often the rollout runs it) / median time, default pair and batch,
            the learned-gate policy as in benchmarks/rollout.py.
train       one pretraining step (collab/train/pretrain.py: AdamW, forward + backward) of the
            LLM preset at batch 64 x 104 tokens; FLOPs from XLA's cost analysis (the step has
            no loops, so the count is exact) / median time.
memory      XLA's memory analysis of each compiled program (arguments + outputs + temporaries -
            aliased: what the executable needs at its peak), and the process's max RSS.
scaling     rollout time as one of batch, steps or model pair changes from the default.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from collab.models import presets
from collab.models import transformer
from collab.train import pretrain

SEQ_LEN = 104  # configs/pretrain.py


def matmul_peak(n: int, repeats: int) -> dict:
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
  mm = jax.jit(lambda x, y: x @ y)
  t = common.time_fn(lambda: mm(a, b), repeats=repeats, min_time=1.0)
  return dict(n=n, flops=2.0 * n ** 3, time_s=t["min_s"], flops_per_s=2.0 * n ** 3 / t["min_s"])


def rollout_point(*, slm, llm, batch_size, num_steps, step_tokens, repeats, tok, llm_sizes,
                  memory: bool = False) -> dict:
  env = common.make_env(slm=slm, llm=llm, batch_size=batch_size, num_steps=num_steps,
                        step_tokens=step_tokens, tok=tok, llm_sizes=llm_sizes)
  compiled, compile_s = common.compile_rollout(env)
  t = common.time_fn(lambda: common.jitted_rollout(env), repeats=repeats)
  steps, final = jax.device_get(common.jitted_rollout(env))
  out = dict(slm=slm, llm=llm, batch=batch_size, num_steps=num_steps, step_tokens=step_tokens,
             compile_s=compile_s, time_s=t["median_s"], call_rate=float(
                 np.sum(final.calls_B) / max(np.sum(steps.valid), 1)),
             tokens_per_s=common.written_tokens(final.length_B, env.batch["prompt_len_B"])
             / t["median_s"])
  if memory:
    work = common.rollout_work(env.setup, env.batch, steps)
    out.update(flops=work["total_flops"], llm_flops=work["llm_flops"],
               llm_flops_useful=work["llm_flops_useful"],
               flops_per_s=work["total_flops"] / t["median_s"],
               memory=common.memory_of(compiled))
  return out


def train_point(model: str, batch_size: int, repeats: int, vocab: int) -> dict:
  cfg = presets.get_model_config(model, vocab)
  tx = optax.adamw(1e-3)
  params = transformer.init_params(cfg, jax.random.PRNGKey(0))
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
  tokens = jax.random.randint(jax.random.PRNGKey(1), (batch_size, SEQ_LEN), 0, vocab)
  batch = {"tokens_BxT": tokens, "loss_mask_BxT": jnp.ones((batch_size, SEQ_LEN), jnp.float32)}
  step = pretrain.make_train_step(cfg, tx)
  compiled = step.lower(state, batch).compile()
  flops = common.flops_of(compiled)
  holder = [state]

  def one():
    holder[0], metrics = step(holder[0], batch)  # the state is donated: keep the new one
    return metrics
  t = common.time_fn(one, repeats=repeats, min_time=2.0)
  return dict(model=model, params=common.model_info(cfg, model)["params"], batch=batch_size,
              seq_len=SEQ_LEN, flops=flops, time_s=t["median_s"],
              flops_per_s=flops / t["median_s"],
              tokens_per_s=batch_size * SEQ_LEN / t["median_s"],
              memory=common.memory_of(compiled))


def main(argv=None):
  p = common.rollout_parser(__doc__, step_tokens=False)
  p.add_argument("--matmul_n", type=int, default=0, help="0: 2048 on CPU, 8192 otherwise")
  p.add_argument("--llm_sizes", type=int, default=4,
                 help="row counts the LLM call compiles for (RolloutConfig.llm_sizes)")
  args = p.parse_args(argv)
  quick = args.quick
  if quick:  # tiny models, two compiled LLM call sizes: every compile takes seconds
    args.slm, args.llm, args.batch, args.num_steps, args.llm_sizes = (
        "test_tiny", "test_tiny", 16, 4, 2)
  n = args.matmul_n or (1024 if quick else 2048 if jax.devices()[0].platform == "cpu" else 8192)
  tok = common.make_tokenizer()
  K = 16

  common.log(f"[roofline] matmul peak, n={n}")
  peak = matmul_peak(n, repeats=3)
  common.log("[roofline] rollout")
  roll = rollout_point(slm=args.slm, llm=args.llm, batch_size=args.batch,
                       num_steps=args.num_steps, step_tokens=K, repeats=2 if quick else 5,
                       tok=tok, llm_sizes=args.llm_sizes, memory=True)
  common.log("[roofline] pretraining step")
  train = train_point(args.llm, 16 if quick else 64, repeats=3 if quick else 10,
                      vocab=tok.vocab_size)

  common.log("[roofline] scaling")
  if quick:
    grid = [dict(batch_size=8), dict(num_steps=2)]
  else:
    grid = ([dict(batch_size=b) for b in (16, 256)] + [dict(num_steps=s) for s in (4, 16)]
            + [dict(slm=f"slm_{m}", llm=f"llm_{m}") for m in ("m", "l")])
  base = dict(slm=args.slm, llm=args.llm, batch_size=args.batch, num_steps=args.num_steps,
              llm_sizes=args.llm_sizes)
  keep = ("slm", "llm", "batch", "num_steps", "time_s", "tokens_per_s", "call_rate",
          "compile_s")
  table = [{k: roll[k] for k in keep}]
  for change in grid:
    common.log(f"[roofline] scaling: {change}")
    point = rollout_point(**dict(base, **change), step_tokens=K, repeats=2 if quick else 3,
                          tok=tok)
    table.append({k: point[k] for k in keep})

  return common.emit(dict(
      benchmark="roofline", quick=quick, peak=peak, rollout=roll, train=train, scaling=table,
      rollout_fraction_of_peak=roll["flops_per_s"] / peak["flops_per_s"],
      train_fraction_of_peak=train["flops_per_s"] / peak["flops_per_s"],
      rollout_peak_memory_bytes=(roll["memory"] or {}).get("peak_bytes"),
      train_peak_memory_bytes=(train["memory"] or {}).get("peak_bytes"),
      memory_source="XLA memory_analysis of each compiled executable (argument + output + "
                    "temp - alias bytes); maxrss_bytes is the whole process's peak RSS"),
      args.out)


if __name__ == "__main__":
  main()
