"""Model sizes as frozen (hashable) dataclasses: a config is a static argument under `jax.jit`."""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

ARCHS = ("llama", "gpt2", "gemma3")
LAYER_TYPES = ("full_attention", "sliding_attention")
# Gemma 3 interleaves five sliding-window layers with one global layer.
GEMMA3_SLIDING_PATTERN = 6
_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """Size and architecture of a decoder-only transformer.

  arch: 'llama' (RMSNorm, RoPE, SwiGLU, grouped-query attention), 'gpt2' (LayerNorm, learned
    absolute positions, GELU MLP, biases everywhere) or 'gemma3' (llama's attention plus RMSNorm
    of q and k per head, four zero-centred RMSNorms per block (x * (1 + w)), embeddings scaled by
    sqrt(d_model), GeGLU MLP, sliding-window layers interleaved with global ones).
  num_kv_heads: defaults to num_heads (plain multi-head attention); must divide num_heads.
  head_dim: defaults to d_model // num_heads (resolved in __post_init__, so it is always an int).
  d_ff: MLP hidden width; defaults to 4 * d_model (gpt2) or ~8/3 * d_model rounded up to a
    multiple of 16 (llama, SwiGLU keeps the parameter count of a 4x GELU MLP).
  max_len: the longest position the model is meant for; gpt2's position table has this many
    rows (positions past it are clipped), llama's RoPE has no hard limit.
  qkv_bias: biases on the q/k/v projections of llama-style models (Qwen2 has them); gpt2 always
    has biases on every projection.
  rope_scaling: None, or the RoPE frequency scaling of long-context checkpoints as a dict like
    Hugging Face's ({'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
    'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192} or {'rope_type':
    'linear', 'factor': 4.0}); stored as a sorted tuple of (key, value) pairs (hashable).
  dtype / param_dtype: activation and parameter dtypes (names, so the config stays hashable).
  feature_layers: the hidden states the forward pass returns beside the logits (a gate's
    features): 1, the final norm's output (width d_model); k > 1 appends the residual streams
    of the k - 1 layers below the last, each RMS-normalized, deepest first (the embeddings
    count as layer 0), width k * d_model. The logits read the first d_model alone.

  Gemma 3 only (errors on other archs when set):
  sliding_window: a query at position p of a sliding layer sees keys at positions p-W+1..p.
  layer_types: per layer 'sliding_attention' or 'full_attention' (tuple); defaults to Gemma 3's
    pattern, every 6th layer global, when sliding_window is set, else all global.
  rope_local_theta: the RoPE base of sliding layers (rope_theta and rope_scaling are the global
    layers').
  query_pre_attn_scalar: attention scores are scaled by its inverse square root; defaults to
    head_dim (the scale of the other archs).
  """
  arch: str
  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  num_kv_heads: int | None = None
  head_dim: int | None = None
  d_ff: int | None = None
  max_len: int = 192
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  tie_embeddings: bool = True
  qkv_bias: bool = False
  rope_scaling: tuple[tuple[str, float | int | str], ...] | None = None
  dtype: str = "float32"
  param_dtype: str = "float32"
  sliding_window: int | None = None
  layer_types: tuple[str, ...] | None = None
  rope_local_theta: float = 10000.0
  query_pre_attn_scalar: float | None = None
  feature_layers: int = 1

  def __post_init__(self):
    if self.arch not in ARCHS:
      raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "max_len"):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    # Resolve defaults; object.__setattr__ because the dataclass is frozen.
    if self.num_kv_heads is None:
      object.__setattr__(self, "num_kv_heads", self.num_heads)
    if self.head_dim is None:
      if self.d_model % self.num_heads:
        raise ValueError(f"d_model={self.d_model} is not divisible by num_heads="
                         f"{self.num_heads}; pass head_dim explicitly")
      object.__setattr__(self, "head_dim", self.d_model // self.num_heads)
    if self.d_ff is None:
      d_ff = 4 * self.d_model if self.arch == "gpt2" else _swiglu_width(self.d_model)
      object.__setattr__(self, "d_ff", d_ff)
    if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} must be a positive multiple of "
                       f"num_kv_heads={self.num_kv_heads} (grouped-query attention)")
    if self.head_dim <= 0 or self.d_ff <= 0:
      raise ValueError(f"head_dim and d_ff must be positive, got {self.head_dim}, {self.d_ff}")
    if self.arch != "gpt2" and self.head_dim % 2:
      raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
    for name in ("dtype", "param_dtype"):
      if getattr(self, name) not in _DTYPES:
        raise ValueError(f"{name} must be one of {_DTYPES}, got {getattr(self, name)!r}")
    if self.norm_eps <= 0 or self.rope_theta <= 0:
      raise ValueError("norm_eps and rope_theta must be positive")
    if not 1 <= self.feature_layers <= self.num_layers + 1:
      raise ValueError(f"feature_layers must be in [1, num_layers + 1 = {self.num_layers + 1}]"
                       f" (the embeddings and each layer's output), got {self.feature_layers}")
    if self.rope_scaling is not None:
      object.__setattr__(self, "rope_scaling", _freeze_rope_scaling(self.rope_scaling))
    self._resolve_gemma3()

  def _resolve_gemma3(self):
    gemma_only = dict(sliding_window=None, layer_types=None, rope_local_theta=10000.0,
                      query_pre_attn_scalar=None)
    if self.arch != "gemma3":
      changed = [k for k, v in gemma_only.items() if getattr(self, k) != v]
      if changed:
        raise ValueError(f"{changed} only apply to arch='gemma3', got arch={self.arch!r}")
      return
    if self.sliding_window is not None and int(self.sliding_window) <= 0:
      raise ValueError(f"sliding_window must be positive, got {self.sliding_window}")
    if self.layer_types is None:
      types = ["full_attention"] * self.num_layers
      if self.sliding_window is not None:
        types = ["sliding_attention" if (i + 1) % GEMMA3_SLIDING_PATTERN else "full_attention"
                 for i in range(self.num_layers)]
      object.__setattr__(self, "layer_types", tuple(types))
    object.__setattr__(self, "layer_types", tuple(self.layer_types))
    if len(self.layer_types) != self.num_layers or set(self.layer_types) - set(LAYER_TYPES):
      raise ValueError(f"layer_types must give one of {LAYER_TYPES} per layer "
                       f"({self.num_layers}), got {self.layer_types}")
    if "sliding_attention" in self.layer_types and self.sliding_window is None:
      raise ValueError("sliding_attention layers need a sliding_window")
    if self.query_pre_attn_scalar is None:
      object.__setattr__(self, "query_pre_attn_scalar", float(self.head_dim))
    if self.query_pre_attn_scalar <= 0 or self.rope_local_theta <= 0:
      raise ValueError("query_pre_attn_scalar and rope_local_theta must be positive")

  def layer_window(self, i: int) -> int | None:
    """The sliding window of layer i (None: the layer attends to every earlier position)."""
    if self.layer_types is not None and self.layer_types[i] == "sliding_attention":
      return int(self.sliding_window)
    return None

  def layer_rope(self, i: int) -> tuple[float, tuple | None]:
    """(theta, scaling) of layer i's RoPE: Gemma 3's sliding layers have their own base and no
    scaling."""
    if self.layer_window(i) is not None:
      return float(self.rope_local_theta), None
    return float(self.rope_theta), self.rope_scaling

  @property
  def attn_scale(self) -> float:
    """The factor on q.k attention scores."""
    scalar = self.head_dim if self.query_pre_attn_scalar is None else self.query_pre_attn_scalar
    return float(scalar) ** -0.5
  @property
  def num_groups(self) -> int:
    """Query heads per key/value head."""
    return self.num_heads // self.num_kv_heads

  @property
  def rope_scaling_dict(self) -> dict | None:
    return None if self.rope_scaling is None else dict(self.rope_scaling)

  @property
  def activation_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def weight_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.param_dtype)

  def replace(self, **kw) -> ModelConfig:
    """A copy with fields replaced. Derived defaults (head_dim, d_ff) that were not set
    explicitly are recomputed when the sizes they derive from change."""
    if "d_model" in kw or "num_heads" in kw:
      if "head_dim" not in kw and self.head_dim == self.d_model // self.num_heads:
        kw["head_dim"] = None
    if "d_model" in kw or "arch" in kw:
      default_ff = 4 * self.d_model if self.arch == "gpt2" else _swiglu_width(self.d_model)
      if "d_ff" not in kw and self.d_ff == default_ff:
        kw["d_ff"] = None
    if "num_heads" in kw and "num_kv_heads" not in kw and self.num_kv_heads == self.num_heads:
      kw["num_kv_heads"] = None
    if self.arch == "gemma3":
      if ("num_layers" in kw or "sliding_window" in kw) and "layer_types" not in kw:
        default = dataclasses.replace(self, layer_types=None).layer_types
        if self.layer_types == default:
          kw["layer_types"] = None
      if "query_pre_attn_scalar" not in kw and self.query_pre_attn_scalar == self.head_dim:
        kw["query_pre_attn_scalar"] = None
    return dataclasses.replace(self, **kw)


ROPE_SCALING_KEYS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor",
               "original_max_position_embeddings"),
}


def _freeze_rope_scaling(scaling) -> tuple[tuple[str, float | int | str], ...] | None:
  """A dict (or the pairs of one, e.g. after a JSON round trip) as sorted (key, value) pairs;
  'default' scaling is None. Unsupported types are an error here, not a silent wrong model."""
  d = dict(scaling)
  if "type" in d and "rope_type" not in d:  # the older Hugging Face spelling
    d["rope_type"] = d.pop("type")
  d.pop("type", None)
  kind = d.get("rope_type", "default")
  if kind == "default":
    return None
  if kind not in ROPE_SCALING_KEYS:
    raise ValueError(f"Unsupported rope_scaling type {kind!r} (in {scaling!r}); supported: "
                     f"{sorted(ROPE_SCALING_KEYS)} and 'default'")
  missing = [k for k in ROPE_SCALING_KEYS[kind] if k not in d]
  if missing:
    raise ValueError(f"rope_scaling {scaling!r} lacks {missing}")
  # Keys that change the maths but are not implemented must not be dropped silently.
  unknown = set(d) - set(ROPE_SCALING_KEYS[kind]) - {"rope_type"}
  if unknown:
    raise ValueError(f"Unsupported rope_scaling keys {sorted(unknown)} in {scaling!r}")
  if float(d["factor"]) <= 0:
    raise ValueError(f"rope_scaling factor must be positive, got {d['factor']}")
  if kind == "llama3" and not float(d["high_freq_factor"]) > float(d["low_freq_factor"]):
    raise ValueError(f"llama3 rope_scaling needs high_freq_factor > low_freq_factor: {d}")
  return tuple(sorted((k, v if k == "rope_type" else float(v)) for k, v in d.items()))


def _swiglu_width(d_model: int) -> int:
  return int(math.ceil(8 * d_model / 3 / 16) * 16)

