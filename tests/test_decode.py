"""generate: greedy == naive full-pass loop, stop handling, row independence, sampling."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab.models import decode, presets
from collab.models import transformer as tfm

VOCAB, PAD, N = 40, 0, 8
NO_STOP = -1  # never emitted


@functools.lru_cache(maxsize=None)
def _model(preset):
  cfg = presets.get_model_config(preset, VOCAB)
  params = tfm.init_params(cfg, jax.random.key(0))
  # Sharper logits than at init, so greedy ties cannot hide differences.
  params = jax.tree.map(lambda x: x * 1.5, params)
  return cfg, params


def _prompts(seed=0):
  rng = np.random.RandomState(seed)
  len_B = np.array([3, 7, 5])
  prompt_BxP = rng.randint(1, VOCAB, size=(3, 8)).astype(np.int32)
  prompt_BxP[np.arange(8) >= len_B[:, None]] = PAD
  return prompt_BxP, len_B


@functools.partial(jax.jit, static_argnames=("cfg", "n"))
def _naive_greedy(params, cfg, prompt_BxP, len_B, n):
  """Re-runs the full forward pass (no cache) for every new token."""
  B, P = prompt_BxP.shape
  buf_BxL = jnp.concatenate([prompt_BxP, jnp.full((B, n), PAD, prompt_BxP.dtype)], 1)

  def step(i, carry):
    buf_BxL, out_BxN = carry
    logits_BxLxV, _, _ = tfm.apply(params, cfg, buf_BxL, tfm.default_positions(buf_BxL))
    cur_B = len_B + i
    tok_B = jnp.argmax(logits_BxLxV[jnp.arange(B), cur_B - 1], -1).astype(buf_BxL.dtype)
    return buf_BxL.at[jnp.arange(B), cur_B].set(tok_B), out_BxN.at[:, i].set(tok_B)

  _, out_BxN = jax.lax.fori_loop(0, n, step, (buf_BxL, jnp.zeros((B, n), buf_BxL.dtype)))
  return out_BxN


@pytest.mark.parametrize("preset", ["test_tiny", "gpt2_tiny"])
def test_greedy_equals_naive_loop(preset):
  cfg, params = _model(preset)
  prompt_BxP, len_B = _prompts()
  got_BxN, new_len_B = decode.generate(params, cfg, prompt_BxP, len_B, max_new_tokens=N,
                                       stop_id=NO_STOP, pad_id=PAD)
  want_BxN = _naive_greedy(params, cfg, jnp.asarray(prompt_BxP), jnp.asarray(len_B), N)
  np.testing.assert_array_equal(got_BxN, want_BxN)
  np.testing.assert_array_equal(new_len_B, [N] * 3)


def test_stop_handling():
  cfg, params = _model("test_tiny")
  prompt_BxP, len_B = _prompts()
  free_BxN, _ = decode.generate(params, cfg, prompt_BxP, len_B, max_new_tokens=N,
                                stop_id=NO_STOP, pad_id=PAD)
  free_BxN = np.asarray(free_BxN)
  stop = int(free_BxN[0, 2])  # row 0 emits it at step <= 2
  got_BxN, len_B_out = decode.generate(params, cfg, prompt_BxP, len_B, max_new_tokens=N,
                                       stop_id=stop, pad_id=PAD)
  got_BxN = np.asarray(got_BxN)
  for b in range(3):
    hits = np.flatnonzero(free_BxN[b] == stop)
    n_b = int(hits[0]) + 1 if hits.size else N
    assert len_B_out[b] == n_b
    np.testing.assert_array_equal(got_BxN[b, :n_b], free_BxN[b, :n_b])  # stop included
    assert (got_BxN[b, n_b:] == PAD).all()
  assert len_B_out[0] <= 3


def test_early_exit_when_all_rows_stop():
  """Every row stops at its first token: one output each, the rest pad."""
  cfg, params = _model("test_tiny")
  prompt_Bx1, len_B = np.full((3, 1), 5, np.int32), np.ones(3, np.int32)
  kw = dict(max_new_tokens=N, pad_id=PAD)
  first_BxN, _ = decode.generate(params, cfg, prompt_Bx1, len_B, stop_id=NO_STOP, **kw)
  got_BxN, got_len_B = decode.generate(params, cfg, prompt_Bx1, len_B,
                                       stop_id=int(first_BxN[0, 0]), **kw)
  np.testing.assert_array_equal(got_len_B, [1, 1, 1])
  np.testing.assert_array_equal(got_BxN[:, 0], first_BxN[:, 0])
  assert (np.asarray(got_BxN)[:, 1:] == PAD).all()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rows_are_independent(temperature):
  cfg, params = _model("test_tiny")
  prompt_BxP, len_B = _prompts(seed=1)
  kw = dict(max_new_tokens=N, stop_id=NO_STOP, pad_id=PAD, temperature=temperature,
            rng=jax.random.key(3))
  a_BxN, _ = decode.generate(params, cfg, prompt_BxP, len_B, **kw)
  other_BxP, other_len_B = _prompts(seed=2)
  other_BxP[0], other_len_B[0] = prompt_BxP[0], len_B[0]
  b_BxN, _ = decode.generate(params, cfg, other_BxP, other_len_B, **kw)
  if temperature == 0.0:
    np.testing.assert_array_equal(a_BxN[0], b_BxN[0])
    assert (np.asarray(a_BxN[1:]) != np.asarray(b_BxN[1:])).any()
  else:  # sampling noise is per row too, with the same key
    np.testing.assert_array_equal(a_BxN[0], b_BxN[0])


def test_sampling_is_seeded_and_in_range():
  cfg, params = _model("gpt2_tiny")
  prompt_BxP, len_B = _prompts()
  kw = dict(max_new_tokens=N, stop_id=NO_STOP, pad_id=PAD, temperature=1.0)
  a, _ = decode.generate(params, cfg, prompt_BxP, len_B, rng=jax.random.key(1), **kw)
  b, _ = decode.generate(params, cfg, prompt_BxP, len_B, rng=jax.random.key(1), **kw)
  c, _ = decode.generate(params, cfg, prompt_BxP, len_B, rng=jax.random.key(2), **kw)
  np.testing.assert_array_equal(a, b)
  assert (np.asarray(a) != np.asarray(c)).any()
  assert ((np.asarray(a) >= 0) & (np.asarray(a) < VOCAB)).all()
  # Near-zero temperature is greedy.
  cold, _ = decode.generate(params, cfg, prompt_BxP, len_B, rng=jax.random.key(1),
                            **{**kw, "temperature": 1e-4})
  greedy, _ = decode.generate(params, cfg, prompt_BxP, len_B,
                              **{**kw, "temperature": 0.0})
  np.testing.assert_array_equal(cold, greedy)


def test_bucketed_attention_and_ahead_of_time_compile_write_the_same_tokens():
  cfg, params = _model("test_tiny")
  prompt_BxP, len_B = _prompts()
  kw = dict(max_new_tokens=N, stop_id=NO_STOP, pad_id=PAD)
  whole_BxN, whole_len_B = decode.generate(params, cfg, prompt_BxP, len_B, **kw)
  buckets_BxN, _ = decode.generate(params, cfg, prompt_BxP, len_B, kv_buckets=4, **kw)
  fn = decode.compile_generate(params, cfg, prompt_BxP, len_B, kv_buckets=4, **kw)
  aot_BxN, aot_len_B = fn(params, prompt_BxP, len_B, np.float32(0.0), jax.random.key(0))
  np.testing.assert_array_equal(buckets_BxN, whole_BxN)
  np.testing.assert_array_equal(aot_BxN, whole_BxN)
  np.testing.assert_array_equal(aot_len_B, whole_len_B)


def test_traced_and_python_temperatures_pick_the_same_tokens():
  logits_BxV = jax.random.normal(jax.random.key(0), (4, VOCAB))
  key = jax.random.key(5)
  traced = jax.jit(decode.sample_logits)
  for t in (0.0, 0.7):
    np.testing.assert_array_equal(traced(logits_BxV, jnp.float32(t), key),
                                  decode.sample_logits(logits_BxV, t, key))
  np.testing.assert_array_equal(decode.sample_logits(logits_BxV, 0.0, key),
                                jnp.argmax(logits_BxV, -1))
  np.testing.assert_array_equal(
      decode.sample_logits(logits_BxV, 0.7, key),
      jax.random.categorical(key, logits_BxV / 0.7, axis=-1))
