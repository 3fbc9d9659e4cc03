"""Parameter sharding of the Flax models over a ('data', 'model') device mesh.

An LLM that does not fit one TPU core gets its parameters split over the mesh's 'model' axis,
Megatron style: q/k/v, gate and up projections by output column, o and down projections by
input row (so each pair needs one all-reduce), the embedding and lm_head by vocabulary. Norm
scales stay replicated, and so does any dimension the axis size does not divide. XLA's GSPMD
inserts the collectives when `transformer.apply` is jitted with these shardings (tested to give
the unsharded logits). An SLM that fits stays replicated.

`plan_model_axis` picks the smallest 'model' axis that brings the parameters under a share of a
core's memory; configs/pairs/*.py record the plan for their TPU slice.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from collab.models.config import ModelConfig

AXES = ("data", "model")

# TPU slices: devices (JAX devices; v4 and v5p are megacore, one device per chip) and memory
# per device. Public figures.
TPUS = {
    "v4-8": dict(num_devices=4, hbm_gib=32),
    "v5e-4": dict(num_devices=4, hbm_gib=16),
    "v5e-8": dict(num_devices=8, hbm_gib=16),
    "v5e-16": dict(num_devices=16, hbm_gib=16),
    "v5p-8": dict(num_devices=4, hbm_gib=95),
    "v6e-8": dict(num_devices=8, hbm_gib=32),
}

# Which dimension of each Dense kernel / bias is split over 'model' (None: replicated).
_KERNEL_DIM = {"q_proj": 1, "k_proj": 1, "v_proj": 1, "o_proj": 0, "gate_proj": 1,
               "up_proj": 1, "down_proj": 0, "lm_head": 1}
_BIAS_DIM = {"q_proj": 0, "k_proj": 0, "v_proj": 0}


def param_count(cfg: ModelConfig) -> int:
  """Parameters of a llama-arch or gemma3 cfg, in closed form (no tracing: for 8B configs
  too)."""
  if cfg.arch not in ("llama", "gemma3"):
    raise ValueError("param_count covers llama-arch and gemma3 models")
  D, F, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  layer = 2 * D + D * q + 2 * D * kv + q * D + 3 * D * F + (q + 2 * kv) * cfg.qkv_bias
  if cfg.arch == "gemma3":  # pre/post feed-forward norms, q and k norms
    layer += 2 * D + 2 * cfg.head_dim
  return V * D * (1 if cfg.tie_embeddings else 2) + cfg.num_layers * layer + D


def param_bytes(cfg: ModelConfig) -> int:
  return param_count(cfg) * cfg.weight_dtype.itemsize


def plan_model_axis(cfg: ModelConfig, num_devices: int, hbm_bytes: int,
                    budget: float = 0.5) -> int:
  """Smallest power-of-two 'model' axis dividing num_devices under which the parameters take
  at most `budget` of a device's memory (the rest: KV caches, activations, the SLM)."""
  size = 1
  while param_bytes(cfg) / size > budget * hbm_bytes:
    size *= 2
    if num_devices % size:
      raise ValueError(f"{param_bytes(cfg) / 2**30:.1f} GiB of parameters do not fit "
                       f"{budget:.0%} of {num_devices} devices of {hbm_bytes / 2**30:.0f} GiB")
  return size


def param_specs(params, model_size: int, axis: str = "model") -> Any:
  """A PartitionSpec per leaf of a params tree (arrays or ShapeDtypeStructs)."""
  def spec(path, x):
    keys = [k.key for k in path]
    dim = None
    if keys[-1] == "embedding":
      dim = 0
    elif keys[-1] == "kernel":
      dim = _KERNEL_DIM.get(keys[-2])
    elif keys[-1] == "bias":
      dim = _BIAS_DIM.get(keys[-2])
    if dim is None or model_size == 1 or x.shape[dim] % model_size:
      return P()
    return P(*[axis if d == dim else None for d in range(len(x.shape))])
  return jax.tree_util.tree_map_with_path(spec, params)


def make_mesh(data: int, model: int, devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  if data * model > len(devices):
    raise ValueError(f"A {data}x{model} mesh needs {data * model} devices, have {len(devices)}")
  return Mesh(np.asarray(devices[:data * model]).reshape(data, model), AXES)


def shardings(mesh: Mesh, params) -> Any:
  """NamedShardings of params on mesh (split over its 'model' axis)."""
  specs = param_specs(params, mesh.shape["model"])
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs)


def shard_params(params, mesh: Mesh) -> Any:
  """Puts params (e.g. numpy arrays from hf_io.load_hf) on mesh, each device its slice."""
  return jax.device_put(params, shardings(mesh, params))


def bytes_per_device(params, model_size: int) -> int:
  """Bytes of params on one device when split `model_size` ways as param_specs says."""
  specs = param_specs(params, model_size)
  total = 0
  for x, s in zip(jax.tree.leaves(params), jax.tree.leaves(specs, is_leaf=lambda s:
                                                              isinstance(s, P))):
    n = math.prod(x.shape) * np.dtype(x.dtype).itemsize
    total += n // model_size if any(a is not None for a in s) else n
  return total
