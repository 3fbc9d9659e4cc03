"""Transformer: cached decoding == full pass, causality, GQA layout, configs and presets."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab.models import presets
from collab.models import transformer as tfm
from collab.models.config import ModelConfig
from collab.models.transformer import num_params

VOCAB = 48
ARCHS = ["test_tiny", "gpt2_tiny"]


@functools.lru_cache(maxsize=None)
def _model(preset: str):
  cfg = presets.get_model_config(preset, VOCAB)
  return cfg, tfm.init_params(cfg, jax.random.key(0))


_apply = jax.jit(tfm.apply, static_argnames="cfg")


def _tokens(B, T, seed=1):
  return jax.random.randint(jax.random.key(seed), (B, T), 0, VOCAB)


@pytest.mark.parametrize("preset", ARCHS)
def test_token_by_token_decode_equals_full_pass(preset):
  cfg, params = _model(preset)
  B, T = 3, 12
  tokens_BxT = _tokens(B, T)
  full_BxTxV, full_hidden, no_cache = _apply(params, cfg, tokens_BxT,
                                             tfm.default_positions(tokens_BxT))
  assert no_cache is None and full_hidden.shape == (B, T, cfg.d_model)
  cache = tfm.init_cache(cfg, B, T + 4)
  steps = []
  for t in range(T):
    pos_Bx1 = jnp.full((B, 1), t, jnp.int32)
    logits_Bx1xV, _, cache = _apply(params, cfg, tokens_BxT[:, t:t + 1], pos_Bx1, cache)
    steps.append(logits_Bx1xV)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), full_BxTxV, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ARCHS)
def test_logits_at_one_position_per_row(preset):
  cfg, params = _model(preset)
  tokens_BxT = _tokens(3, 10)
  positions_BxT = tfm.default_positions(tokens_BxT)
  full_BxTxV, full_hidden, _ = _apply(params, cfg, tokens_BxT, positions_BxT)
  at_B = jnp.array([9, 0, 4])
  some_Bx1xV, some_hidden, _ = _apply(params, cfg, tokens_BxT, positions_BxT, logits_at_B=at_B)
  np.testing.assert_allclose(some_Bx1xV[:, 0], full_BxTxV[jnp.arange(3), at_B], atol=1e-6)
  np.testing.assert_array_equal(some_hidden, full_hidden)


@pytest.mark.parametrize("preset", ARCHS)
def test_feature_layers_append_the_residual_streams_below(preset):
  cfg, params = _model(preset)
  tokens_BxT = _tokens(2, 7)
  positions_BxT = tfm.default_positions(tokens_BxT)
  logits, hidden_BxTxD, _ = _apply(params, cfg, tokens_BxT, positions_BxT)
  wide = cfg.replace(feature_layers=cfg.num_layers + 1)
  wide_logits, features_BxTxF, _ = _apply(params, wide, tokens_BxT, positions_BxT)
  D = cfg.d_model
  assert features_BxTxF.shape == (2, 7, (cfg.num_layers + 1) * D)
  np.testing.assert_array_equal(wide_logits, logits)  # the head reads the last layer alone
  np.testing.assert_array_equal(features_BxTxF[..., :D], hidden_BxTxD)
  # Deepest first: the last block is the embeddings' stream, RMS-normalized.
  embed_BxTxD = params["embed"]["embedding"][tokens_BxT]
  if cfg.arch == "gpt2":
    embed_BxTxD = embed_BxTxD + params["pos_embed"][positions_BxT]
  rms_BxTx1 = jnp.sqrt(jnp.mean(embed_BxTxD ** 2, -1, keepdims=True) + cfg.norm_eps)
  np.testing.assert_allclose(features_BxTxF[..., -D:], embed_BxTxD / rms_BxTx1, rtol=1e-5,
                             atol=1e-5)
  # A middle block differs from both ends (a real layer's stream).
  if cfg.num_layers > 1:
    middle = features_BxTxF[..., D:2 * D]
    assert not np.allclose(middle, features_BxTxF[..., -D:])
    assert not np.allclose(middle, hidden_BxTxD)
  with pytest.raises(ValueError, match="feature_layers"):
    cfg.replace(feature_layers=cfg.num_layers + 2)


def test_kv_bucket_lengths():
  assert tfm.kv_bucket_lengths(160, 4) == (40, 80, 120, 160)
  assert tfm.kv_bucket_lengths(168, 4) == (48, 88, 128, 168)
  assert tfm.kv_bucket_lengths(12, 4) == (8, 12)  # multiples of 8, the last the whole cache
  assert tfm.kv_bucket_lengths(64, 1) == (64,)


@pytest.mark.parametrize("preset", ARCHS)
def test_bucketed_cached_attention_equals_the_whole_cache(preset):
  """kv_buckets reads a prefix of the cache; decoding and chunked prefill give the same logits
  and the same cache as reading all of it, in every bucket (and past the cache's end)."""
  cfg, params = _model(preset)
  B, L = 3, 40  # buckets 16, 24, 32, 40
  tokens_BxL = _tokens(B, L, seed=5)
  caches = {n: tfm.init_cache(cfg, B, L) for n in (1, 4)}
  apply_n = jax.jit(tfm.apply, static_argnames=("cfg", "kv_buckets"))
  # A 6-token prefill chunk at per-row offsets, then token-by-token decoding to the end.
  feeds = [(tokens_BxL[:, :6], tfm.default_positions(tokens_BxL[:, :6]))]
  feeds += [(tokens_BxL[:, t:t + 1], jnp.full((B, 1), t, jnp.int32)) for t in range(6, L)]
  feeds.append((tokens_BxL[:, :1], jnp.full((B, 1), L + 3, jnp.int32)))  # dropped write
  for tok_BxT, pos_BxT in feeds:
    out = {}
    for n in (1, 4):
      logits, hidden, caches[n] = apply_n(params, cfg, tok_BxT, pos_BxT, caches[n],
                                          kv_buckets=n)
      out[n] = (logits, hidden)
    np.testing.assert_allclose(out[4][0], out[1][0], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(out[4][1], out[1][1], atol=1e-5, rtol=1e-5)
  for layer in caches[1]:
    for kv in ("k", "v"):
      np.testing.assert_allclose(caches[4][layer][kv], caches[1][layer][kv], atol=1e-5)


@pytest.mark.parametrize("preset", ARCHS)
def test_chunked_prefill_at_per_row_offsets_equals_full_pass(preset):
  cfg, params = _model(preset)
  B, L = 3, 16
  tokens_BxL = _tokens(B, L, seed=2)
  full_BxLxV, full_hidden_BxLxD, _ = _apply(params, cfg, tokens_BxL,
                                            tfm.default_positions(tokens_BxL))
  # Right-padded prefixes of different lengths: pad k/v land in later slots and must be
  # overwritten before being read. cache_len == L, so writes past the end are dropped.
  prefix_B = np.array([3, 5, 7])
  width = prefix_B.max()
  prefix_BxW = np.where(np.arange(width) < prefix_B[:, None], np.asarray(tokens_BxL[:, :width]),
                        VOCAB - 1)
  cache = tfm.init_cache(cfg, B, L)
  logits_BxWxV, hidden_BxWxD, cache = _apply(params, cfg, jnp.asarray(prefix_BxW),
                                  tfm.default_positions(prefix_BxW), cache)
  got = np.zeros(full_BxLxV.shape, np.float32)
  got_hidden = np.zeros(full_hidden_BxLxD.shape, np.float32)
  logits_BxWxV, hidden_BxWxD = np.asarray(logits_BxWxV), np.asarray(hidden_BxWxD)
  for b in range(B):
    got[b, :prefix_B[b]] = logits_BxWxV[b, :prefix_B[b]]
    got_hidden[b, :prefix_B[b]] = hidden_BxWxD[b, :prefix_B[b]]
  offset_B = prefix_B.copy()
  for size in [1, 3, 4, 1, 4, 3]:  # varying chunk sizes, same for all rows, offsets differ
    pos_BxC = offset_B[:, None] + np.arange(size)
    toks_BxC = np.take_along_axis(np.asarray(tokens_BxL), np.minimum(pos_BxC, L - 1), axis=1)
    logits_BxCxV, hidden_BxCxD, cache = _apply(params, cfg, jnp.asarray(toks_BxC),
                                               jnp.asarray(pos_BxC), cache)
    logits_BxCxV, hidden_BxCxD = np.asarray(logits_BxCxV), np.asarray(hidden_BxCxD)
    for b in range(B):
      for c in range(size):
        if pos_BxC[b, c] < L:
          got[b, pos_BxC[b, c]] = logits_BxCxV[b, c]
          got_hidden[b, pos_BxC[b, c]] = hidden_BxCxD[b, c]
    offset_B += size
  assert offset_B.min() >= L
  np.testing.assert_allclose(got, full_BxLxV, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(got_hidden, full_hidden_BxLxD, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ARCHS)
def test_causality(preset):
  cfg, params = _model(preset)
  tokens_BxT = _tokens(2, 10, seed=3)
  t = 6
  changed_BxT = tokens_BxT.at[:, t].set((tokens_BxT[:, t] + 1) % VOCAB)
  pos = tfm.default_positions(tokens_BxT)
  a, _, _ = _apply(params, cfg, tokens_BxT, pos)
  b, _, _ = _apply(params, cfg, changed_BxT, pos)
  np.testing.assert_allclose(a[:, :t], b[:, :t], atol=1e-6)
  assert np.abs(np.asarray(a[:, t:] - b[:, t:])).max(axis=-1).min() > 1e-4


def test_write_cache_drops_out_of_range_and_negative_positions():
  cache_BxKxSxH = jnp.zeros((2, 1, 4, 1))
  new_BxTxKxH = jnp.array([[1., 2.], [3., 4.]])[:, :, None, None]
  pos_BxT = jnp.array([[-1, 3], [4, 0]])
  out = tfm.write_cache(cache_BxKxSxH, new_BxTxKxH, pos_BxT)[:, 0, :, 0]
  np.testing.assert_array_equal(out, [[0, 0, 0, 2], [4, 0, 0, 0]])


def test_gqa_shapes_and_head_mapping():
  """A GQA model equals the MHA model whose k/v heads repeat per group (HF repeat_kv)."""
  gqa = ModelConfig(arch="llama", vocab_size=VOCAB, d_model=32, num_layers=1, num_heads=4,
                    num_kv_heads=2, d_ff=64)
  mha = gqa.replace(num_kv_heads=4)
  params = tfm.init_params(gqa, jax.random.key(5))
  attn = params["layer_0"]["self_attn"]
  H = gqa.head_dim
  assert attn["q_proj"]["kernel"].shape == (32, 4 * H)
  assert attn["k_proj"]["kernel"].shape == (32, 2 * H)
  assert attn["v_proj"]["kernel"].shape == (32, 2 * H)
  assert attn["o_proj"]["kernel"].shape == (4 * H, 32)
  cache = tfm.init_cache(gqa, 3, 7)
  assert cache["layer_0"]["k"].shape == (3, 2, 7, H) and set(cache) == {"layer_0"}

  def repeat_kv(kernel_DxKH):
    return jnp.repeat(kernel_DxKH.reshape(32, 2, H), 2, axis=1).reshape(32, 4 * H)

  mha_params = jax.tree.map(lambda x: x, params)
  for name in ("k_proj", "v_proj"):
    mha_params["layer_0"]["self_attn"][name] = {"kernel": repeat_kv(attn[name]["kernel"])}
  tokens = _tokens(2, 9, seed=6)
  pos = tfm.default_positions(tokens)
  np.testing.assert_allclose(_apply(params, gqa, tokens, pos)[0],
                             _apply(mha_params, mha, tokens, pos)[0], atol=1e-5)


@pytest.mark.parametrize("B,H", [(2, 16), (9, 16), (9, 96)])
@pytest.mark.parametrize("window", [None, 3])
def test_one_token_attention_forms_equal_a_numpy_reference(B, H, window):
  """Decoding's query token: `attend` (whichever form it picks at these shapes) and each form
  of it equal softmax(q k / sqrt(H)) v over the visible keys, GQA heads as HF repeat_kv."""
  N, K, S = 6, 2, 11
  rng = np.random.default_rng(B + H)
  q, k, v = (rng.standard_normal(shape).astype(np.float32)
             for shape in ((B, 1, N, H), (B, K, S, H), (B, K, S, H)))
  q_pos_Bx1 = np.arange(S - B, S)[:, None] % S  # rows at different lengths
  k_pos_BxS = np.broadcast_to(np.arange(S), (B, S))
  visible_BxS = k_pos_BxS <= q_pos_Bx1
  if window is not None:
    visible_BxS &= k_pos_BxS > q_pos_Bx1 - window
  want = np.zeros((B, 1, N, H), np.float32)
  for b in range(B):
    for n in range(N):
      scores = k[b, n // (N // K)] @ q[b, 0, n] / np.sqrt(H)
      p = np.where(visible_BxS[b], np.exp(scores - scores[visible_BxS[b]].max()), 0.0)
      want[b, 0, n] = (p / p.sum()) @ v[b, n // (N // K)]
  got = tfm.attend(q, k, v, q_pos_Bx1, k_pos_BxS, window=window)
  np.testing.assert_allclose(got, want, atol=1e-5)
  for form in (tfm.attend_one, tfm.attend_matmul):
    np.testing.assert_allclose(form(q, k, v, visible_BxS, H ** -0.5), want, atol=1e-5)
  np.testing.assert_allclose(
      tfm.attend_einsum(q, k, v, visible_BxS[:, None], H ** -0.5), want, atol=1e-5)


def test_rope_matches_hf_rotate_half():
  x = np.random.RandomState(0).randn(1, 3, 2, 8).astype(np.float32)
  pos = np.array([[0, 1, 5]])
  inv_freq = 1.0 / (10000.0 ** (np.arange(0, 8, 2) / 8))
  emb = np.concatenate([pos[..., None] * inv_freq] * 2, -1)[:, :, None, :]
  rot = np.concatenate([-x[..., 4:], x[..., :4]], -1)
  want = x * np.cos(emb) + rot * np.sin(emb)
  np.testing.assert_allclose(tfm.rope(jnp.asarray(x), jnp.asarray(pos), 10000.0), want,
                             atol=1e-5)


def _analytic_count(cfg):
  D, F, V, L = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  if cfg.arch == "llama":
    layer = D * (q + 2 * kv) + q * D + 3 * D * F + 2 * D + cfg.qkv_bias * (q + 2 * kv)
    extra = D
  else:
    layer = (D * (q + 2 * kv) + q + 2 * kv + q * D + D + 2 * D * F + F + D + 4 * D)
    extra = 2 * D + cfg.max_len * D
  return V * D + L * layer + extra + (0 if cfg.tie_embeddings else D * V)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_presets_build_and_count(name):
  cfg = presets.get_model_config(name, 512)
  assert cfg.vocab_size == 512 and hash(cfg) == hash(presets.get_model_config(name, 512))
  shapes = jax.eval_shape(lambda: tfm.init_params(cfg, jax.random.key(0)))  # nothing allocated
  assert shapes["embed"]["embedding"].shape == (512, cfg.d_model)
  assert num_params(cfg) == _analytic_count(cfg)


def test_param_count_untied_and_qkv_bias():
  cfg = presets.get_model_config("test_tiny", VOCAB).replace(tie_embeddings=False,
                                                             qkv_bias=True)
  assert num_params(cfg) == _analytic_count(cfg)
  assert "lm_head" in jax.eval_shape(lambda: tfm.init_params(cfg, jax.random.key(0)))


def test_wrong_preset_name_lists_valid_names():
  with pytest.raises(ValueError, match="slm_s"):
    presets.get_model_config("slm_xxl", 512)


def test_config_validation_and_replace():
  cfg = ModelConfig(arch="llama", vocab_size=10, d_model=64, num_layers=1, num_heads=4)
  assert (cfg.head_dim, cfg.num_kv_heads, cfg.num_groups) == (16, 4, 1)
  assert cfg.replace(d_model=128).head_dim == 32  # derived default follows the new size
  assert cfg.replace(d_model=128, head_dim=8).head_dim == 8
  assert ModelConfig(arch="gpt2", vocab_size=10, d_model=64, num_layers=1,
                     num_heads=4).d_ff == 256
  bad = [dict(arch="bert"), dict(num_kv_heads=3), dict(d_model=66), dict(num_layers=0),
         dict(dtype="float64"), dict(head_dim=7)]
  for kw in bad:
    with pytest.raises(ValueError):
      cfg.replace(**kw)
  with pytest.raises(Exception):
    cfg.d_model = 3  # frozen
