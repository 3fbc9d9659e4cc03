"""GGUF files (llama.cpp's format) -> the project's pure Flax models, config and tokenizer.

    params, cfg, tok = load_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")            # float32
    params, cfg, tok = load_gguf("gemma-3-270m-q4_k_m.gguf", dtype="bfloat16")
    tok.chat_template, tok.add_bos                                            # from the metadata

Everything comes from the file: the architecture and hyperparameters from its metadata, the
tokenizer (vocabulary, merges or scores, special ids) and chat template from its `tokenizer.*`
keys (collab.data.gguf_tokenizer), and the weights, dequantized by the `gguf` package (every
type it implements: F32, F16, BF16, Q4_0/1, Q5_0/1, Q8_0, the K-quants, ...) into float32 or
bfloat16.

Supported architectures:
- 'llama' (SmolLM2, Llama 2/3 without llama3 RoPE scaling, Mistral-style): llama.cpp's
  converter permutes the rows of q and k projections (to pair rotary dimensions as interleaved
  halves); the import undoes it, as transformers does.
- 'gemma3' (Gemma 3 text models): llama.cpp stores the zero-centred norms as 1 + w; the import
  subtracts the 1 (in float32, as transformers does) so params follow Hugging Face. What the
  metadata does not say is taken as llama.cpp takes it: every 6th layer global (unless
  `gemma3.attention.sliding_window_pattern` says otherwise), sliding layers with RoPE base
  10,000 (unless `gemma3.rope.freq_base_swa`), attention scaled by 1/sqrt(head_dim) (27B:
  1/sqrt(d_model / heads)).

Any other architecture, a tensor the mapping does not expect or lacks, a tensor type the `gguf`
package cannot dequantize or does not know, a truncated or corrupted file: a GGUFImportError
(a ValueError) naming the file, and the tensor where there is one.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from typing import Any, Iterable, Mapping

import numpy as np

from collab.models.config import ModelConfig

ARCHS = ("llama", "gemma3")


class GGUFImportError(ValueError):
  """A GGUF file this importer cannot read or represent exactly."""


# ---------------------------------------------------------------------------------- reading

# GGUF metadata value types (gguf.GGUFValueType): numpy dtypes of the scalar ones.
_STRING, _ARRAY = 8, 9
_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?",
            10: "<u8", 11: "<i8", 12: "<f8"}
_MAX_DIMS = 4  # GGML_MAX_DIMS


@dataclasses.dataclass(frozen=True)
class GGUFTensor:
  """One tensor's entry: numpy-order shape, ggml type, absolute byte offset and size."""
  name: str
  shape: tuple[int, ...]
  qtype: Any  # gguf.GGMLQuantizationType
  offset: int
  n_bytes: int


@dataclasses.dataclass
class GGUFFile:
  """A parsed GGUF file: its metadata, tensor entries, and the memory-mapped bytes.

  The header is parsed here rather than with gguf.GGUFReader, which builds a numpy array per
  string and took 15 s on Gemma 3's 262,144-token vocabulary (this: well under a second);
  `gguf` still dequantizes."""
  path: str
  version: int
  metadata: dict[str, Any]
  tensors: dict[str, GGUFTensor]
  data: np.ndarray  # uint8 memmap of the whole file

  def dequantize(self, name: str) -> np.ndarray:
    """Tensor `name` as float32, in numpy order (torch layout for projections)."""
    import gguf  # pylint: disable=g-import-not-at-top (only GGUF import needs it)
    t = self.tensors[name]
    rows = int(np.prod(t.shape[:-1], dtype=np.int64))
    raw = self.data[t.offset:t.offset + t.n_bytes].reshape(rows, t.n_bytes // max(rows, 1))
    try:
      x = gguf.dequantize(raw, t.qtype)
    except NotImplementedError:
      raise GGUFImportError(f"{self.path}: tensor {name} has type {t.qtype.name}, which gguf "
                            f"{_gguf_version()} cannot dequantize") from None
    if np.dtype(x.dtype).kind != "f":
      raise GGUFImportError(f"{self.path}: tensor {name} has type {t.qtype.name}, not a "
                            "floating-point or quantized weight type")
    x = np.asarray(x, np.float32).reshape(t.shape)
    if not np.isfinite(x).all():
      raise GGUFImportError(f"{self.path}: tensor {name} holds non-finite values (a corrupted "
                            "file?)")
    return x


class _Cursor:
  """Little-endian reads from a buffer; running past its end raises _Truncated."""

  def __init__(self, buf, pos: int = 0):
    self.buf, self.pos, self.size = buf, pos, len(buf)

  def take(self, n: int) -> bytes:
    if n < 0 or self.pos + n > self.size:
      raise _Truncated(self.pos + n)
    out = bytes(self.buf[self.pos:self.pos + n])
    self.pos += n
    return out

  def scalar(self, fmt: str):
    (v,) = struct.unpack_from(fmt, self.take(struct.calcsize(fmt)))
    return v

  def string(self) -> str:
    return self.take(self.scalar("<Q")).decode("utf-8")

  def value(self, vtype: int, key: str):
    if vtype == _STRING:
      return self.string()
    if vtype in _SCALARS:
      v = np.frombuffer(self.take(np.dtype(_SCALARS[vtype]).itemsize), _SCALARS[vtype])[0]
      # float32 values as their shortest decimal (an eps of 1e-05, not 9.99999974e-06)
      return float(str(v)) if vtype == 6 else v.item()
    if vtype == _ARRAY:
      itype, count = self.scalar("<I"), self.scalar("<Q")
      if itype in _SCALARS:
        dt = np.dtype(_SCALARS[itype])
        return np.frombuffer(self.take(count * dt.itemsize), dt).tolist()
      if count > self.size - self.pos:  # every element takes at least one byte
        raise _Truncated(self.pos + count)
      return [self.value(itype, key) for _ in range(count)]
    raise _Corrupted(f"metadata {key} has unknown value type {vtype}")


class _Truncated(Exception):
  pass


class _Corrupted(Exception):
  pass


def _gguf_version() -> str:
  try:
    from importlib import metadata as importlib_metadata  # pylint: disable=g-import-not-at-top
    return importlib_metadata.version("gguf")
  except Exception:  # pylint: disable=broad-except
    return "(unknown version)"


def open_gguf(path: str) -> GGUFFile:
  """The parsed header of a GGUF file (tensors memory-mapped, nothing dequantized), or a clear
  error naming the file (and tensor) for a missing, truncated or corrupted file or an unknown
  tensor type."""
  import gguf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No GGUF file at {path}")
  size = os.path.getsize(path)
  if size < 24:
    raise GGUFImportError(f"{path}: {size} bytes, too short for a GGUF header (an empty or "
                          "truncated file)")
  data = np.memmap(path, dtype=np.uint8, mode="r")
  cur = _Cursor(memoryview(data))
  magic = cur.take(4)
  if magic != b"GGUF":
    raise GGUFImportError(f"{path}: not a GGUF file (starts with {magic!r}, not b'GGUF')")
  version = cur.scalar("<I")
  if version not in (2, 3):
    raise GGUFImportError(f"{path}: GGUF version {version} is not supported (2, 3; a "
                          "big-endian or corrupted file?)")
  where = "the header"
  try:
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
      key = cur.string()
      where = f"metadata {key}"
      meta[key] = cur.value(cur.scalar("<I"), key)
    infos = []
    for _ in range(n_tensors):
      name = cur.string()
      where = f"tensor {name}"
      n_dims = cur.scalar("<I")
      if n_dims > _MAX_DIMS:
        raise _Corrupted(f"tensor {name} has {n_dims} dimensions")
      dims = [cur.scalar("<Q") for _ in range(n_dims)]
      infos.append((name, dims, cur.scalar("<I"), cur.scalar("<Q")))
  except _Truncated as e:
    raise GGUFImportError(f"{path}: truncated: {where} runs past the end of the file "
                          f"(byte {e.args[0]:,} of {size:,})") from None
  except _Corrupted as e:
    raise GGUFImportError(f"{path}: corrupted header: {e}") from None
  except UnicodeDecodeError:
    raise GGUFImportError(f"{path}: corrupted header: a string after {where} is not "
                          "UTF-8") from None
  align = int(meta.get("general.alignment", 32))
  if align <= 0 or align & (align - 1):
    raise GGUFImportError(f"{path}: general.alignment {align} is not a power of two")
  start = -(-cur.pos // align) * align
  tensors = {}
  for name, dims, raw_type, offset in infos:
    try:
      qtype = gguf.GGMLQuantizationType(raw_type)
    except ValueError:
      raise GGUFImportError(f"{path}: tensor {name} has tensor type {raw_type}, which gguf "
                            f"{_gguf_version()} does not know") from None
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    shape = tuple(int(d) for d in reversed(dims))
    n = int(np.prod(shape, dtype=np.int64))
    if not shape or shape[-1] % block:
      raise GGUFImportError(f"{path}: tensor {name} of type {qtype.name} has shape {shape}: "
                            f"rows are not whole blocks of {block}")
    if name in tensors:
      raise GGUFImportError(f"{path}: tensor {name} appears twice (a corrupted file?)")
    t = GGUFTensor(name, shape, qtype, start + int(offset), n // block * type_size)
    if t.offset + t.n_bytes > size:
      raise GGUFImportError(f"{path}: truncated: tensor {name} ends at byte "
                            f"{t.offset + t.n_bytes:,} but the file has {size:,} bytes")
    tensors[name] = t
  return GGUFFile(path, version, meta, tensors, data)


# --------------------------------------------------------------------------------- config


def config_from_metadata(meta: Mapping[str, Any], tensor_names: Iterable[str], *,
                         path: str = "", dtype: str = "float32") -> ModelConfig:
  """ModelConfig of a GGUF file's metadata (and its tensor names: output.weight present means
  untied embeddings)."""
  where = path or "GGUF file"
  arch = meta.get("general.architecture")
  if arch not in ARCHS:
    raise GGUFImportError(f"{where}: unsupported architecture {arch!r}; supported: {ARCHS}")
  names = set(tensor_names)

  def get(key, default=None, required=False):
    full = f"{arch}.{key}"
    if full not in meta:
      if required:
        raise GGUFImportError(f"{where}: metadata lacks {full}")
      return default
    return meta[full]

  d_model = int(get("embedding_length", required=True))
  heads = int(get("attention.head_count", required=True))
  layers = int(get("block_count", required=True))
  kv_heads = get("attention.head_count_kv", heads)
  if isinstance(kv_heads, list):
    raise GGUFImportError(f"{where}: per-layer head_count_kv {kv_heads} is not supported")
  head_dim = int(get("attention.key_length") or get("rope.dimension_count") or d_model // heads)
  if int(get("attention.value_length", head_dim)) != head_dim:
    raise GGUFImportError(f"{where}: value_length != key_length is not supported")
  vocab = get("vocab_size")
  if vocab is None:
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is None:
      raise GGUFImportError(f"{where}: neither {arch}.vocab_size nor tokenizer.ggml.tokens")
    vocab = len(tokens)
  scaling = None
  kind = get("rope.scaling.type")
  if kind not in (None, "none"):
    if kind != "linear":
      raise GGUFImportError(f"{where}: unsupported RoPE scaling type {kind!r} (supported: "
                            "linear)")
    scaling = {"rope_type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
    if scaling["factor"] == 1.0:
      scaling = None
  if "rope_freqs.weight" in names:
    raise GGUFImportError(f"{where}: tensor rope_freqs.weight (Llama 3.1-style RoPE "
                          "frequency factors) is not supported")
  kw: dict[str, Any] = dict(
      arch=arch, vocab_size=int(vocab), d_model=d_model, num_layers=layers, num_heads=heads,
      num_kv_heads=int(kv_heads), head_dim=head_dim,
      d_ff=int(get("feed_forward_length", required=True)),
      max_len=int(get("context_length", 2048)),
      rope_theta=float(get("rope.freq_base", 10000.0 if arch == "llama" else 1_000_000.0)),
      rope_scaling=scaling, norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
      tie_embeddings="output.weight" not in names, dtype=dtype, param_dtype=dtype)
  if arch == "gemma3":
    window = get("attention.sliding_window")
    pattern = get("attention.sliding_window_pattern", 6)
    if isinstance(pattern, list):  # per layer: True where the layer slides
      types = ["sliding_attention" if p else "full_attention" for p in pattern]
    else:
      types = ["sliding_attention" if (i + 1) % int(pattern) else "full_attention"
               for i in range(layers)]
    if window is None:
      types = ["full_attention"] * layers
    # llama.cpp scales attention by 1/sqrt(head_dim), except for Gemma 3 27B (62 layers).
    scalar = d_model / heads if layers == 62 else head_dim
    kw.update(sliding_window=None if window is None else int(window), layer_types=tuple(types),
              rope_local_theta=float(get("rope.freq_base_swa", 10000.0)),
              query_pre_attn_scalar=float(scalar), norm_eps=float(
                  get("attention.layer_norm_rms_epsilon", 1e-6)))
  try:
    return ModelConfig(**kw)
  except ValueError as e:
    raise GGUFImportError(f"{where}: {e}") from e


# -------------------------------------------------------------------------------- weights


def _names(cfg: ModelConfig) -> Iterable[tuple[tuple[str, ...], str, bool]]:
  """(our param path, GGUF tensor name, transpose) for every parameter of cfg."""
  yield ("embed", "embedding"), "token_embd.weight", False
  gemma = cfg.arch == "gemma3"
  norms = {"attn_norm": "input_layernorm"}
  if gemma:
    norms.update(post_attention_norm="post_attention_layernorm",
                 ffn_norm="pre_feedforward_layernorm", post_ffw_norm="post_feedforward_layernorm")
  else:
    norms["ffn_norm"] = "post_attention_layernorm"
  for i in range(cfg.num_layers):
    ours, blk = f"layer_{i}", f"blk.{i}"
    for theirs, name in norms.items():
      yield (ours, name, "scale"), f"{blk}.{theirs}.weight", False
    for theirs, proj in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"),
                         ("attn_output", "o_proj")):
      yield (ours, "self_attn", proj, "kernel"), f"{blk}.{theirs}.weight", True
    if gemma:
      yield (ours, "self_attn", "q_norm", "scale"), f"{blk}.attn_q_norm.weight", False
      yield (ours, "self_attn", "k_norm", "scale"), f"{blk}.attn_k_norm.weight", False
    for theirs, proj in (("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"),
                         ("ffn_down", "down_proj")):
      yield (ours, "mlp", proj, "kernel"), f"{blk}.{theirs}.weight", True
  yield ("final_norm", "scale"), "output_norm.weight", False
  if not cfg.tie_embeddings:
    yield ("lm_head", "kernel"), "output.weight", True


def unpermute_qk(w_OxI: np.ndarray, n_head: int) -> np.ndarray:
  """Undoes llama.cpp's permutation of a q or k projection (torch layout, out x in): it
  reorders each head's rows from halves [x0..x_{h/2}, y0..] to interleaved pairs."""
  dim = w_OxI.shape[0] // n_head // 2
  return w_OxI.reshape(n_head, dim, 2, *w_OxI.shape[1:]).swapaxes(1, 2).reshape(w_OxI.shape)


def permute_qk(w_OxI: np.ndarray, n_head: int) -> np.ndarray:
  """llama.cpp's permutation (convert_hf_to_gguf.py, LlamaModel.permute): the inverse of
  unpermute_qk, for writing llama GGUF files."""
  return (w_OxI.reshape(n_head, 2, w_OxI.shape[0] // n_head // 2, *w_OxI.shape[1:])
          .swapaxes(1, 2).reshape(w_OxI.shape))


def params_from_file(f: GGUFFile, cfg: ModelConfig) -> dict[str, Any]:
  """Our params tree (numpy, cfg.param_dtype) of a parsed GGUF file."""
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  from collab.models import hf_io  # pylint: disable=g-import-not-at-top (shape helper)
  dtype = np.dtype(ml_dtypes.bfloat16) if cfg.param_dtype == "bfloat16" else np.dtype(
      cfg.param_dtype)
  expected = hf_io._expected_shapes(cfg)  # pylint: disable=protected-access
  params: dict[str, Any] = {}
  used = set()
  for path, name, transpose in _names(cfg):
    if name not in f.tensors:
      raise GGUFImportError(f"{f.path}: the {cfg.arch} file lacks tensor {name}")
    x = f.dequantize(name)
    if cfg.arch == "llama" and name.endswith((".attn_q.weight", ".attn_k.weight")):
      heads = cfg.num_heads if ".attn_q." in name else cfg.num_kv_heads
      if x.ndim != 2 or x.shape[0] % (2 * heads):
        raise GGUFImportError(f"{f.path}: tensor {name} has shape {x.shape}, not {heads} "
                              "heads of even size")
      x = unpermute_qk(x, heads)
    if cfg.arch == "gemma3" and name.endswith("norm.weight"):
      x = x - np.float32(1.0)  # stored as 1 + w
    x = x.T if transpose else x
    if x.shape != expected[path]:
      raise GGUFImportError(f"{f.path}: tensor {name} has shape {x.shape} (after "
                            f"transpose={transpose}), the config wants {expected[path]}")
    hf_io.set_leaf(params, path, np.ascontiguousarray(x.astype(dtype)))
    used.add(name)
  extra = sorted(set(f.tensors) - used)
  if extra:
    raise GGUFImportError(f"{f.path}: unexpected tensors for {cfg.arch}: {extra[:8]}"
                          + (f" and {len(extra) - 8} more" if len(extra) > 8 else ""))
  return params


# ------------------------------------------------------------------------------------ API


def load_gguf_config(path: str, *, dtype: str = "float32") -> ModelConfig:
  """ModelConfig of a GGUF file (metadata only, no tensor read)."""
  f = open_gguf(path)
  return config_from_metadata(f.metadata, f.tensors, path=f.path, dtype=dtype)


def load_gguf(path: str, *, dtype: str = "float32", tokenizer: bool = True
              ) -> tuple[dict[str, Any], ModelConfig, Any]:
  """(params, cfg, tokenizer) of a GGUF file. params are numpy arrays of `dtype` ('float32' or
  'bfloat16'; cfg.dtype and cfg.param_dtype are set to it); tokenizer is a
  collab.data.hf_tokenizer.HFTokenizer with `chat_template` and `add_bos` from the metadata
  (None with tokenizer=False)."""
  if dtype not in ("float32", "bfloat16"):
    raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
  f = open_gguf(path)
  cfg = config_from_metadata(f.metadata, f.tensors, path=f.path, dtype=dtype)
  tok = None
  if tokenizer:
    from collab.data import gguf_tokenizer  # pylint: disable=g-import-not-at-top
    tok = gguf_tokenizer.from_metadata(f.metadata, name=f.path)
  return params_from_file(f, cfg), cfg, tok
