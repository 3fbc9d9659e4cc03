"""Hugging Face import/export: logit and greedy parity with transformers on tiny random models.

Builds tiny LlamaForCausalLM / Qwen2ForCausalLM (torch, CPU, float32) with random weights
(biases and norm scales too, so every tensor matters), saves them with save_pretrained,
imports them with collab.models.hf_io and compares logits (no cache, chunked prefill,
token by token) and greedy continuations against transformers, with and without its KV cache.
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

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)  # tiny models: threads only contend on a shared 2-core machine

VOCAB = 96
TOL = 1e-4  # max abs logit difference, float32
# Llama 3 style: explicit head_dim != hidden/heads, GQA, tied, llama3 RoPE scaling with
# original_max_position_embeddings small enough that all three frequency bands occur.
LLAMA3 = dict(kind="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
              rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
              max_position_embeddings=256,
              rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                high_freq_factor=4.0, original_max_position_embeddings=64))
# Qwen2 style: q/k/v biases, one kv head, untied, large theta; saved in shards.
QWEN2 = dict(kind="qwen2", vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
             rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
             max_position_embeddings=256)
# Llama 2 style: plain multi-head attention, linear RoPE scaling, untied.
LLAMA_LINEAR = dict(kind="llama", vocab_size=VOCAB, hidden_size=24, intermediate_size=40,
                    num_hidden_layers=1, num_attention_heads=3, rms_norm_eps=1e-6,
                    tie_word_embeddings=False, max_position_embeddings=256,
                    rope_scaling=dict(type="linear", factor=2.0))
MODELS = {"llama3": LLAMA3, "qwen2": QWEN2, "llama_linear": LLAMA_LINEAR}


def _hf_model(spec: dict, seed: int = 0):
  spec = dict(spec)
  kind = spec.pop("kind")
  cls_cfg, cls_model = {
      "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
      "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[kind]
  torch.manual_seed(seed)
  model = cls_model(cls_cfg(**spec)).eval()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
      elif name.endswith("bias"):
        p.copy_(0.3 * torch.randn(p.shape, generator=gen))
      else:  # unit-scale activations, O(1) logits: differences cannot hide in tiny numbers
        p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
  return model


@functools.lru_cache(maxsize=None)
def _saved(name: str, root: str) -> str:
  path = os.path.join(root, name)
  model = _hf_model(MODELS[name])
  # Qwen2 is written in several shards with an index, as large checkpoints are.
  model.save_pretrained(path, max_shard_size="20KB" if name == "qwen2" else "5GB")
  return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return str(tmp_path_factory.mktemp("hf"))


def _tokens(B, T, seed=0):
  return np.random.RandomState(seed).randint(0, VOCAB, size=(B, T)).astype(np.int64)


def _hf_logits(model, tokens_BxT):
  with torch.no_grad():
    return model(torch.from_numpy(tokens_BxT)).logits.numpy()


_apply = jax.jit(tfm.apply, static_argnames="cfg")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_import_logits_match_transformers(name, root):
  path = _saved(name, root)
  if name == "qwen2":
    assert os.path.exists(os.path.join(path, hf_io.INDEX))
  params, cfg = hf_io.load_hf(path)
  hf = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
  assert cfg.tie_embeddings == MODELS[name]["tie_word_embeddings"]
  assert cfg.qkv_bias == (name == "qwen2")
  # Same tree as a fresh init: the import fills every parameter and nothing else.
  want = jax.eval_shape(lambda: tfm.init_params(cfg, jax.random.key(0)))
  assert jax.tree.structure(params) == jax.tree.structure(want)

  B, T = 2, 80  # past original_max_position_embeddings / high_freq_factor
  tokens_BxT = _tokens(B, T)
  ref_BxTxV = _hf_logits(hf, tokens_BxT)
  pos_BxT = tfm.default_positions(jnp.asarray(tokens_BxT))
  full_BxTxV, _, _ = _apply(params, cfg, jnp.asarray(tokens_BxT), pos_BxT)
  err_full = float(np.abs(np.asarray(full_BxTxV) - ref_BxTxV).max())

  # With the KV cache: a chunked prefill of 50 tokens, then one token at a time.
  cache = tfm.init_cache(cfg, B, T)
  chunks = []
  for s, e in [(0, 50)] + [(t, t + 1) for t in range(50, T)]:
    logits, _, cache = _apply(params, cfg, jnp.asarray(tokens_BxT[:, s:e]), pos_BxT[:, s:e],
                              cache)
    chunks.append(np.asarray(logits))
  err_cache = float(np.abs(np.concatenate(chunks, 1) - ref_BxTxV).max())
  print(f"{name}: max |logit diff| no cache {err_full:.2e}, cached {err_cache:.2e}, "
        f"logit scale {np.abs(ref_BxTxV).max():.2f}")
  assert np.abs(ref_BxTxV).max() > 1.0  # the comparison is not between near-zero numbers
  assert err_full < TOL and err_cache < TOL


@functools.partial(jax.jit, static_argnames=("cfg", "n"))
def _greedy_no_cache(params, cfg, prompt_BxP, n):
  """Full forward pass (no cache) for every new token over a fixed-size buffer."""
  B, P = prompt_BxP.shape
  buf_BxL = jnp.concatenate([prompt_BxP, jnp.zeros((B, n), prompt_BxP.dtype)], 1)

  def step(i, buf_BxL):
    logits_BxLxV, _, _ = tfm.apply(params, cfg, buf_BxL, tfm.default_positions(buf_BxL))
    tok_B = jnp.argmax(logits_BxLxV[:, P + i - 1], -1).astype(buf_BxL.dtype)
    return buf_BxL.at[:, P + i].set(tok_B)

  return jax.lax.fori_loop(0, n, step, buf_BxL)[:, P:]


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_greedy_continuations_match_transformers(name, root):
  path = _saved(name, root)
  params, cfg = hf_io.load_hf(path)
  hf = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
  B, P, N = 3, 12, 20
  prompt_BxP = _tokens(B, P, seed=1)
  ours_cached, len_B = decode.generate(params, cfg, prompt_BxP.astype(np.int32),
                                       np.full((B,), P), max_new_tokens=N, stop_id=-1,
                                       pad_id=0)
  assert (np.asarray(len_B) == N).all()
  ours_full = _greedy_no_cache(params, cfg, jnp.asarray(prompt_BxP, jnp.int32), N)
  for use_cache in (True, False):
    with torch.no_grad():
      out = hf.generate(torch.from_numpy(prompt_BxP), attention_mask=torch.ones(B, P),
                        max_new_tokens=N, min_new_tokens=N, do_sample=False,
                        use_cache=use_cache, eos_token_id=None, pad_token_id=0)
    ref_BxN = out[:, P:].numpy()
    np.testing.assert_array_equal(np.asarray(ours_cached), ref_BxN)
    np.testing.assert_array_equal(np.asarray(ours_full), ref_BxN)
  assert len(np.unique(ref_BxN)) > 3  # not a degenerate repeat of one token


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_export_loads_in_transformers_and_round_trips(name, root, tmp_path):
  params, cfg = hf_io.load_hf(_saved(name, root))
  out = str(tmp_path / "export")
  hf_io.save_hf(out, params, cfg, max_shard_bytes=30_000)  # several shards + index
  assert os.path.exists(os.path.join(out, hf_io.INDEX))
  with open(os.path.join(out, hf_io.CONFIG)) as f:
    assert hf_io.config_from_hf(json.load(f)) == cfg
  again, cfg2 = hf_io.load_hf(out)
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, again, params)
  hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert type(hf).__name__ == {"llama3": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[name]
  tokens_BxT = _tokens(2, 70, seed=3)
  ref_BxTxV = _hf_logits(hf, tokens_BxT)
  ours, _, _ = _apply(params, cfg, jnp.asarray(tokens_BxT),
                      tfm.default_positions(jnp.asarray(tokens_BxT)))
  assert float(np.abs(np.asarray(ours) - ref_BxTxV).max()) < TOL
  # to_hf_state_dict is what torch sees: strict load_state_dict works with tied_lm_head.
  state = {k: torch.from_numpy(v) for k, v in
           hf_io.to_hf_state_dict(params, cfg, tied_lm_head=True).items()}
  hf.load_state_dict(state, strict=True)


def test_bfloat16_checkpoint_loads_as_bfloat16(tmp_path):
  model = _hf_model(QWEN2).to(torch.bfloat16)
  model.save_pretrained(str(tmp_path))
  params, cfg = hf_io.load_hf(str(tmp_path))
  assert cfg.param_dtype == "bfloat16" and cfg.dtype == "bfloat16"
  want = model.model.layers[1].self_attn.k_proj.weight.detach().float().numpy().T
  got = params["layer_1"]["self_attn"]["k_proj"]["kernel"]
  assert got.dtype == jnp.bfloat16
  np.testing.assert_array_equal(got.astype(np.float32), want)
  params32, cfg32 = hf_io.load_hf(str(tmp_path), dtype="float32", param_dtype="float32")
  assert params32["embed"]["embedding"].dtype == np.float32 and cfg32.dtype == "float32"
  # Written back as bfloat16, bit for bit.
  hf_io.save_hf(str(tmp_path / "out"), params, cfg)
  again, want_state = hf_io.read_state_dict(str(tmp_path / "out")), hf_io.read_state_dict(
      str(tmp_path))
  assert set(again) == set(want_state)
  for k, v in again.items():
    assert v.dtype == jnp.bfloat16 and v.tobytes() == want_state[k].tobytes(), k


def test_project_preset_exports_to_transformers(tmp_path):
  """A model trained here (a llama preset) runs in transformers with the same logits."""
  from collab.models import presets
  cfg = presets.get_model_config("test_tiny", VOCAB)
  params = tfm.init_params(cfg, jax.random.key(3))  # unit-scale logits by design
  hf_io.save_hf(str(tmp_path), params, cfg)
  hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  tokens_BxT = _tokens(2, 40, seed=4)
  ref_BxTxV = _hf_logits(hf, tokens_BxT)
  ours, _, _ = _apply(params, cfg, jnp.asarray(tokens_BxT),
                      tfm.default_positions(jnp.asarray(tokens_BxT)))
  err = float(np.abs(np.asarray(ours) - ref_BxTxV).max())
  print(f"test_tiny preset: max |logit diff| {err:.2e}, logit scale {np.abs(ref_BxTxV).max():.2f}")
  assert err < TOL
  with pytest.raises(ValueError, match="llama-arch"):
    hf_io.hf_config_dict(presets.get_model_config("gpt2_tiny", VOCAB))


def test_rope_scaling_survives_a_json_round_trip():
  """Exports and checkpoints store dataclasses.asdict(cfg) as JSON (tuples become lists)."""
  cfg = hf_io.config_from_hf(dict(LLAMA3, model_type="llama"))
  again = type(cfg)(**json.loads(json.dumps(dataclasses.asdict(cfg))))
  assert again == cfg and hash(again) == hash(cfg)
  assert cfg.rope_scaling_dict["rope_type"] == "llama3"


def test_rope_inv_freq_matches_transformers():
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
  for spec in (LLAMA3, LLAMA_LINEAR):
    hf_cfg = transformers.LlamaConfig(**{k: v for k, v in spec.items() if k != "kind"})
    kind = dict(hf_cfg.rope_parameters)["rope_type"]
    ref, scale = ROPE_INIT_FUNCTIONS[kind](hf_cfg, "cpu")
    cfg = hf_io.config_from_hf(hf_cfg.to_dict())
    got = tfm.rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    assert scale == 1.0
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6)


def _cfg_dict(**kw):
  base = dict(model_type="llama", vocab_size=16, hidden_size=8, intermediate_size=16,
              num_hidden_layers=1, num_attention_heads=2)
  return base | kw


@pytest.mark.parametrize("kw, match", [
    (dict(rope_scaling=dict(rope_type="yarn", factor=4.0)), "yarn"),
    (dict(rope_scaling=dict(rope_type="dynamic", factor=2.0)), "dynamic"),
    (dict(rope_parameters=dict(rope_type="longrope", rope_theta=1e4)), "longrope"),
    (dict(rope_scaling=dict(rope_type="llama3", factor=8.0)), "lacks"),
    (dict(attention_bias=True), "attention_bias"),
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(model_type="mistral"), "model_type"),
    (dict(model_type="qwen2", use_sliding_window=True), "sliding"),
])
def test_unsupported_configs_are_clear_errors(kw, match):
  with pytest.raises(ValueError, match=match):
    hf_io.config_from_hf(_cfg_dict(**kw))


def test_both_rope_spellings_read_the_same():
  legacy = hf_io.config_from_hf(_cfg_dict(
      rope_theta=5e5, rope_scaling=dict(type="linear", factor=2.0)))
  v5 = hf_io.config_from_hf(_cfg_dict(
      rope_parameters=dict(rope_type="linear", factor=2.0, rope_theta=5e5)))
  assert legacy == v5 and legacy.rope_scaling_dict == {"rope_type": "linear", "factor": 2.0}
  default = hf_io.config_from_hf(_cfg_dict(
      rope_parameters=dict(rope_type="default", rope_theta=1e6)))
  assert default.rope_scaling is None and default.rope_theta == 1e6


def test_missing_or_misshapen_tensors_are_errors(root):
  path = _saved("llama3", root)
  cfg = hf_io.load_hf_config(path)
  state = dict(hf_io.read_state_dict(path))
  del state["model.layers.1.mlp.up_proj.weight"]
  with pytest.raises(hf_io.HFImportError, match="up_proj"):
    hf_io.from_hf_state_dict(state, cfg)
  state = dict(hf_io.read_state_dict(path))
  state["model.layers.0.self_attn.k_proj.weight"] = np.zeros((3, 3), np.float32)
  with pytest.raises(hf_io.HFImportError, match="shape"):
    hf_io.from_hf_state_dict(state, cfg)
  state = dict(hf_io.read_state_dict(path))
  state["model.layers.0.self_attn.o_proj.bias"] = np.zeros(32, np.float32)
  with pytest.raises(hf_io.HFImportError, match="Unexpected"):
    hf_io.from_hf_state_dict(state, cfg)
