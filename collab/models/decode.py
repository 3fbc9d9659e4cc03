"""Greedy / temperature decoding with the KV cache, in one jitted function.

generate: prefill the right-padded prompt into a cache of P + max_new_tokens slots (pad slots are
overwritten by generated tokens before any query can read them, see transformer.py), take each
row's next token from the logits at position prompt_len - 1 (the only logits the prefill
computes), then a `lax.while_loop` of T=1
steps that exits as soon as every row has emitted `stop_id`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from collab.models import transformer
from collab.models.config import ModelConfig


def argmax(logits_BxV: jax.Array) -> jax.Array:
  """jnp.argmax over the last axis (the first maximum), as int32: on CPU, XLA's variadic
  argmax reduction is ~6x slower than a max and a min over indices, once per decoded token."""
  V = logits_BxV.shape[-1]
  max_Bx1 = jnp.max(logits_BxV, axis=-1, keepdims=True)
  return jnp.min(jnp.where(logits_BxV == max_Bx1, jnp.arange(V, dtype=jnp.int32), V), axis=-1)


def sample_logits(logits_BxV: jax.Array, temperature: jax.Array | float,
                  rng: jax.Array) -> jax.Array:
  """argmax when temperature == 0, else a sample from softmax(logits / temperature).

  A traced temperature picks the branch with `lax.cond`, so greedy decoding does not draw
  B x V Gumbel numbers per token (threefry on a 49,152-token vocabulary costs a tenth of a
  decode step of a 135M model on CPU); a Python float picks it when tracing."""
  def sampled(logits_BxV):
    safe_t = jnp.maximum(jnp.asarray(temperature, jnp.float32), 1e-6)
    return jax.random.categorical(rng, logits_BxV / safe_t, axis=-1).astype(jnp.int32)

  if isinstance(temperature, (int, float)):
    return sampled(logits_BxV) if temperature > 0 else argmax(logits_BxV)
  return jax.lax.cond(jnp.asarray(temperature) > 0, sampled, argmax, logits_BxV)


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "stop_id", "pad_id",
                                             "kv_buckets"))
def _generate(params, cfg: ModelConfig, prompt_BxP, prompt_len_B, temperature, rng, *,
              max_new_tokens: int, stop_id: int, pad_id: int, kv_buckets: int = 1):
  B, P = prompt_BxP.shape
  N = max_new_tokens
  prompt_len_B = jnp.clip(prompt_len_B.astype(jnp.int32), 1, P)
  cache = transformer.init_cache(cfg, B, P + N)
  logits_Bx1xV, _, cache = transformer.apply(
      params, cfg, prompt_BxP, transformer.default_positions(prompt_BxP), cache,
      kv_buckets=kv_buckets, logits_at_B=prompt_len_B - 1)
  last_BxV = logits_Bx1xV[:, 0]
  rng, step_rng = jax.random.split(rng)
  tok_B = sample_logits(last_BxV, temperature, step_rng)

  out_BxN = jnp.full((B, N), pad_id, jnp.int32).at[:, 0].set(tok_B)
  done_B = tok_B == stop_id
  len_B = jnp.ones((B,), jnp.int32)

  def cond(carry):
    i, _, _, done_B, _, _, _ = carry
    return (i < N) & ~jnp.all(done_B)

  def body(carry):
    # Feed token i-1 (at position prompt_len + i - 1), emit token i.
    i, tok_B, cache, done_B, len_B, out_BxN, rng = carry
    pos_Bx1 = (prompt_len_B + i - 1)[:, None]
    logits_Bx1xV, _, cache = transformer.apply(params, cfg, tok_B[:, None], pos_Bx1, cache,
                                               kv_buckets=kv_buckets)
    rng, step_rng = jax.random.split(rng)
    tok_B = sample_logits(logits_Bx1xV[:, 0], temperature, step_rng)
    out_BxN = out_BxN.at[:, i].set(jnp.where(done_B, pad_id, tok_B))
    len_B = len_B + (~done_B).astype(jnp.int32)
    done_B = done_B | (tok_B == stop_id)
    return i + 1, tok_B, cache, done_B, len_B, out_BxN, rng

  carry = (jnp.int32(1), tok_B, cache, done_B, len_B, out_BxN, rng)
  _, _, _, _, len_B, out_BxN, _ = jax.lax.while_loop(cond, body, carry)
  return out_BxN, len_B


def generate(params, cfg: ModelConfig, prompt_BxP, prompt_len_B, *, max_new_tokens: int,
             stop_id: int, pad_id: int, temperature: float = 0.0, rng: jax.Array | None = None,
             kv_buckets: int = 1):
  """Continues right-padded prompts. Returns (new_tokens_BxN int32, new_len_B int32).

  prompt_BxP: right-padded token ids; prompt_len_B: real lengths (>= 1).
  After a row emits `stop_id` (kept in its output) its later outputs are `pad_id`; new_len_B
  counts tokens up to and including the stop (N when a row never stops). Greedy when
  temperature == 0 (temperature is traced: changing it does not recompile).
  For gpt2 presets, prompt_len + max_new_tokens should stay within cfg.max_len.
  kv_buckets > 1: attention reads only the cache prefix in use (transformer.attend_cached);
  the same tokens, less work per token while the cache is mostly empty, more to compile.
  """
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
  rng = jax.random.key(0) if rng is None else rng
  return _generate(params, cfg, jnp.asarray(prompt_BxP, jnp.int32),
                   jnp.asarray(prompt_len_B, jnp.int32), jnp.float32(temperature), rng,
                   max_new_tokens=int(max_new_tokens), stop_id=int(stop_id),
                   pad_id=int(pad_id), kv_buckets=int(kv_buckets))


def compile_generate(params, cfg: ModelConfig, prompt_BxP, prompt_len_B, *,
                     max_new_tokens: int, stop_id: int, pad_id: int, kv_buckets: int = 1):
  """`generate`'s executable for these shapes, compiled ahead of time (so a caller can time
  compiling and running apart). Call it as fn(params, prompt_BxP, prompt_len_B, temperature,
  rng): int32 prompts, a float32 temperature, a key; returns what generate returns."""
  return _generate.lower(params, cfg, jnp.asarray(prompt_BxP, jnp.int32),
                         jnp.asarray(prompt_len_B, jnp.int32), jnp.float32(0.0),
                         jax.random.key(0), max_new_tokens=int(max_new_tokens),
                         stop_id=int(stop_id), pad_id=int(pad_id),
                         kv_buckets=int(kv_buckets)).compile()


def decode_step(params, cfg: ModelConfig, cache, logits_BxV, hidden_BxD, start_B, active_B,
                rng, *, num_tokens: int, end_ids: tuple[int, ...], pad: int, temperature,
                kv_buckets: int = 1, line_end_ids: tuple[int, ...] = (),
                blank_ids: tuple[int, ...] = (), mean_hidden: bool = False):
  """Writes one step per active row, token by token, feeding each token back into the cache.

  A row stops after writing one of end_ids, or one of line_end_ids once it has written a token
  not in blank_ids (so a line of whitespace does not end a step). Returns tokens_BxK (pad after the step ends),
  len_B, token log-probs BxK, and the cache, logits and hidden state after the step's last
  token (unchanged for inactive rows). kv_buckets: see transformer.apply. mean_hidden: also
  returns the mean of the hidden states at the step's tokens, float32 BxD (0 where none).

  A `lax.while_loop` that leaves as soon as every row has ended its step: a line is often
  half of the K tokens it may take, and a fixed-length scan would run the models on the rest
  (for nothing: its writes for ended rows land in slots that are overwritten before any read).
  """
  B, K = logits_BxV.shape[0], num_tokens

  def cond(carry):
    t, running_B = carry[0], carry[4]
    return (t < K) & jnp.any(running_B)

  def body(carry):
    t, cache, logits_BxV, hidden_BxD, running_B, rng, tok_BxK, logp_BxK, wrote_BxK, sum_BxD = (
        carry[:10])
    rng, sample_rng = jax.random.split(rng)
    tok_B = sample_logits(logits_BxV, temperature, sample_rng)
    logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV), tok_B[:, None], -1)[:, 0]
    tok_B = jnp.where(running_B, tok_B, pad)
    new_logits_Bx1xV, new_hidden_Bx1xD, cache = transformer.apply(
        params, cfg, tok_B[:, None], (start_B + t)[:, None], cache, kv_buckets=kv_buckets)
    logits_BxV = jnp.where(running_B[:, None], new_logits_Bx1xV[:, 0], logits_BxV)
    hidden_BxD = jnp.where(running_B[:, None], new_hidden_Bx1xD[:, 0], hidden_BxD)
    tok_BxK = tok_BxK.at[:, t].set(tok_B)
    logp_BxK = logp_BxK.at[:, t].set(jnp.where(running_B, logp_B, 0.0))
    wrote_BxK = wrote_BxK.at[:, t].set(running_B)
    if mean_hidden:
      sum_BxD = sum_BxD + jnp.where(running_B[:, None], new_hidden_Bx1xD[:, 0], 0).astype(
          jnp.float32)
    ended_B = jnp.isin(tok_B, jnp.asarray(end_ids))
    if line_end_ids:  # the row's step has content once it wrote a non-blank token
      content_B = carry[10] | (running_B & ~jnp.isin(tok_B, jnp.asarray(blank_ids)))
      ended_B |= content_B & jnp.isin(tok_B, jnp.asarray(line_end_ids))
    running_B = running_B & ~ended_B
    out = (t + 1, cache, logits_BxV, hidden_BxD, running_B, rng, tok_BxK, logp_BxK, wrote_BxK,
           sum_BxD)
    return out + (content_B,) if line_end_ids else out

  carry = (jnp.int32(0), cache, logits_BxV, hidden_BxD, active_B, rng,
           jnp.full((B, K), pad, jnp.int32), jnp.zeros((B, K), jnp.float32),
           jnp.zeros((B, K), bool),
           # The summed states (a placeholder unless mean_hidden: no work on the hot path).
           jnp.zeros((B, hidden_BxD.shape[-1]) if mean_hidden else (), jnp.float32))
  if line_end_ids:
    carry += (jnp.zeros((B,), bool),)
  _, cache, logits_BxV, hidden_BxD, _, _, tok_BxK, logp_BxK, wrote_BxK, sum_BxD = (
      jax.lax.while_loop(cond, body, carry)[:10])
  len_B = wrote_BxK.sum(1)
  out = (tok_BxK, len_B, logp_BxK, cache, logits_BxV, hidden_BxD)
  return out + (sum_BxD / jnp.maximum(len_B, 1)[:, None],) if mean_hidden else out
