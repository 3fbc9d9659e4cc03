"""All device-mapping code: `jax.pmap` over the local devices, axis name AXIS; and the
model-sharded alternative for an LLM that does not fit one device.

pmap (the default): the global batch's leading axis is split into (num_devices, per_device);
model and gate parameters are replicated. pmap is in maintenance mode in current JAX (built on
jit(shard_map)) but is what this project's design asks for; keeping every mapping call here
means a move to `jax.shard_map` touches one file.

Model-sharded (`ModelMesh`, when a config's `mesh.model` > 1, see configs/pairs/): one jit
over a ('data', 'model') mesh. The LLM's parameters are split over 'model' as
collab/models/sharding.py plans, the batch over 'data', the SLM and gate are replicated, and
XLA's GSPMD partitions the same rollout and train-step code. The train step's collectives
(psum/pmean over AXIS) run under `jax.vmap` over a device axis of size 1, where they are the
identity: the one program already sees the global batch. The LLM's capacity
(`rollout.llm_capacity`) then counts rows of the whole batch, not of one device.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from collab import rollout as rollout_lib
from collab.models import sharding as sharding_lib

AXIS = "devices"


def num_devices() -> int:
  return jax.local_device_count()


def _device_axis_sharding(devices):
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def replicate(tree, devices=None):
  """One copy per device (default: all local ones), stacked on a leading device axis."""
  devices = devices or jax.local_devices()
  n, sharding = len(devices), _device_axis_sharding(devices)
  def put(x):
    x = np.asarray(x)
    return jax.device_put(np.broadcast_to(x, (n,) + x.shape), sharding)
  return jax.tree.map(put, tree)


def unreplicate(tree):
  return jax.tree.map(lambda x: x[0], tree)


def shard(batch: dict, n: int | None = None) -> dict:
  """Splits every array's leading axis B into (n, B // n)."""
  n = n or num_devices()
  def split(x):
    x = np.asarray(x)
    if x.shape[0] % n:
      raise ValueError(f"Batch of {x.shape[0]} rows does not split over {n} devices")
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])
  return jax.tree.map(split, batch)


def unshard(tree):
  """(n, B/n, ...) -> (B, ...), on the host."""
  return jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), tree)


def global_mean(x, weight):
  """Weighted mean over every device: sum(x * weight) / sum(weight), inside pmap."""
  return jax.lax.psum(x * weight, AXIS) / jnp.maximum(jax.lax.psum(weight, AXIS), 1e-9)


@functools.lru_cache(maxsize=None)
def pmapped_rollout(setup: rollout_lib.Setup):
  """rollout over devices: (slm, llm, gate) replicated, batch sharded, rng and value shared.
  Returns time-major steps (n, S, B/n, ...) and finals (n, B/n, ...)."""
  fn = functools.partial(rollout_lib.rollout, setup=setup)
  return jax.pmap(fn, axis_name=AXIS, in_axes=(0, 0, 0, 0, None, None))


def pmap(fn, devices=None, **kw):
  return jax.pmap(fn, axis_name=AXIS, devices=devices, **kw)


# ---------------------------------------------------------------------------------------------
# Model-sharded runs: one jit over a ('data', 'model') mesh.

P = jax.sharding.PartitionSpec


class ModelMesh:
  """Placement of a pair and its batches on a ('data', 'model') mesh of every device.

  `lead=True` puts a leading device axis of size 1 on every array, the layout of the vmapped
  train step (`ModelMesh.train_step`), so the pmapped step's code runs unchanged."""

  def __init__(self, model: int, devices=None):
    devices = list(jax.devices() if devices is None else devices)
    if jax.process_count() > 1:
      raise NotImplementedError("Model-sharded runs are single-process for now (one TPU host, "
                                "e.g. v5e-8 or v4-8); several hosts use the pmap path")
    if model < 1 or len(devices) % model:
      raise ValueError(f"mesh.model={model} must divide the {len(devices)} devices")
    self.mesh = sharding_lib.make_mesh(len(devices) // model, model, devices)
    self.data = self.mesh.shape["data"]

  def _named(self, spec, lead: bool = False):
    return jax.sharding.NamedSharding(self.mesh, P(None, *spec) if lead else spec)

  def replicate(self, tree, lead: bool = False):
    """A copy on every device. (An array already laid out so is not copied again.)"""
    return jax.tree.map(lambda x: self._put(x, P(), lead), tree)

  def shard_model(self, params, lead: bool = False):
    """Params split over 'model' (sharding.param_specs: Megatron-style)."""
    specs = sharding_lib.param_specs(params, self.mesh.shape["model"])
    # params' leaves line up with the specs (a PartitionSpec is a tuple: a subtree here).
    return jax.tree.map(lambda x, s: self._put(x, s, lead), params, specs)

  def _put(self, x, spec, lead):
    return jax.device_put(np.asarray(x)[None] if lead else x, self._named(spec, lead))

  def shard_batch(self, batch: dict, lead: bool = False) -> dict:
    """Every array's leading (batch) axis split over 'data'."""
    def put(x):
      x = np.asarray(x)
      if x.shape[0] % self.data:
        raise ValueError(f"Batch of {x.shape[0]} rows does not split over the mesh's "
                         f"{self.data} data shards")
      return self._put(x, P("data"), lead)
    return jax.tree.map(put, batch)

  def train_step(self, train_step):
    """The pmap body `train_step(state, slm, llm, batch, rng)` as one GSPMD-partitioned jit:
    vmapped over a device axis of size 1 (AXIS, so its psum/pmean stay valid), arguments laid
    out with lead=True. Outputs (the new state, metrics) come back replicated, as pmap's do,
    so the loop reads and checkpoints them the same way."""
    return jax.jit(jax.vmap(train_step, in_axes=(0, 0, 0, 0, None), axis_name=AXIS),
                   donate_argnums=(0,), out_shardings=self._named(P(), True))


def model_mesh(config) -> ModelMesh | None:
  """The config's model-sharded mesh (`config.mesh.model` > 1), else None (the pmap path)."""
  mesh_cfg = config.get("mesh")
  model = int(mesh_cfg.get("model", 1)) if mesh_cfg else 1
  return ModelMesh(model) if model > 1 else None

