"""All device-mapping code: `jax.pmap` over the local devices, axis name AXIS.

The global batch's leading axis is split into (num_devices, per_device); model and gate
parameters are replicated. pmap is in maintenance mode in current JAX (built on
jit(shard_map)) but is what this project's design asks for; keeping every mapping call here
means a move to `jax.shard_map` touches one file.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from collab import rollout as rollout_lib

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
