"""Decoder-only transformers (Flax linen) behind a pure functional API, gemma style.

    params = init_params(cfg, rng)
    cache = init_cache(cfg, batch_size, cache_len)
    logits_BxTxV, hidden_BxTxD, cache = apply(params, cfg, tokens_BxT, positions_BxT, cache)

Three lineages share the interface: 'llama' (RMSNorm, RoPE, SwiGLU, grouped-query attention),
'gpt2' (LayerNorm, learned positions, GELU, biases) and 'gemma3' (llama's attention with q/k
RMSNorm per head, sliding-window layers interleaved with global ones, each kind with its own
RoPE base; four zero-centred RMSNorms per block, x * (1 + w), computed in float32; embeddings
scaled by sqrt(d_model); GeGLU). Parameter names follow Hugging Face (layer_i/{input_layernorm,
self_attn/{q,k,v,o}_proj, self_attn/{q,k}_norm, post_attention_layernorm,
pre_feedforward_layernorm, post_feedforward_layernorm, mlp/{gate,up,down}_proj}, embed,
final_norm, lm_head; Dense kernels are the transposes of torch Linear weights, a norm's `scale`
is HF's weight) so HF checkpoints map with a flat renaming.

Sliding windows. A sliding layer's query at position p sees keys at positions p-W+1..p. Its
cache is the same full-length, slot == position cache as a global layer's (so the right-padding
invariant below holds unchanged), and cached attention reads only a bucketed slice of it that
covers every row's window (`attend_cached`), never the whole prefix.

KV cache and positions. The cache holds k and v as BxKxSxH (kv heads before slots: the layout
the attention contractions read without a transpose; on CPU, transposing a BxSxKxH cache at
every decoded token cost more than the attention itself). `positions_BxT` are absolute per row.
With a cache, the k/v of each token is written to cache slot == its position (writes to
positions < 0 or >= cache_len are dropped), and a query at position p attends to slots 0..p.
Rows may sit at different offsets, and T may be 1 (decode) or more (chunked prefill). Invariant
that makes right-padded prompts safe: a slot is only read by queries at positions >= the slot,
and every such query is preceded (or accompanied, within the same chunk) by the write of the
real token at that position, which overwrites any pad k/v written there earlier. So callers
must feed each row's positions in order without gaps.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from collab.models.config import ModelConfig

Params = Any
Cache = dict[str, dict[str, jax.Array]]

_NEG_INF = -1e30  # finite, so a fully masked row would give a uniform softmax, not NaN


def rope_inv_freq(head_dim: int, theta: float, scaling=None) -> np.ndarray:
  """Inverse frequencies (head_dim // 2,) float32, as Hugging Face computes them.

  scaling: ModelConfig.rope_scaling (pairs or dict). 'linear' divides every frequency by
  `factor`; 'llama3' (Llama 3.1/3.2) divides low frequencies by `factor`, keeps high ones and
  interpolates between (both have attention factor 1, so cos/sin are not rescaled).
  """
  inv_freq_F = 1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32)
                                             / np.float32(head_dim)))
  inv_freq_F = inv_freq_F.astype(np.float32)
  if not scaling:
    return inv_freq_F
  s = dict(scaling)
  factor = np.float32(s["factor"])
  if s["rope_type"] == "linear":
    return (inv_freq_F / factor).astype(np.float32)
  if s["rope_type"] != "llama3":
    raise ValueError(f"Unsupported rope_scaling {s!r}")
  low, high = np.float32(s["low_freq_factor"]), np.float32(s["high_freq_factor"])
  old_len = np.float32(s["original_max_position_embeddings"])
  wavelen_F = np.float32(2 * np.pi) / inv_freq_F
  scaled_F = np.where(wavelen_F > old_len / low, inv_freq_F / factor, inv_freq_F)
  smooth_F = (old_len / wavelen_F - low) / (high - low)
  smoothed_F = (1 - smooth_F) * scaled_F / factor + smooth_F * scaled_F
  medium_F = ~(wavelen_F < old_len / high) & ~(wavelen_F > old_len / low)
  return np.where(medium_F, smoothed_F, scaled_F).astype(np.float32)


def rope(x_BxTxNxH: jax.Array, positions_BxT: jax.Array, theta: float,
         scaling=None) -> jax.Array:
  """Rotary embedding, rotate-half convention of HF Llama (first half pairs with second)."""
  inv_freq_F = jnp.asarray(rope_inv_freq(x_BxTxNxH.shape[-1], theta, scaling))
  angles_BxTxF = positions_BxT.astype(jnp.float32)[..., None] * inv_freq_F
  angles_BxTx1xH = jnp.concatenate([angles_BxTxF, angles_BxTxF], axis=-1)[:, :, None, :]
  x = x_BxTxNxH.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  out = x * jnp.cos(angles_BxTx1xH) + rotated * jnp.sin(angles_BxTx1xH)
  return out.astype(x_BxTxNxH.dtype)


def write_cache(cache_BxKxSxH: jax.Array, new_BxTxKxH: jax.Array,
                positions_BxT: jax.Array) -> jax.Array:
  """Scatters each row's new entries into slots == positions; out-of-range writes are dropped."""
  B, S = cache_BxKxSxH.shape[0], cache_BxKxSxH.shape[2]
  # Negative indices would wrap around under numpy semantics: send them out of range instead.
  slots_BxT = jnp.where(positions_BxT < 0, S, positions_BxT)
  rows_Bx1 = jnp.arange(B)[:, None]
  # Advanced indices around a slice: the indexed shape is BxTxKxH, that of new_BxTxKxH.
  return cache_BxKxSxH.at[rows_Bx1, :, slots_BxT].set(
      new_BxTxKxH.astype(cache_BxKxSxH.dtype), mode="drop")


def attend(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, q_pos_BxT, k_pos_BxS, *,
           window: int | None = None, scale: float | None = None) -> jax.Array:
  """Grouped-query attention; key at position s is visible to query at p iff s <= p (and
  s > p - window with a sliding window). Scores are scaled by `scale`, default H ** -0.5."""
  T, H = q_BxTxNxH.shape[1], q_BxTxNxH.shape[3]
  scale = H ** -0.5 if scale is None else scale
  visible_BxTxS = k_pos_BxS[:, None, :] <= q_pos_BxT[:, :, None]
  if window is not None:
    visible_BxTxS &= k_pos_BxS[:, None, :] > q_pos_BxT[:, :, None] - window
  if T == 1 and q_BxTxNxH.dtype == k_BxKxSxH.dtype == v_BxKxSxH.dtype == jnp.float32:
    # One query token (decoding): of the three equal forms, the fastest on a CPU depends on
    # the shapes (python -m benchmarks.attention; docs/performance.md).
    one = attend_one if H <= 64 and q_BxTxNxH.shape[0] >= 8 else attend_matmul
    return one(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, visible_BxTxS[:, 0], scale)
  return attend_einsum(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, visible_BxTxS, scale)


def attend_einsum(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, visible_BxTxS, scale):
  """`attend` as two batched einsums, given which keys each query sees."""
  B, T, N, H = q_BxTxNxH.shape
  K = k_BxKxSxH.shape[1]
  # Query head n reads kv head n // G (the layout of HF repeat_kv).
  q_BxTxKxGxH = q_BxTxNxH.reshape(B, T, K, N // K, H)
  scores_BxKxGxTxS = jnp.einsum("btkgh,bksh->bkgts", q_BxTxKxGxH, k_BxKxSxH,
                                preferred_element_type=jnp.float32) * scale
  scores_BxKxGxTxS = jnp.where(visible_BxTxS[:, None, None], scores_BxKxGxTxS, _NEG_INF)
  probs_BxKxGxTxS = jax.nn.softmax(scores_BxKxGxTxS, axis=-1).astype(v_BxKxSxH.dtype)
  out_BxTxKxGxH = jnp.einsum("bkgts,bksh->btkgh", probs_BxKxGxTxS, v_BxKxSxH)
  return out_BxTxKxGxH.reshape(B, T, N, H)


def attend_one(q_Bx1xNxH, k_BxKxSxH, v_BxKxSxH, visible_BxS, scale):
  """`attend` for one query token, as broadcast products summed (no matrix product)."""
  B, _, N, H = q_Bx1xNxH.shape
  K = k_BxKxSxH.shape[1]
  q_BxKxGx1xH = q_Bx1xNxH.reshape(B, K, N // K, 1, H)
  scores_BxKxGxS = (q_BxKxGx1xH * k_BxKxSxH[:, :, None]).sum(-1) * scale
  scores_BxKxGxS = jnp.where(visible_BxS[:, None, None], scores_BxKxGxS, _NEG_INF)
  probs_BxKxGxSx1 = jax.nn.softmax(scores_BxKxGxS, axis=-1)[..., None]
  out_BxKxGxH = (probs_BxKxGxSx1 * v_BxKxSxH[:, :, None]).sum(-2)
  return out_BxKxGxH.reshape(B, 1, N, H)


def attend_matmul(q_Bx1xNxH, k_BxKxSxH, v_BxKxSxH, visible_BxS, scale):
  """`attend` for one query token, as two 3-D batched matrix products over (row, KV head):
  `attend_einsum`'s 5-D einsums run as many tiny products on a CPU."""
  B, _, N, H = q_Bx1xNxH.shape
  K, S = k_BxKxSxH.shape[1], k_BxKxSxH.shape[2]
  batch_dims = (((2,), (2,)), ((0,), (0,)))
  scores_BKxGxS = jax.lax.dot_general(q_Bx1xNxH.reshape(B * K, N // K, H),
                                      k_BxKxSxH.reshape(B * K, S, H), batch_dims) * scale
  scores_BxKxGxS = jnp.where(visible_BxS[:, None, None],
                             scores_BKxGxS.reshape(B, K, N // K, S), _NEG_INF)
  probs_BKxGxS = jax.nn.softmax(scores_BxKxGxS, axis=-1).reshape(B * K, N // K, S)
  out_BKxGxH = jax.lax.dot_general(probs_BKxGxS, v_BxKxSxH.reshape(B * K, S, H),
                                   (((2,), (1,)), ((0,), (0,))))
  return out_BKxGxH.reshape(B, 1, N, H)


def kv_bucket_lengths(cache_len: int, buckets: int) -> tuple[int, ...]:
  """Prefix lengths of the cache that cached attention may read (multiples of 8, the last
  the whole cache): `buckets` evenly spaced ones, fewer when the cache is short."""
  lens = {min(cache_len, -(-cache_len * (i + 1) // buckets // 8) * 8) for i in range(buckets)}
  return tuple(sorted(lens | {cache_len}))


def attend_cached(q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, q_pos_BxT, buckets: int = 1, *,
                  window: int | None = None, scale: float | None = None) -> jax.Array:
  """`attend` over the cache, reading only the shortest slice among `kv_bucket_lengths` that
  holds every slot a query can see.

  Without a window that slice is a prefix (slots <= the batch's largest query position). The
  cache has a fixed length (one compile), but early in a rollout most of it is unwritten: at
  batch 64 on a CPU, a decode step over 64 of 160 slots took half the time. The skipped slots
  are masked for every query anyway, so the output is that of full attention (the softmax sums
  the same terms). With a sliding window the slice ends at the largest query position and
  starts at the earliest slot any row's window reaches, so a sliding layer reads about a window
  however long the cache. `lax.switch` runs one branch per call; under `vmap` with a batched
  index it would run all of them, so such callers keep buckets=1.
  """
  B, S = k_BxKxSxH.shape[0], k_BxKxSxH.shape[2]
  lens = kv_bucket_lengths(S, buckets) if buckets > 1 else (S,)
  kw = dict(window=window, scale=scale)
  hi = jnp.clip(jnp.max(q_pos_BxT) + 1, 1, S)  # slots [lo, hi) hold every visible key
  lo = jnp.int32(0) if window is None else jnp.clip(jnp.min(q_pos_BxT) - window + 1, 0, hi - 1)

  def piece(n, q, k, v, q_pos):
    start = jnp.clip(hi - n, 0, S - n) if window is not None else 0
    k_pos_BxN = jnp.broadcast_to(start + jnp.arange(n, dtype=q_pos.dtype), (B, n))
    if window is None:
      return attend(q, k[:, :, :n], v[:, :, :n], q_pos, k_pos_BxN, **kw)
    k = jax.lax.dynamic_slice_in_dim(k, start, n, axis=2)
    v = jax.lax.dynamic_slice_in_dim(v, start, n, axis=2)
    return attend(q, k, v, q_pos, k_pos_BxN, **kw)

  if len(lens) == 1:
    return piece(S, q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, q_pos_BxT)
  which = jnp.sum(hi - lo > jnp.asarray(lens[:-1])).astype(jnp.int32)
  branches = [functools.partial(piece, n) for n in lens]
  return jax.lax.switch(which, branches, q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, q_pos_BxT)


def _dense(cfg: ModelConfig, features: int, name: str, use_bias: bool) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, dtype=cfg.activation_dtype,
                  param_dtype=cfg.weight_dtype, name=name)


class GemmaRMSNorm(nn.Module):
  """RMSNorm with a zero-centred scale, x * (1 + w), computed in float32 (HF Gemma3RMSNorm)."""
  epsilon: float
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.zeros_init(), (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.epsilon)
    return (y * (1.0 + scale.astype(jnp.float32))).astype(self.dtype)


def _norm(cfg: ModelConfig, name: str) -> nn.Module:
  kw = dict(epsilon=cfg.norm_eps, dtype=cfg.activation_dtype, param_dtype=cfg.weight_dtype,
            name=name)
  if cfg.arch == "gemma3":
    return GemmaRMSNorm(**kw)
  return nn.RMSNorm(**kw) if cfg.arch == "llama" else nn.LayerNorm(**kw)


class Attention(nn.Module):
  cfg: ModelConfig
  kv_buckets: int = 1  # cached attention reads a bucketed prefix of the cache (attend_cached)
  layer: int = 0  # which layer: Gemma 3's layers differ in window and RoPE base

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, kv_cache: dict[str, jax.Array] | None):
    cfg = self.cfg
    B, T, _ = x_BxTxD.shape
    N, K, H = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    gpt2 = cfg.arch == "gpt2"
    qkv_bias = cfg.qkv_bias or gpt2
    q_BxTxNxH = _dense(cfg, N * H, "q_proj", qkv_bias)(x_BxTxD).reshape(B, T, N, H)
    k_BxTxKxH = _dense(cfg, K * H, "k_proj", qkv_bias)(x_BxTxD).reshape(B, T, K, H)
    v_BxTxKxH = _dense(cfg, K * H, "v_proj", qkv_bias)(x_BxTxD).reshape(B, T, K, H)
    window, scale = None, None
    if cfg.arch == "gemma3":
      q_BxTxNxH = _norm(cfg, "q_norm")(q_BxTxNxH)
      k_BxTxKxH = _norm(cfg, "k_norm")(k_BxTxKxH)
      window, scale = cfg.layer_window(self.layer), cfg.attn_scale
    if not gpt2:
      theta, scaling = cfg.layer_rope(self.layer)
      q_BxTxNxH = rope(q_BxTxNxH, positions_BxT, theta, scaling)
      k_BxTxKxH = rope(k_BxTxKxH, positions_BxT, theta, scaling)

    if kv_cache is None:  # training: attend among the T tokens of the chunk
      out_BxTxNxH = attend(q_BxTxNxH, k_BxTxKxH.transpose(0, 2, 1, 3),
                           v_BxTxKxH.transpose(0, 2, 1, 3), positions_BxT, positions_BxT,
                           window=window, scale=scale)
      new_cache = None
    else:
      k_BxKxSxH = write_cache(kv_cache["k"], k_BxTxKxH, positions_BxT)
      v_BxKxSxH = write_cache(kv_cache["v"], v_BxTxKxH, positions_BxT)
      new_cache = {"k": k_BxKxSxH, "v": v_BxKxSxH}
      out_BxTxNxH = attend_cached(q_BxTxNxH, k_BxKxSxH.astype(q_BxTxNxH.dtype),
                                  v_BxKxSxH.astype(q_BxTxNxH.dtype), positions_BxT,
                                  self.kv_buckets, window=window, scale=scale)
    out_BxTxD = _dense(cfg, cfg.d_model, "o_proj", gpt2)(out_BxTxNxH.reshape(B, T, N * H))
    return out_BxTxD, new_cache


class Mlp(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD):
    cfg = self.cfg
    if cfg.arch in ("llama", "gemma3"):  # SwiGLU; GeGLU (tanh GELU) for gemma3
      gate_BxTxF = _dense(cfg, cfg.d_ff, "gate_proj", False)(x_BxTxD)
      up_BxTxF = _dense(cfg, cfg.d_ff, "up_proj", False)(x_BxTxD)
      act_BxTxF = (nn.gelu(gate_BxTxF, approximate=True) if cfg.arch == "gemma3"
                   else nn.silu(gate_BxTxF))
      return _dense(cfg, cfg.d_model, "down_proj", False)(act_BxTxF * up_BxTxF)
    up_BxTxF = _dense(cfg, cfg.d_ff, "up_proj", True)(x_BxTxD)
    return _dense(cfg, cfg.d_model, "down_proj", True)(nn.gelu(up_BxTxF, approximate=True))


class Block(nn.Module):
  """Pre-norm residual block (gemma3: the attention and MLP outputs are normed too)."""
  cfg: ModelConfig
  kv_buckets: int = 1
  layer: int = 0

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, kv_cache):
    cfg = self.cfg
    attn_BxTxD, new_cache = Attention(cfg, self.kv_buckets, self.layer, name="self_attn")(
        _norm(cfg, "input_layernorm")(x_BxTxD), positions_BxT, kv_cache)
    if cfg.arch == "gemma3":
      x_BxTxD = x_BxTxD + _norm(cfg, "post_attention_layernorm")(attn_BxTxD)
      mlp_BxTxD = Mlp(cfg, name="mlp")(_norm(cfg, "pre_feedforward_layernorm")(x_BxTxD))
      return x_BxTxD + _norm(cfg, "post_feedforward_layernorm")(mlp_BxTxD), new_cache
    x_BxTxD = x_BxTxD + attn_BxTxD
    mlp_in_BxTxD = _norm(cfg, "post_attention_layernorm")(x_BxTxD)
    x_BxTxD = x_BxTxD + Mlp(cfg, name="mlp")(mlp_in_BxTxD)
    return x_BxTxD, new_cache


class Transformer(nn.Module):
  cfg: ModelConfig
  kv_buckets: int = 1

  @nn.compact
  def __call__(self, tokens_BxT, positions_BxT, cache: Cache | None = None, logits_at_B=None):
    cfg = self.cfg
    D = cfg.d_model
    # std 1/sqrt(D): with tied embeddings the initial logits have unit scale.
    embed = nn.Embed(cfg.vocab_size, D, dtype=cfg.activation_dtype,
                     param_dtype=cfg.weight_dtype,
                     embedding_init=nn.initializers.normal(D ** -0.5), name="embed")
    x_BxTxD = embed(tokens_BxT)
    if cfg.arch == "gemma3":  # sqrt(D), rounded to the weights' dtype as HF does
      x_BxTxD = x_BxTxD * jnp.asarray(np.sqrt(D), cfg.weight_dtype).astype(x_BxTxD.dtype)
    if cfg.arch == "gpt2":
      pos_table = self.param("pos_embed", nn.initializers.normal(0.01), (cfg.max_len, D),
                             cfg.weight_dtype)
      x_BxTxD = x_BxTxD + jnp.take(pos_table, positions_BxT, axis=0, mode="clip").astype(
          x_BxTxD.dtype)

    new_cache = None if cache is None else {}
    streams = [x_BxTxD]  # the residual stream after the embeddings and after each layer
    # A Python loop (not nn.scan): few layers, and names layer_i map one-to-one onto HF layers.
    for i in range(cfg.num_layers):
      name = f"layer_{i}"
      x_BxTxD, layer_cache = Block(cfg, self.kv_buckets, i, name=name)(
          x_BxTxD, positions_BxT, None if cache is None else cache[name])
      streams.append(x_BxTxD)
      if cache is not None:
        new_cache[name] = layer_cache

    hidden_BxTxD = _norm(cfg, "final_norm")(x_BxTxD)
    head_in_BxTxD = hidden_BxTxD
    if logits_at_B is not None:  # one position per row: T x fewer vocabulary projections
      head_in_BxTxD = jnp.take_along_axis(
          hidden_BxTxD, logits_at_B.astype(jnp.int32)[:, None, None], axis=1)
    if cfg.tie_embeddings:
      logits_BxTxV = embed.attend(head_in_BxTxD)
    else:
      logits_BxTxV = _dense(cfg, cfg.vocab_size, "lm_head", False)(head_in_BxTxD)
    if cfg.feature_layers > 1:  # features of the layers below the last (cfg.feature_layers)
      below = streams[-2:-cfg.feature_layers - 1:-1]
      hidden_BxTxD = jnp.concatenate([hidden_BxTxD] + [_rms_normalize(s, cfg.norm_eps)
                                                       for s in below], axis=-1)
    return logits_BxTxV.astype(jnp.float32), hidden_BxTxD, new_cache


def _rms_normalize(x_BxTxD: jax.Array, eps: float) -> jax.Array:
  """x / rms(x) over the last axis, no learned scale (a feature, not a layer's input)."""
  x32 = x_BxTxD.astype(jnp.float32)
  return (x32 * jax.lax.rsqrt(jnp.mean(x32 ** 2, -1, keepdims=True) + eps)).astype(
      x_BxTxD.dtype)


def init_params(cfg: ModelConfig, rng: jax.Array) -> Params:
  """Fresh parameters (the 'params' collection: a nested dict of arrays)."""
  tokens_1x1 = jnp.zeros((1, 1), jnp.int32)
  return Transformer(cfg).init(rng, tokens_1x1, tokens_1x1)["params"]


def init_cache(cfg: ModelConfig, batch_size: int, cache_len: int, dtype=None) -> Cache:
  """Zeroed KV cache: {'layer_i': {'k': BxKxSxH, 'v': BxKxSxH}}; dtype defaults to cfg.dtype."""
  shape = (batch_size, cfg.num_kv_heads, cache_len, cfg.head_dim)
  dtype = cfg.activation_dtype if dtype is None else dtype
  return {f"layer_{i}": {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
          for i in range(cfg.num_layers)}


def apply(params: Params, cfg: ModelConfig, tokens_BxT: jax.Array, positions_BxT: jax.Array,
          cache: Cache | None = None, *, kv_buckets: int = 1, logits_at_B: jax.Array | None = None
          ) -> tuple[jax.Array, jax.Array, Cache | None]:
  """Forward pass. Returns (logits_BxTxV float32, hidden_BxTxD final-norm output, new_cache);
  with cfg.feature_layers = k > 1 the hidden states are k * d_model wide (ModelConfig).

  cache=None: causal attention among the T tokens by position (training). With a cache: the
  chunk is written at its positions, then attends over all cache slots <= its position (see the
  module docstring for the right-padding invariant). new_cache is None when cache is None.
  kv_buckets > 1: cached attention reads only the prefix of the cache it needs, chosen among
  that many lengths (`attend_cached`); same output, less work while the cache is mostly empty.
  logits_at_B: logits only at that index of T per row (Bx1xV; a prefill needs the last
  prompt token's alone); hidden_BxTxD stays whole.
  """
  return Transformer(cfg, kv_buckets).apply({"params": params}, tokens_BxT, positions_BxT,
                                            cache, logits_at_B)


def default_positions(tokens_BxT: jax.Array) -> jax.Array:
  """arange(T) for every row: the positions of unpadded (or right-padded) training batches."""
  B, T = tokens_BxT.shape
  return jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))


def num_params(cfg: ModelConfig) -> int:
  """Exact parameter count, from the shapes of `init_params` (eval_shape: nothing allocated)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(shapes)))
