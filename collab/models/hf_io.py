"""Hugging Face Llama / Qwen2 / Gemma 3 checkpoints <-> the project's pure Flax models.

    params, cfg = load_hf("path/to/Qwen2.5-0.5B")        # config.json + *.safetensors
    save_hf("out/", params, cfg)                           # loadable by transformers again

A model directory holds `config.json` and either `model.safetensors` or shards listed in
`model.safetensors.index.json`. Supported: model_type 'llama' (Llama 2/3/3.1/3.2, incl.
grouped-query attention, tied embeddings, an explicit head_dim, 'linear' and 'llama3' RoPE
scaling), 'qwen2' (Qwen2/2.5: biases on q/k/v) and 'gemma3_text' (Gemma 3 text models, e.g.
gemma-3-270m and gemma-3-1b: arch 'gemma3', sliding windows and per-layer-type RoPE, linear
RoPE scaling on the global layers). Anything that would change the maths and is not implemented
(other RoPE types, Qwen2 sliding windows, o_proj or MLP biases, other activations, logit
soft-capping) is an error, never silently dropped.

Weights map with a flat renaming (transformer.py names its params after HF): torch Linear
weights are (out, in), Flax Dense kernels (in, out), so every projection is transposed.
Safetensors are read and written here with numpy (memory-mapped, bfloat16 via ml_dtypes), so
importing needs neither torch nor the `safetensors` package.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable, Mapping

import ml_dtypes
import numpy as np

from collab import errors
from collab.models.config import ModelConfig

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
               "gemma3_text": "Gemma3ForCausalLM"}

_ST_DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32), "I16": np.dtype(np.int16), "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16",
                 "torch.float32": "float32", "torch.bfloat16": "bfloat16",
                 "torch.float16": "float16", "float": "float32", "half": "float16"}
# Buffers some older checkpoints carry; recomputed from the config, never weights.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")


class HFImportError(errors.UserError, ValueError):
  """A Hugging Face checkpoint this importer cannot represent exactly."""


# ---------------------------------------------------------------------------- safetensors



def set_leaf(params: dict, path: tuple[str, ...], value) -> None:
  """params[path[0]][path[1]]...[path[-1]] = value, creating the dicts on the way."""
  node = params
  for key in path[:-1]:
    node = node.setdefault(key, {})
  node[path[-1]] = value

def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one .safetensors file, memory-mapped (read-only views, no copy).

  HFImportError, naming the file (and the tensor), for a truncated or malformed file."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    if size < 8 or 8 + n > size:
      raise HFImportError(f"{path}: truncated safetensors file ({size} bytes; its header "
                          f"alone would need {8 + n})")
    try:
      header = json.loads(f.read(n))
    except ValueError as err:
      raise HFImportError(f"{path}: unreadable safetensors header ({err})") from None
  if not isinstance(header, dict):
    raise HFImportError(f"{path}: unreadable safetensors header (not a JSON object)")
  header.pop("__metadata__", None)
  start = 8 + n
  buf = np.memmap(path, dtype=np.uint8, mode="r") if header else np.zeros(0, np.uint8)
  out = {}
  for name, info in header.items():
    if info["dtype"] not in _ST_DTYPES:
      raise HFImportError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
    b, e = info["data_offsets"]
    dtype = _ST_DTYPES[info["dtype"]]
    shape = tuple(info["shape"])
    need = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if e - b != need:
      raise HFImportError(f"{path}: tensor {name} of shape {shape} and dtype {info['dtype']} "
                          f"needs {need} bytes, its header gives it {e - b}")
    if start + e > size:
      raise HFImportError(f"{path}: truncated: tensor {name} of shape {shape} needs bytes "
                          f"{start + b}..{start + e} of the file, which has {size} bytes")
    out[name] = buf[start + b:start + e].view(dtype).reshape(shape)
  return out


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray]) -> None:
  """Writes tensors in the safetensors format (format metadata 'pt', as transformers wants)."""
  header, offset, arrays = {}, 0, []
  for name in sorted(tensors):
    a = np.ascontiguousarray(tensors[name])
    if a.dtype not in _ST_NAMES:
      raise ValueError(f"{name}: dtype {a.dtype} cannot be written to safetensors")
    header[name] = {"dtype": _ST_NAMES[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
    arrays.append(a)
  header["__metadata__"] = {"format": "pt"}
  head = json.dumps(header, separators=(",", ":")).encode()
  head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
  with open(path, "wb") as f:
    f.write(len(head).to_bytes(8, "little"))
    f.write(head)
    for a in arrays:
      f.write(a.tobytes())


def read_state_dict(model_dir: str) -> dict[str, np.ndarray]:
  """The tensors of a model directory: one model.safetensors, or the shards of its index."""
  index = os.path.join(model_dir, INDEX)
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
  elif os.path.exists(os.path.join(model_dir, WEIGHTS)):
    files = [WEIGHTS]
  else:
    raise HFImportError(f"No {WEIGHTS} or {INDEX} in {model_dir} (only safetensors checkpoints "
                        "are supported; convert .bin files with transformers first)")
  out = {}
  for name in files:
    out.update(read_safetensors(os.path.join(model_dir, name)))
  return out


# --------------------------------------------------------------------------------- config


def _rope(hf: Mapping[str, Any]) -> tuple[float, dict | None]:
  """(theta, scaling) from either spelling: top-level rope_theta/rope_scaling (transformers
  4.x and the published checkpoints) or rope_parameters (transformers 5)."""
  params = dict(hf.get("rope_parameters") or {})
  theta = hf.get("rope_theta", params.pop("rope_theta", 10000.0))
  params.pop("rope_theta", None)
  return float(theta), _rope_scaling(hf.get("rope_scaling") or params or None)


def _gemma3_rope(hf: Mapping[str, Any]) -> tuple[float, dict | None, float]:
  """(global theta, global scaling, local theta) of a Gemma 3 config: rope_parameters per layer
  type (transformers 5), or rope_theta, rope_scaling and rope_local_base_freq (4.x)."""
  params = dict(hf.get("rope_parameters") or {})
  if "full_attention" in params or "sliding_attention" in params:
    full = dict(params.get("full_attention") or {})
    local = dict(params.get("sliding_attention") or {})
    theta = float(full.pop("rope_theta", 1_000_000.0))
    local_theta = float(local.pop("rope_theta", 10_000.0))
    if _rope_scaling(local or None) is not None:
      raise HFImportError(f"RoPE scaling on sliding layers is not supported: {local}")
    return theta, _rope_scaling(full or None), local_theta
  theta = float(hf.get("rope_theta", params.pop("rope_theta", 1_000_000.0)))
  params.pop("rope_theta", None)
  return (theta, _rope_scaling(hf.get("rope_scaling") or params or None),
          float(hf.get("rope_local_base_freq", 10_000.0)))


def _rope_scaling(scaling: Mapping[str, Any] | None) -> dict | None:
  """A RoPE scaling dict reduced to the keys that enter the maths (None: default RoPE);
  unsupported types are errors."""
  if scaling:
    scaling = dict(scaling)
    if float(scaling.pop("partial_rotary_factor", 1.0)) != 1.0:
      raise HFImportError(f"partial_rotary_factor != 1 is not supported: {scaling}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
      scaling = None
    elif kind == "llama3":
      # Only these four keys enter the maths; drop informational extras.
      scaling = {k: scaling[k] for k in ("rope_type", "factor", "low_freq_factor",
                                         "high_freq_factor", "original_max_position_embeddings")
                 if k in scaling} | {"rope_type": "llama3"}
    elif kind == "linear":
      scaling = {"rope_type": "linear", "factor": scaling["factor"]}
    else:
      raise HFImportError(f"Unsupported RoPE scaling {kind!r} ({scaling}); supported: "
                          "'default', 'linear', 'llama3'")
  return scaling or None


def config_from_hf(hf: Mapping[str, Any], *, dtype: str | None = None,
                   param_dtype: str | None = None) -> ModelConfig:
  """ModelConfig of a Hugging Face config.json dict (dtypes default to the checkpoint's)."""
  model_type = hf.get("model_type")
  if model_type == "gemma3":
    raise HFImportError("model_type 'gemma3' is the multimodal Gemma 3 (weights under "
                        "language_model.*); only text checkpoints ('gemma3_text') are supported")
  if model_type not in MODEL_TYPES:
    raise HFImportError(f"Unsupported model_type {model_type!r}; supported: {sorted(MODEL_TYPES)}")
  if model_type == "gemma3_text":
    return _gemma3_config(hf, dtype=dtype, param_dtype=param_dtype)
  if hf.get("hidden_act", "silu") != "silu":
    raise HFImportError(f"Unsupported hidden_act {hf['hidden_act']!r} (SwiGLU needs 'silu')")
  if hf.get("mlp_bias"):
    raise HFImportError("mlp_bias=True is not supported")
  if model_type == "llama" and hf.get("attention_bias"):
    raise HFImportError("Llama attention_bias=True (biases on q/k/v and o_proj) is not supported")
  if model_type == "qwen2":
    if hf.get("use_sliding_window"):
      raise HFImportError("Qwen2 use_sliding_window=True is not supported (full attention only)")
    if any(t != "full_attention" for t in hf.get("layer_types") or ()):
      raise HFImportError(f"Only full-attention layers are supported: {hf['layer_types']}")
  theta, scaling = _rope(hf)
  ckpt_dtype = _ckpt_dtype(hf)
  heads = int(hf["num_attention_heads"])
  return ModelConfig(
      arch="llama", vocab_size=int(hf["vocab_size"]), d_model=int(hf["hidden_size"]),
      num_layers=int(hf["num_hidden_layers"]), num_heads=heads,
      num_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or hf["hidden_size"] // heads),
      d_ff=int(hf["intermediate_size"]), max_len=int(hf.get("max_position_embeddings", 2048)),
      rope_theta=theta, rope_scaling=scaling, norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
      qkv_bias=model_type == "qwen2", dtype=dtype or ckpt_dtype,
      param_dtype=param_dtype or ckpt_dtype)


def _ckpt_dtype(hf: Mapping[str, Any]) -> str:
  return _TORCH_DTYPES.get(str(hf.get("dtype") or hf.get("torch_dtype") or "float32"), "float32")


def _gemma3_config(hf: Mapping[str, Any], *, dtype: str | None,
                   param_dtype: str | None) -> ModelConfig:
  act = hf.get("hidden_activation", hf.get("hidden_act", "gelu_pytorch_tanh"))
  if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
    raise HFImportError(f"Unsupported Gemma 3 activation {act!r} (GeGLU needs tanh GELU)")
  for key in ("final_logit_softcapping", "attn_logit_softcapping"):
    if hf.get(key) is not None:
      raise HFImportError(f"{key}={hf[key]} is not supported")
  if hf.get("attention_bias"):
    raise HFImportError("Gemma 3 attention_bias=True is not supported")
  if hf.get("use_bidirectional_attention"):
    raise HFImportError("use_bidirectional_attention=True is not supported (causal only)")
  heads, layers = int(hf["num_attention_heads"]), int(hf["num_hidden_layers"])
  layer_types = hf.get("layer_types")
  if layer_types is None:  # the older spelling: every `pattern`-th layer is global
    pattern = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
    layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                   for i in range(layers)]
  theta, scaling, local_theta = _gemma3_rope(hf)
  ckpt_dtype = _ckpt_dtype(hf)
  return ModelConfig(
      arch="gemma3", vocab_size=int(hf["vocab_size"]), d_model=int(hf["hidden_size"]),
      num_layers=layers, num_heads=heads,
      num_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or 256), d_ff=int(hf["intermediate_size"]),
      max_len=int(hf.get("max_position_embeddings", 131072)), rope_theta=theta,
      rope_scaling=scaling, rope_local_theta=local_theta,
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
      sliding_window=(int(hf["sliding_window"]) if "sliding_attention" in layer_types
                      else None),
      layer_types=tuple(layer_types),
      query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar", 256)),
      dtype=dtype or ckpt_dtype, param_dtype=param_dtype or ckpt_dtype)


def _gemma3_config_dict(cfg: ModelConfig) -> dict[str, Any]:
  """config.json of a gemma3 cfg (Gemma3ForCausalLM), in the 4.x spelling 5.x reads too."""
  return {
      "architectures": [MODEL_TYPES["gemma3_text"]], "model_type": "gemma3_text",
      "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
      "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
      "head_dim": cfg.head_dim, "hidden_activation": "gelu_pytorch_tanh",
      "max_position_embeddings": cfg.max_len, "rms_norm_eps": cfg.norm_eps,
      "rope_theta": cfg.rope_theta, "rope_local_base_freq": cfg.rope_local_theta,
      "rope_scaling": cfg.rope_scaling_dict, "sliding_window": cfg.sliding_window or 4096,
      "layer_types": list(cfg.layer_types),
      "query_pre_attn_scalar": (int(cfg.query_pre_attn_scalar)  # transformers wants an int
                                if float(cfg.query_pre_attn_scalar).is_integer()
                                else cfg.query_pre_attn_scalar),
      "final_logit_softcapping": None, "attn_logit_softcapping": None,
      "attention_bias": False, "tie_word_embeddings": cfg.tie_embeddings,
      "torch_dtype": cfg.param_dtype, "attention_dropout": 0.0, "use_cache": True,
  }


def hf_config_dict(cfg: ModelConfig) -> dict[str, Any]:
  """config.json of cfg: Qwen2ForCausalLM when it has q/k/v biases, else LlamaForCausalLM.

  RoPE is written with the top-level rope_theta/rope_scaling keys that both transformers 4.x
  and 5.x read."""
  if cfg.arch == "gemma3":
    return _gemma3_config_dict(cfg)
  if cfg.arch != "llama":
    raise ValueError(f"Only llama-arch and gemma3 models export to Hugging Face, got "
                     f"arch={cfg.arch!r}")
  model_type = "qwen2" if cfg.qkv_bias else "llama"
  scaling = cfg.rope_scaling_dict
  if scaling and "original_max_position_embeddings" in scaling:
    scaling["original_max_position_embeddings"] = int(scaling["original_max_position_embeddings"])
  out = {
      "architectures": [MODEL_TYPES[model_type]], "model_type": model_type,
      "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
      "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
      "head_dim": cfg.head_dim, "hidden_act": "silu",
      "max_position_embeddings": cfg.max_len, "rms_norm_eps": cfg.norm_eps,
      "rope_theta": cfg.rope_theta, "rope_scaling": scaling,
      "tie_word_embeddings": cfg.tie_embeddings, "torch_dtype": cfg.param_dtype,
      "attention_dropout": 0.0, "use_cache": True,
  }
  if model_type == "llama":
    out.update(attention_bias=False, mlp_bias=False)
  else:
    out.update(use_sliding_window=False, sliding_window=None)
  return out


def load_hf_config(model_dir: str, **dtypes) -> ModelConfig:
  """ModelConfig of a model directory's config.json (no weights read)."""
  with open(os.path.join(model_dir, CONFIG)) as f:
    return config_from_hf(json.load(f), **dtypes)


# -------------------------------------------------------------------------------- weights


def _names(cfg: ModelConfig) -> Iterable[tuple[tuple[str, ...], str, bool]]:
  """(our param path, HF tensor name, transpose) for every parameter of cfg."""
  yield ("embed", "embedding"), "model.embed_tokens.weight", False
  norms = ("input_layernorm", "post_attention_layernorm")
  if cfg.arch == "gemma3":
    norms += ("pre_feedforward_layernorm", "post_feedforward_layernorm")
  for i in range(cfg.num_layers):
    ours, hf = f"layer_{i}", f"model.layers.{i}"
    for norm in norms:
      yield (ours, norm, "scale"), f"{hf}.{norm}.weight", False
    if cfg.arch == "gemma3":
      for norm in ("q_norm", "k_norm"):
        yield (ours, "self_attn", norm, "scale"), f"{hf}.self_attn.{norm}.weight", False
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
      yield (ours, "self_attn", proj, "kernel"), f"{hf}.self_attn.{proj}.weight", True
      if cfg.qkv_bias and proj != "o_proj":
        yield (ours, "self_attn", proj, "bias"), f"{hf}.self_attn.{proj}.bias", False
    for proj in ("gate_proj", "up_proj", "down_proj"):
      yield (ours, "mlp", proj, "kernel"), f"{hf}.mlp.{proj}.weight", True
  yield ("final_norm", "scale"), "model.norm.weight", False
  if not cfg.tie_embeddings:
    yield ("lm_head", "kernel"), "lm_head.weight", True


def from_hf_state_dict(state: Mapping[str, np.ndarray], cfg: ModelConfig) -> dict[str, Any]:
  """Our params tree (numpy, cfg.param_dtype) of an HF state dict; missing, unexpected or
  misshapen tensors are errors."""
  if cfg.arch not in ("llama", "gemma3"):
    raise ValueError(f"Only llama-arch and gemma3 models import from Hugging Face, got "
                     f"arch={cfg.arch!r}")
  dtype = np.dtype(cfg.weight_dtype)
  params: dict[str, Any] = {}
  used = set()
  expected = _expected_shapes(cfg)
  for path, name, transpose in _names(cfg):
    if name not in state:
      raise HFImportError(f"Checkpoint lacks {name}")
    x = np.asarray(state[name])
    x = x.T if transpose else x
    if x.shape != expected[path]:
      raise HFImportError(f"{name}: shape {x.shape} (after transpose={transpose}) does not "
                          f"match the config's {expected[path]}")
    set_leaf(params, path, x.astype(dtype))
    used.add(name)
  # A tied checkpoint may still carry lm_head.weight (a copy of the embedding).
  extra = sorted(k for k in state if k not in used and not _IGNORED.match(k)
                 and not (cfg.tie_embeddings and k == "lm_head.weight"))
  if extra:
    raise HFImportError(f"Unexpected tensors in the checkpoint: {extra[:8]}"
                        + (f" and {len(extra) - 8} more" if len(extra) > 8 else ""))
  return params


def to_hf_state_dict(params, cfg: ModelConfig, *, tied_lm_head: bool = False
                     ) -> dict[str, np.ndarray]:
  """HF tensor name -> numpy array (torch layout, param dtype). With tied embeddings
  lm_head.weight is left out, as transformers saves it; tied_lm_head=True adds it (a torch
  `load_state_dict(strict=True)` wants it)."""
  if cfg.arch not in ("llama", "gemma3"):
    raise ValueError(f"Only llama-arch and gemma3 models export to Hugging Face, got "
                     f"arch={cfg.arch!r}")
  out = {}
  for path, name, transpose in _names(cfg):
    x = params
    for key in path:
      x = x[key]
    x = np.asarray(x)
    out[name] = np.ascontiguousarray(x.T if transpose else x)
  if cfg.tie_embeddings and tied_lm_head:
    out["lm_head.weight"] = out["model.embed_tokens.weight"]
  return out


def crop_vocab(params, cfg: ModelConfig, vocab_size: int) -> tuple[dict[str, Any], ModelConfig]:
  """Keeps the first vocab_size rows of the embedding (and lm_head columns). Checkpoints pad
  their embedding past the tokenizer (Qwen2.5: 151,936 or 152,064 rows for 151,665 ids); a
  pair cropped to its common width never feeds one model an id the other lacks."""
  if vocab_size > cfg.vocab_size:
    raise ValueError(f"Cannot crop a vocabulary of {cfg.vocab_size} to {vocab_size}")
  params = dict(params, embed={"embedding": params["embed"]["embedding"][:vocab_size]})
  if not cfg.tie_embeddings:
    params["lm_head"] = {"kernel": params["lm_head"]["kernel"][:, :vocab_size]}
  return params, cfg.replace(vocab_size=vocab_size)


def resize_vocab(params, cfg: ModelConfig, vocab_size: int
                 ) -> tuple[dict[str, Any], ModelConfig]:
  """Adds embedding rows (and lm_head columns when untied) up to vocab_size, as transformers'
  `resize_token_embeddings` does: each new row is the mean of the existing rows (transformers
  samples around that mean with 1e-9 times their covariance, i.e. the mean to ~1e-5; here it is
  the mean exactly, so a resize is deterministic). Smaller or equal sizes: see crop_vocab."""
  if vocab_size < cfg.vocab_size:
    raise ValueError(f"Cannot grow a vocabulary of {cfg.vocab_size} to {vocab_size}")
  extra = vocab_size - cfg.vocab_size
  if not extra:
    return params, cfg

  def grow(x, axis):
    x = np.asarray(x)
    mean = x.astype(np.float64).mean(axis=axis, keepdims=True).astype(x.dtype)
    return np.concatenate([x, np.repeat(mean, extra, axis=axis)], axis=axis)

  params = dict(params, embed={"embedding": grow(params["embed"]["embedding"], 0)})
  if not cfg.tie_embeddings:
    params["lm_head"] = {"kernel": grow(params["lm_head"]["kernel"], 1)}
  return params, cfg.replace(vocab_size=vocab_size)


def _expected_shapes(cfg: ModelConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  import jax  # pylint: disable=g-import-not-at-top
  from collab.models import transformer  # pylint: disable=g-import-not-at-top
  shapes = jax.eval_shape(lambda: transformer.init_params(cfg, jax.random.key(0)))
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return {tuple(k.key for k in path): tuple(x.shape) for path, x in flat}


# ----------------------------------------------------------------------------- directories


def load_hf(model_dir: str, *, dtype: str | None = None, param_dtype: str | None = None
            ) -> tuple[dict[str, Any], ModelConfig]:
  """(params, cfg) of a Hugging Face model directory; params are numpy arrays (put them on
  devices, or shard them with collab.models.sharding, as needed)."""
  cfg = load_hf_config(model_dir, dtype=dtype, param_dtype=param_dtype)
  return from_hf_state_dict(read_state_dict(model_dir), cfg), cfg


def save_hf(model_dir: str, params, cfg: ModelConfig, *,
            max_shard_bytes: int = 5 * 10**9) -> None:
  """Writes config.json and safetensors (sharded with an index past max_shard_bytes), the
  layout transformers' from_pretrained reads."""
  os.makedirs(model_dir, exist_ok=True)
  state = to_hf_state_dict(params, cfg)
  with open(os.path.join(model_dir, CONFIG), "w") as f:
    json.dump(hf_config_dict(cfg), f, indent=2, sort_keys=True)
  shards, size = [[]], 0
  for name in sorted(state):
    nbytes = state[name].nbytes
    if shards[-1] and size + nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(name)
    size += nbytes
  if len(shards) == 1:
    write_safetensors(os.path.join(model_dir, WEIGHTS), state)
    return
  weight_map = {}
  for i, names in enumerate(shards):
    file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    write_safetensors(os.path.join(model_dir, file), {n: state[n] for n in names})
    weight_map.update({n: file for n in names})
  total = int(sum(a.nbytes for a in state.values()))
  with open(os.path.join(model_dir, INDEX), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

