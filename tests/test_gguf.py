"""GGUF import on tiny files written with the `gguf` package's writer (tests/gguf_files.py, no
download).

A llama file shaped like SmolLM2 (byte-level BPE tokenizer with ChatML specials, 'smollm'
pre-tokenizer, q/k rows permuted as llama.cpp's converter permutes them, untied output) and a
gemma3 file shaped like Gemma 3 (SentencePiece-style vocabulary with control, user-defined,
whitespace and byte tokens; norms stored as 1 + w; five sliding layers and a global one),
with weights in the types the real files use (Q4_0/1, Q5_0/1, Q8_0, Q4_K, Q6_K, F16, BF16,
F32). Both load in transformers (gguf_file=) too: logits equal to float32 tolerance, greedy
tokens equal, tokenizers equal on a few hundred strings. Then the clear errors: missing,
empty, truncated and corrupted files, an unknown architecture, an unknown tensor type.
"""
import functools
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab.data import gguf_tokenizer
from collab.models import decode
from collab.models import gguf_io
from collab.models import transformer as tfm

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers loads GGUF files only with it
tokenizers = pytest.importorskip("tokenizers")
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
torch.set_num_threads(1)

TOL = 1e-4
from gguf_files import CHATML, CORPUS, _write_gemma3, _write_llama  # noqa: E402  (after the skips)


def _strings() -> list[str]:
  """A few hundred strings: words, digits, unicode, whitespace runs, special tokens."""
  rng = np.random.RandomState(0)
  words = " ".join(CORPUS).replace("\n", " ").replace("\t", " ").split(" ")
  pieces = ["12345", "3.14159", "1,000,000", "-7", "2026", "0x1F", "  ", "   ", "\t", "\n",
            "\n\n", " \n ", "\r\n", "é", "ñ", "日本", "😀", "🤖", "Ω", "e\u0301", "﻿", "\u00a0",
            "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "!!", "?",
            "'s", "n't", "..."] + [w for w in words if w]
  out = [s for s in CORPUS] + ["", " ", "  leading", "trailing  ", "a  b   c    d", "\n\nx\n",
                               "1 22 333 4444", "x=12+345", "\t\tindent"]
  while len(out) < 300:
    k = rng.randint(1, 9)
    sep = rng.choice(["", " ", "  ", "\n", " "], size=k)
    out.append("".join(str(sep[i]) + pieces[rng.randint(len(pieces))] for i in range(k)))
  return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  root = tmp_path_factory.mktemp("gguf")
  _write_llama(str(root / "llama.gguf"))
  _write_gemma3(str(root / "gemma3.gguf"), str(root))
  return {"llama": str(root / "llama.gguf"), "gemma3": str(root / "gemma3.gguf")}


@functools.lru_cache(maxsize=None)
def _loaded(path):
  return gguf_io.load_gguf(path)


def _hf_model(path, arch):
  extra = {}
  if arch == "gemma3":
    # transformers leaves query_pre_attn_scalar at its default (256) for GGUF files; llama.cpp
    # scales by 1/sqrt(head_dim), which the import follows.
    extra["query_pre_attn_scalar"] = 32
  return transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32,
      **extra).eval()


# -------------------------------------------------------------------------------- tests


def test_config_and_tokenizer_from_metadata(files):
  params, cfg, tok = _loaded(files["llama"])
  assert (cfg.arch, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads) == (
      "llama", 64, 2, 4, 2)
  assert not cfg.tie_embeddings and cfg.rope_theta == 100000.0 and cfg.norm_eps == 1e-5
  assert tok.chat_template == CHATML and tok.add_bos is False
  assert tok.eos_id == 2 and tok.id_to_piece(tok.eos_id) == "<|im_end|>"
  assert tok.pad_id != tok.eos_id
  params, cfg, tok = _loaded(files["gemma3"])
  assert cfg.arch == "gemma3" and cfg.head_dim == 32 and cfg.sliding_window == 8
  assert cfg.layer_types == ("sliding_attention",) * 5 + ("full_attention",)
  assert cfg.tie_embeddings and cfg.rope_local_theta == 10000.0
  assert cfg.query_pre_attn_scalar == 32
  assert tok.add_bos is True and tok.chat_template is None
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (2, 1, 0) and tok.sep_id == 7  # "\n"
  # Gemma norms are stored as 1 + w; params hold HF's zero-centred w.
  meta_norm = gguf_io.open_gguf(files["gemma3"]).dequantize("blk.0.attn_norm.weight")
  np.testing.assert_allclose(params["layer_0"]["input_layernorm"]["scale"], meta_norm - 1)


def check_tokenizer(tok, path, texts):
  """Our tokenizer against transformers' built from the same GGUF file. For a 'smollm'
  pre-tokenizer transformers splits text with GPT-2's regex alone, while llama.cpp and the
  model's own tokenizer.json split digits one by one first; they differ only on a whitespace
  run before a digit ('  48': ours 'ĠĠ','4','8', transformers 'Ġ','Ġ','4','8'). There the
  reference is transformers' tokenizer given the model's own pre-tokenizer."""
  ref = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                   gguf_file=os.path.basename(path))
  differ = gguf_tokenizer.check_against_transformers(tok, ref, texts)
  if gguf_io.open_gguf(path).metadata.get("tokenizer.ggml.pre") == "smollm":
    assert all(re.search(r"\s\s\d", t) for t in differ), differ[:5]
    pre = tokenizers.pre_tokenizers
    ref.backend_tokenizer.pre_tokenizer = pre.Sequence(
        [pre.Digits(individual_digits=True), pre.ByteLevel(add_prefix_space=False)])
    differ = gguf_tokenizer.check_against_transformers(tok, ref, texts)
  assert differ == []
  return ref


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_tokenizer_matches_transformers(files, arch):
  tok = _loaded(files[arch])[2]
  texts = _strings()
  assert len(texts) >= 300
  ref = check_tokenizer(tok, files[arch], texts)
  one_line = [t for t in texts if "\n" not in t and "<" not in t]
  for t in one_line[:60]:
    assert tok.encode(t) == ref.encode(t, add_special_tokens=False), t
    assert tok.decode(tok.encode(t)) == t, t


def _tokens(V, B, T, seed=0):
  return np.random.RandomState(seed).randint(0, V, size=(B, T)).astype(np.int64)


_apply = jax.jit(tfm.apply, static_argnames="cfg")


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_logits_and_greedy_tokens_match_transformers(files, arch):
  params, cfg, _ = _loaded(files[arch])
  hf = _hf_model(files[arch], arch)
  B, T = 2, 40  # gemma3: five windows long
  tokens = _tokens(cfg.vocab_size, B, T)
  with torch.no_grad():
    ref = hf(torch.from_numpy(tokens)).logits.numpy()
  params = jax.tree.map(jnp.asarray, params)
  pos = tfm.default_positions(jnp.asarray(tokens))
  ours, _, _ = _apply(params, cfg, jnp.asarray(tokens, jnp.int32), pos)
  err = float(np.abs(np.asarray(ours) - ref).max())
  print(f"{arch}: max |logit diff| {err:.2e}, scale {np.abs(ref).max():.2f}")
  assert np.abs(ref).max() > 1.0 and err < TOL

  # Greedy decoding with the KV cache (test_gemma3.py and test_hf_import.py check cached
  # logits position by position).
  P, N = 10, 16
  prompt = _tokens(cfg.vocab_size, B, P, seed=1)
  got, _ = decode.generate(params, cfg, prompt.astype(np.int32), np.full((B,), P),
                           max_new_tokens=N, stop_id=-1, pad_id=0)
  with torch.no_grad():
    out = hf.generate(torch.from_numpy(prompt), attention_mask=torch.ones(B, P),
                      max_new_tokens=N, min_new_tokens=N, do_sample=False, eos_token_id=None,
                      pad_token_id=0)
  np.testing.assert_array_equal(np.asarray(got), out[:, P:].numpy())
  assert len(np.unique(np.asarray(got))) > 3


def test_bfloat16_load(files):
  params, cfg, _ = gguf_io.load_gguf(files["gemma3"], dtype="bfloat16", tokenizer=False)
  assert cfg.dtype == cfg.param_dtype == "bfloat16"
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  want = _loaded(files["gemma3"])[0]["layer_2"]["mlp"]["down_proj"]["kernel"]
  np.testing.assert_array_equal(params["layer_2"]["mlp"]["down_proj"]["kernel"],
                                want.astype(jnp.bfloat16))


def test_permutation_round_trips():
  x = np.arange(6 * 16 * 5, dtype=np.float32).reshape(6 * 16, 5)
  np.testing.assert_array_equal(gguf_io.unpermute_qk(gguf_io.permute_qk(x, 6), 6), x)
  assert not np.array_equal(gguf_io.permute_qk(x, 6), x)


# ------------------------------------------------------------------------------- errors


def _corrupt(src, dst, edit):
  with open(src, "rb") as f:
    data = bytearray(f.read())
  data = edit(data)
  with open(dst, "wb") as f:
    f.write(bytes(data))
  return dst


def test_missing_empty_and_not_gguf_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere.gguf"):
    gguf_io.load_gguf(str(tmp_path / "nowhere.gguf"))
  empty = tmp_path / "empty.gguf"
  empty.write_bytes(b"")
  with pytest.raises(gguf_io.GGUFImportError, match="empty.gguf.*too short"):
    gguf_io.load_gguf(str(empty))
  other = tmp_path / "model.safetensors"
  other.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " * 4)
  with pytest.raises(gguf_io.GGUFImportError, match="model.safetensors.*not a GGUF file"):
    gguf_io.load_gguf(str(other))


def test_truncated_files_name_file_and_tensor(files, tmp_path):
  size = os.path.getsize(files["llama"])
  last = max(gguf_io.open_gguf(files["llama"]).tensors.values(), key=lambda t: t.offset)
  cut = _corrupt(files["llama"], str(tmp_path / "cut.gguf"), lambda d: d[:size - 100])
  with pytest.raises(gguf_io.GGUFImportError, match=f"cut.gguf: truncated: tensor {last.name}"):
    gguf_io.load_gguf(cut)
  head = _corrupt(files["llama"], str(tmp_path / "head.gguf"), lambda d: d[:5000])
  with pytest.raises(gguf_io.GGUFImportError, match=r"head.gguf: truncated: metadata "
                     r"tokenizer\.ggml\.\w+ runs past the end of the file \(byte [\d,]+ of "
                     "5,000\\)"):
    gguf_io.load_gguf(head)


def test_corrupted_files(files, tmp_path):
  f = gguf_io.open_gguf(files["llama"])
  # A flipped version number, then NaN weights in an F32 tensor.
  bad = _corrupt(files["llama"], str(tmp_path / "version.gguf"),
                 lambda d: d[:4] + bytes([77, 0, 0, 0]) + d[8:])
  with pytest.raises(gguf_io.GGUFImportError, match="version.gguf: GGUF version 77"):
    gguf_io.load_gguf(bad)
  t = f.tensors["blk.1.attn_norm.weight"]

  def nan(d):
    d[t.offset:t.offset + 4] = np.float32(np.nan).tobytes()
    return d
  bad = _corrupt(files["llama"], str(tmp_path / "nan.gguf"), nan)
  with pytest.raises(gguf_io.GGUFImportError,
                     match="nan.gguf: tensor blk.1.attn_norm.weight holds non-finite"):
    gguf_io.load_gguf(bad)


def test_unknown_architecture_and_tensor_type(files, tmp_path):
  def arch(d):
    i = d.index(b"llama")
    return d[:i] + b"llamb" + d[i + 5:]
  bad = _corrupt(files["llama"], str(tmp_path / "arch.gguf"), arch)
  with pytest.raises(gguf_io.GGUFImportError, match="arch.gguf: unsupported architecture "
                     "'llamb'"):
    gguf_io.load_gguf(bad)

  # The type id of one tensor's entry set to one gguf does not know.
  name = b"blk.0.attn_v.weight"

  def qtype(d):
    i = d.index(name) + len(name)
    n_dims = int.from_bytes(d[i:i + 4], "little")
    j = i + 4 + 8 * n_dims
    d[j:j + 4] = (1234).to_bytes(4, "little")
    return d
  bad = _corrupt(files["llama"], str(tmp_path / "qtype.gguf"), qtype)
  with pytest.raises(gguf_io.GGUFImportError,
                     match="qtype.gguf: tensor blk.0.attn_v.weight has tensor type 1234"):
    gguf_io.load_gguf(bad)


def test_missing_and_unexpected_tensors(files, tmp_path):
  f = gguf_io.open_gguf(files["gemma3"])
  del f.tensors["blk.3.post_ffw_norm.weight"]
  with pytest.raises(gguf_io.GGUFImportError, match="lacks tensor blk.3.post_ffw_norm.weight"):
    gguf_io.params_from_file(f, gguf_io.config_from_metadata(f.metadata, f.tensors))
  f = gguf_io.open_gguf(files["gemma3"])
  f.tensors["blk.0.extra.weight"] = f.tensors["output_norm.weight"]
  with pytest.raises(gguf_io.GGUFImportError, match="unexpected tensors.*blk.0.extra.weight"):
    gguf_io.params_from_file(f, gguf_io.config_from_metadata(f.metadata, f.tensors))
