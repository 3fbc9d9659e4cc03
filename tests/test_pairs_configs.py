"""configs/pairs/*.py: every real pair builds, with abstract shapes (jax.eval_shape, no weights),
the published parameter counts, and a mesh whose parameter sharding fits the TPU slice."""
import glob
import importlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab.models import hf_io
from collab.models import sharding
from collab.models import transformer as tfm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Configs with published architectures (not those that read them from checkpoints: DERIVED).
PAIR_FILES = sorted(
    name for name in (os.path.basename(f)[:-3] for f in glob.glob(
        os.path.join(ROOT, "configs", "pairs", "*.py")) if not f.endswith("__init__.py"))
    if not getattr(importlib.import_module(f"configs.pairs.{name}"), "DERIVED", False))
# Published parameter counts (model cards), in billions.
PUBLISHED = {"Qwen2.5-0.5B": 0.494, "Qwen2.5-1.5B": 1.54, "Qwen2.5-3B": 3.09,
             "Qwen2.5-7B": 7.62, "Qwen2.5-14B": 14.7, "Llama-3.2-1B": 1.24,
             "Llama-3.2-3B": 3.21, "Llama-3.1-8B": 8.03}


def _module(name):
  return importlib.import_module(f"configs.pairs.{name}")


def _cfgs(config):
  return (hf_io.config_from_hf(config.models.slm.to_dict()),
          hf_io.config_from_hf(config.models.llm.to_dict()))


def _abstract(cfg):
  return jax.eval_shape(lambda: tfm.init_params(cfg, jax.random.key(0)))


def test_there_are_pairs():
  assert {"qwen2_5", "llama3"} <= set(PAIR_FILES)


@pytest.mark.parametrize("name", PAIR_FILES)
def test_every_size_has_its_published_parameter_count(name):
  module = _module(name)
  family = module.get_config().slm.split("-")[0]
  for size, fields in module.SIZES.items():
    cfg = hf_io.config_from_hf(fields)
    count = sharding.param_count(cfg)
    published = PUBLISHED[f"{family}-{size.upper()}"]
    assert abs(count / 1e9 - published) / published < 0.006, (size, count)
    assert cfg.param_dtype == "bfloat16" and cfg.arch == "llama"


@pytest.mark.parametrize("name", PAIR_FILES)
def test_default_pair_abstract_shapes_and_mesh(name):
  config = _module(name).get_config()
  slm, llm = _cfgs(config)
  assert config.slm in PUBLISHED and config.llm in PUBLISHED
  mesh_cfg = config.mesh
  hbm = mesh_cfg.hbm_gib * 2**30
  assert mesh_cfg.data * mesh_cfg.model == mesh_cfg.num_devices
  for cfg, axis in ((slm, mesh_cfg.slm_model_axis), (llm, mesh_cfg.llm_model_axis)):
    params = _abstract(cfg)  # shapes only: nothing is allocated
    leaves = jax.tree.leaves(params)
    assert sum(int(np.prod(x.shape)) for x in leaves) == sharding.param_count(cfg)
    assert all(x.dtype == jnp.bfloat16 for x in leaves)
    per_device = sharding.bytes_per_device(params, axis)
    assert per_device <= 0.5 * hbm, (cfg, per_device / 2**30)
    # A forward pass with a KV cache, abstractly too.
    cache = jax.eval_shape(lambda c=cfg: tfm.init_cache(c, 2, 16))
    tokens = jax.ShapeDtypeStruct((2, 8), jnp.int32)
    logits, hidden, new_cache = jax.eval_shape(
        lambda p, t, c, cfg=cfg: tfm.apply(p, cfg, t, t, c), params, tokens, cache)
    assert logits.shape == (2, 8, cfg.vocab_size) and hidden.shape == (2, 8, cfg.d_model)
    assert jax.tree.structure(new_cache) == jax.tree.structure(cache)
  # The default slice (v5e-8, 16 GiB a chip): the LLM does not fit one chip's budget, so its
  # parameters are split; the SLM is replicated.
  assert mesh_cfg.tpu == "v5e-8"
  assert sharding.param_bytes(llm) > 0.5 * hbm and mesh_cfg.llm_model_axis > 1
  assert mesh_cfg.slm_model_axis == 1 and sharding.param_bytes(slm) < 0.25 * hbm


@pytest.mark.parametrize("name", PAIR_FILES)
def test_llm_shardings_on_a_mesh_of_the_slice_shape(name):
  """NamedShardings on the 8 fake CPU devices, shaped like the v5e-8 mesh: every sharded
  dimension divides, and the big matrices are the ones split."""
  config = _module(name).get_config()
  _, llm = _cfgs(config)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
  params = _abstract(llm)
  shards = sharding.shardings(mesh, params)
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  for (path, x), s in zip(flat, jax.tree.leaves(shards)):
    keys = [k.key for k in path]
    local = s.shard_shape(x.shape)
    if keys[-1] == "scale":
      assert local == x.shape, keys  # norms replicated
    else:  # embedding, every kernel, q/k/v biases
      assert np.prod(local) * config.mesh.model == np.prod(x.shape), keys


@pytest.mark.parametrize("name", PAIR_FILES)
@pytest.mark.parametrize("tpu", sorted(sharding.TPUS))
def test_every_slice_gets_a_mesh_that_fits(name, tpu):
  config = _module(name).get_config(f"tpu={tpu}")
  _, llm = _cfgs(config)
  m = config.mesh
  assert m.data * m.model == sharding.TPUS[tpu]["num_devices"]
  assert sharding.param_bytes(llm) / m.model <= 0.5 * m.hbm_gib * 2**30
  if m.model > 1:  # no bigger split than needed
    assert sharding.param_bytes(llm) / (m.model // 2) > 0.5 * m.hbm_gib * 2**30


def test_sharded_params_give_the_unsharded_logits():
  """shard_params over a 2x4 mesh of fake devices; jit(apply) inserts the collectives."""
  config = _module("qwen2_5").get_config("runlocal")
  _, llm = _cfgs(config)
  llm = llm.replace(num_heads=8, num_kv_heads=4)  # kv columns divide the model axis
  params = tfm.init_params(llm, jax.random.key(0))
  mesh = sharding.make_mesh(2, 4)
  sharded = sharding.shard_params(jax.device_get(params), mesh)
  q = sharded["layer_0"]["self_attn"]["q_proj"]["kernel"]
  assert q.sharding.shard_shape(q.shape) == (llm.d_model, llm.num_heads * llm.head_dim // 4)
  tokens = jax.random.randint(jax.random.key(1), (4, 12), 0, llm.vocab_size)
  pos = tfm.default_positions(tokens)
  apply = jax.jit(tfm.apply, static_argnames="cfg")
  want, _, _ = apply(params, llm, tokens, pos)
  got, _, _ = apply(sharded, llm, tokens, pos)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5)


def test_runlocal_and_bad_arguments():
  for name in PAIR_FILES:
    config = _module(name).get_config("runlocal")
    slm, llm = _cfgs(config)
    assert config.mesh.num_devices == 1 and slm.vocab_size == llm.vocab_size
    assert sharding.param_count(llm) < 1e6
  with pytest.raises(ValueError, match="Unknown Qwen2.5 size"):
    _module("qwen2_5").get_config("llm=70b")
  with pytest.raises(ValueError, match="Unknown TPU slice"):
    _module("llama3").get_config("tpu=v9-8")
  with pytest.raises(ValueError, match="does not divide"):
    _module("llama3").get_config("model_axis=3")


def test_cross_family_pair_config_names_what_is_missing(tmp_path):
  """configs/pairs/smollm2_gemma3.py (SmolLM2 SLM, Gemma 3 LLM: two tokenizers) reads its
  architectures from the GGUF files (DERIVED, so not among PAIR_FILES): a missing file is a
  ConfigError naming the make target. tests/test_mixed_pair.py builds it on tiny GGUF files,
  tests/e2e/test_smollm2_gemma3_pair_real.py on the real ones."""
  from collab import errors  # pylint: disable=g-import-not-at-top
  module = _module("smollm2_gemma3")
  assert module.DERIVED and "smollm2_gemma3" not in PAIR_FILES
  assert "make real-models" in module.missing(llm_dir=str(tmp_path / "none.gguf"))
  with pytest.raises(errors.ConfigError, match="make real-models"):
    module.get_config(f"llm_dir={tmp_path / 'none.gguf'}")
