"""The Gemma 3 lineage: logit and greedy parity with transformers' Gemma3ForCausalLM on a tiny
random model imported through hf_io (sliding windows shorter than the sequence, a global layer
with linear RoPE scaling, head_dim != d_model / heads, query_pre_attn_scalar != head_dim), the
export round trip, and the window in the KV cache (bucketed slices equal the whole cache; keys
past the window change nothing).
"""
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab.models import decode
from collab.models import hf_io
from collab.models import transformer as tfm
from collab.models.config import ModelConfig

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)

VOCAB = 96
TOL = 1e-4
WINDOW = 6
GEMMA3 = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
              query_pre_attn_scalar=24, sliding_window=WINDOW, rms_norm_eps=1e-6,
              layer_types=["sliding_attention", "full_attention", "sliding_attention",
                           "sliding_attention"],
              rope_theta=50000.0, rope_local_base_freq=100.0,
              rope_scaling=dict(rope_type="linear", factor=2.0),
              max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=0,
              bos_token_id=2, eos_token_id=1)

_apply = jax.jit(tfm.apply, static_argnames=("cfg", "kv_buckets"))


def _hf_model(seed: int = 0):
  torch.manual_seed(seed)
  model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**GEMMA3)).eval()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):  # zero-centred: the model uses 1 + w
        p.copy_(0.2 * torch.randn(p.shape, generator=gen))
      elif "embed_tokens" in name:  # scaled by sqrt(d) on the way in
        p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
      else:
        p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
  return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("gemma3"))
  _hf_model().save_pretrained(path)
  return path


def _tokens(B, T, seed=0):
  return np.random.RandomState(seed).randint(0, VOCAB, size=(B, T)).astype(np.int64)


def _hf_logits(model, tokens_BxT):
  with torch.no_grad():
    return model(torch.from_numpy(tokens_BxT)).logits.numpy()


def test_config_reads_every_gemma3_field(saved):
  cfg = hf_io.load_hf_config(saved)
  assert cfg.arch == "gemma3" and cfg.head_dim == 16 and cfg.d_model == 32
  assert cfg.sliding_window == WINDOW and cfg.layer_types == tuple(GEMMA3["layer_types"])
  assert cfg.rope_theta == 50000.0 and cfg.rope_local_theta == 100.0
  assert cfg.rope_scaling_dict == {"rope_type": "linear", "factor": 2.0}
  assert cfg.query_pre_attn_scalar == 24 and cfg.attn_scale == 24 ** -0.5
  assert cfg.layer_window(0) == WINDOW and cfg.layer_window(1) is None
  assert cfg.layer_rope(0) == (100.0, None) and cfg.layer_rope(1)[0] == 50000.0
  # Exports store dataclasses.asdict(cfg) as JSON (tuples come back as lists).
  again = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
  assert again == cfg and hash(again) == hash(cfg)


def test_import_logits_match_transformers(saved):
  params, cfg = hf_io.load_hf(saved)
  want = jax.eval_shape(lambda: tfm.init_params(cfg, jax.random.key(0)))
  assert jax.tree.structure(params) == jax.tree.structure(want)
  hf = transformers.AutoModelForCausalLM.from_pretrained(saved).eval()
  B, T = 2, 40  # several windows long
  tokens_BxT = _tokens(B, T)
  ref_BxTxV = _hf_logits(hf, tokens_BxT)
  pos_BxT = tfm.default_positions(jnp.asarray(tokens_BxT))
  full, _, _ = _apply(params, cfg, jnp.asarray(tokens_BxT), pos_BxT)
  errs = {"no cache": float(np.abs(np.asarray(full) - ref_BxTxV).max())}
  for buckets in (4,):  # sliding layers read a slice of the cache around the window
    cache = tfm.init_cache(cfg, B, T)
    chunks = []
    for s, e in [(0, 15)] + [(t, t + 1) for t in range(15, T)]:
      logits, _, cache = _apply(params, cfg, jnp.asarray(tokens_BxT[:, s:e]), pos_BxT[:, s:e],
                                cache, kv_buckets=buckets)
      chunks.append(np.asarray(logits))
    errs[f"cached, {buckets} buckets"] = float(np.abs(np.concatenate(chunks, 1) - ref_BxTxV).max())
  print(f"gemma3: max |logit diff| {errs}, logit scale {np.abs(ref_BxTxV).max():.2f}")
  assert np.abs(ref_BxTxV).max() > 1.0
  assert max(errs.values()) < TOL, errs


def test_greedy_continuations_match_transformers(saved):
  params, cfg = hf_io.load_hf(saved)
  hf = transformers.AutoModelForCausalLM.from_pretrained(saved).eval()
  B, P, N = 3, 9, 16  # generation runs past the window
  prompt_BxP = _tokens(B, P, seed=1)
  ours, len_B = decode.generate(params, cfg, prompt_BxP.astype(np.int32), np.full((B,), P),
                                max_new_tokens=N, stop_id=-1, pad_id=0)
  assert (np.asarray(len_B) == N).all()
  with torch.no_grad():
    out = hf.generate(torch.from_numpy(prompt_BxP), attention_mask=torch.ones(B, P),
                      max_new_tokens=N, min_new_tokens=N, do_sample=False, eos_token_id=None,
                      pad_token_id=0)
  ref_BxN = out[:, P:].numpy()
  np.testing.assert_array_equal(np.asarray(ours), ref_BxN)
  assert len(np.unique(ref_BxN)) > 3


def test_export_round_trips_and_loads_in_transformers(saved, tmp_path):
  params, cfg = hf_io.load_hf(saved)
  out = str(tmp_path / "export")
  hf_io.save_hf(out, params, cfg)
  with open(os.path.join(out, hf_io.CONFIG)) as f:
    assert hf_io.config_from_hf(json.load(f)) == cfg
  again, cfg2 = hf_io.load_hf(out)
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, again, params)
  hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert type(hf).__name__ == "Gemma3ForCausalLM"
  tokens_BxT = _tokens(2, 30, seed=3)
  ours, _, _ = _apply(params, cfg, jnp.asarray(tokens_BxT),
                      tfm.default_positions(jnp.asarray(tokens_BxT)))
  assert float(np.abs(np.asarray(ours) - _hf_logits(hf, tokens_BxT)).max()) < TOL


@functools.lru_cache(maxsize=None)
def _sliding_only(num_layers=1):
  cfg = ModelConfig(arch="gemma3", vocab_size=VOCAB, d_model=32, num_layers=num_layers,
                    num_heads=2, num_kv_heads=1, head_dim=16, d_ff=48, sliding_window=WINDOW,
                    layer_types=("sliding_attention",) * num_layers)
  return cfg, tfm.init_params(cfg, jax.random.key(1))


def test_keys_past_the_window_change_nothing():
  cfg, params = _sliding_only()
  T = 20
  a = _tokens(1, T, seed=5)
  b = a.copy()
  b[0, :4] = (b[0, :4] + 7) % VOCAB  # positions 0..3: outside the window of positions >= 9
  la, _, _ = _apply(params, cfg, jnp.asarray(a), tfm.default_positions(jnp.asarray(a)))
  lb, _, _ = _apply(params, cfg, jnp.asarray(b), tfm.default_positions(jnp.asarray(b)))
  la, lb = np.asarray(la)[0], np.asarray(lb)[0]
  assert np.abs(la[4:4 + WINDOW - 1] - lb[4:4 + WINDOW - 1]).max() > 1e-3  # inside: changes
  np.testing.assert_array_equal(la[3 + WINDOW:], lb[3 + WINDOW:])


def test_bucketed_window_slices_equal_the_whole_cache():
  """Rows at different offsets, decoded one token at a time into a long cache: reading a
  bucketed slice around each layer's window gives the logits of reading every slot."""
  cfg, params = _sliding_only(2)
  B, S = 3, 64
  offsets = np.array([0, 5, 21])
  tokens = _tokens(B, S, seed=6)
  outs = {}
  for buckets in (1, 4):
    cache = tfm.init_cache(cfg, B, S)
    # Prefill each row up to its offset + 8 (right-padded chunk), then decode.
    pre = 8 + offsets.max()
    pos = jnp.asarray(np.arange(pre)[None].repeat(B, 0), jnp.int32)
    _, _, cache = _apply(params, cfg, jnp.asarray(tokens[:, :pre]), pos, cache,
                         kv_buckets=buckets)
    steps = []
    for t in range(30):
      p = jnp.asarray(offsets + 8 + t, jnp.int32)[:, None]
      tok = jnp.asarray(np.take_along_axis(tokens, np.asarray(p), 1))
      logits, _, cache = _apply(params, cfg, tok, p, cache, kv_buckets=buckets)
      steps.append(np.asarray(logits))
    outs[buckets] = np.concatenate(steps, 1)
  np.testing.assert_allclose(outs[4], outs[1], atol=1e-5)


def test_bucket_choice_reads_a_window_not_the_prefix():
  """At position 200 of a 256-slot cache a sliding layer's attention reads a 64-slot slice
  (the smallest bucket holding its window), not the 256-slot prefix a global layer needs: NaN
  values in slots before the slice reach the whole-cache result only."""
  S, B, H = 256, 1, 16
  assert tfm.kv_bucket_lengths(S, 4) == (64, 128, 192, 256)
  rng = np.random.RandomState(0)
  k = jnp.asarray(rng.randn(B, 1, S, H), jnp.float32)
  v = jnp.asarray(rng.randn(B, 1, S, H), jnp.float32)
  q = jnp.asarray(rng.randn(B, 1, 2, H), jnp.float32)
  cached = jax.jit(tfm.attend_cached, static_argnames=("buckets", "window"))
  pos = jnp.full((B, 1), 200, jnp.int32)
  poisoned = v.at[:, :, :200 + 1 - 64].set(jnp.nan)  # the slice is slots 137..200
  assert np.isfinite(np.asarray(cached(q, k, poisoned, pos, buckets=4, window=WINDOW))).all()
  assert np.isnan(np.asarray(cached(q, k, poisoned, pos, buckets=1, window=WINDOW))).all()
  # Values: the slice gives what masking the whole cache gives.
  for p in (3, 63, 64, 70, 200, 255):
    pos = jnp.full((B, 1), p, jnp.int32)
    np.testing.assert_allclose(cached(q, k, v, pos, buckets=4, window=WINDOW),
                               cached(q, k, v, pos, buckets=1, window=WINDOW), atol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(final_logit_softcapping=30.0), "final_logit_softcapping"),
    (dict(attn_logit_softcapping=50.0), "attn_logit_softcapping"),
    (dict(hidden_activation="silu"), "activation"),
    (dict(use_bidirectional_attention=True), "bidirectional"),
    (dict(model_type="gemma3"), "multimodal"),
])
def test_unsupported_gemma3_configs_are_clear_errors(kw, match):
  base = dict(GEMMA3, model_type="gemma3_text")
  with pytest.raises(ValueError, match=match):
    hf_io.config_from_hf(base | kw)


def test_gemma3_fields_are_errors_on_other_archs():
  with pytest.raises(ValueError, match="only apply to arch='gemma3'"):
    ModelConfig(arch="llama", vocab_size=8, d_model=8, num_layers=1, num_heads=2,
                sliding_window=4)
  cfg = ModelConfig(arch="gemma3", vocab_size=8, d_model=8, num_layers=7, num_heads=2,
                    sliding_window=4)
  assert cfg.layer_types.count("full_attention") == 1 and cfg.layer_types[5] == "full_attention"
  assert cfg.replace(num_layers=12).layer_types.count("full_attention") == 2
