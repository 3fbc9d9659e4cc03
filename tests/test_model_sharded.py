"""Model-sharded runs: with the LLM's parameters split over the 'model' axis of a 4 x 2
('data', 'model') mesh of the 8 fake devices, the rollout, evaluation and gate training give
what the pmapped path (every parameter replicated on every device) gives."""

import jax
import ml_collections
import numpy as np
import pytest

import fake_models
from collab import evaluate
from collab import parallel
from collab import rollout as rollout_lib
from collab.train import gate
from collab import pair as pair_lib


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  config = fake_models.gate_config(tmp_path_factory.mktemp("model_sharded"))
  config.llm = "slm_s"  # llama blocks: q/k/v/o and the MLP split over 'model'
  fake_models.export_random_pair(config, logit_scale=20.0)
  return config


def _meshed(config):
  config = config.copy_and_resolve_references()
  config.mesh = ml_collections.ConfigDict(dict(model=2))
  return config


def test_llm_params_are_split_over_the_model_axis(config):
  mesh = parallel.model_mesh(_meshed(config))
  assert (mesh.data, mesh.mesh.shape["model"]) == (4, 2)
  pair = pair_lib.load_pair(config)
  llm = mesh.shard_model(pair.llm_params)
  q = llm["layer_0"]["self_attn"]["q_proj"]["kernel"]
  assert q.sharding.shard_shape(q.shape) == (q.shape[0], q.shape[1] // 2)
  down = llm["layer_0"]["mlp"]["down_proj"]["kernel"]
  assert down.sharding.shard_shape(down.shape) == (down.shape[0] // 2, down.shape[1])
  assert parallel.model_mesh(config) is None  # no mesh in the config: the pmap path


def test_rollout_on_the_mesh_matches_pmap(config):
  """Random asking at rate 0.5 (seeded per row): both writers, every counter compared. (The
  gate's own policy runs in the training test.)"""
  policy, value = rollout_lib.Policy(kind="random"), 0.5
  pair = pair_lib.load_pair(config)
  episodes = pair_lib.eval_episodes(config, pair)
  setup = pair_lib.make_setup(config, pair)
  gate_params = gate.init_state(config, pair, gate.make_optimizer(config))["params"]["gate"]
  kw = dict(batch_size=16, value=value, rng_seed=3)
  want = evaluate.run_policy(pair, setup, gate_params, episodes, policy, **kw)
  got = evaluate.run_policy(pair, setup, gate_params, episodes, policy,
                            mesh=parallel.model_mesh(_meshed(config)), **kw)
  assert 0 < want["calls"].sum() < want["decisions"].sum()  # both writers were used
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_gate_training_on_the_mesh_matches_pmap(config, tmp_path):
  config = config.copy_and_resolve_references()
  config.rl.num_steps = 3
  want = gate.train(config, str(tmp_path / "pmap"))["gate_params"]
  got = gate.train(_meshed(config), str(tmp_path / "mesh"))["gate_params"]
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)
  moved = [np.abs(np.asarray(w) - np.asarray(i)).max() for w, i in zip(
      jax.tree.leaves(want),
      jax.tree.leaves(gate.init_state(config, pair_lib.load_pair(config),
                                      gate.make_optimizer(config))["params"]["gate"]))]
  assert max(moved) > 1e-4  # three updates were applied, not none


def test_mesh_must_divide_the_devices(config):
  bad = config.copy_and_resolve_references()
  bad.mesh = ml_collections.ConfigDict(dict(model=3))
  with pytest.raises(ValueError, match="must divide the 8 devices"):
    parallel.model_mesh(bad)
