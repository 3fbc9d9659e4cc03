"""GGUF import on tiny files written here with the `gguf` package's writer (no download).

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
import json
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

Q = gguf.GGMLQuantizationType
TOL = 1e-4
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May.",
    "How many clips did Natalia sell altogether in April and May? 48 / 2 = 24; 48 + 24 = 72.",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window.",
    "unicode: café naïve résumé — 日本語のテキスト, emoji 😀🤖, Ελληνικά, русский текст.",
    "def f(x):\n    return x ** 2  # indented code\n\tand a tab",
]


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


# ------------------------------------------------------------------------------ writing


def _k_quant_blocks(rng, qtype, rows, cols):
  """Random bytes as Q4_K / Q6_K blocks, with f16 scales small enough for O(1/sqrt(cols))
  weights (the `gguf` package cannot quantize K-quants, only read them)."""
  block, size = gguf.GGML_QUANT_SIZES[qtype]
  raw = rng.randint(0, 256, size=(rows, cols // block, size)).astype(np.uint8)
  if qtype == Q.Q4_K:  # d, dmin (f16) first
    raw[..., 0:2] = np.frombuffer(np.float16(2e-4).tobytes(), np.uint8)
    raw[..., 2:4] = np.frombuffer(np.float16(1e-4).tobytes(), np.uint8)
  elif qtype == Q.Q6_K:  # d (f16) last
    raw[..., size - 2:] = np.frombuffer(np.float16(3e-5).tobytes(), np.uint8)
  else:
    raise ValueError(qtype)
  return raw.reshape(rows, -1)


def _add(w, rng, name, x, qtype):
  """Adds float32 tensor x (numpy order) as qtype; K-quants get random blocks instead."""
  if qtype == Q.F32:
    w.add_tensor(name, x.astype(np.float32))
  elif qtype in (Q.Q4_K, Q.Q6_K):
    w.add_tensor(name, _k_quant_blocks(rng, qtype, *x.shape), raw_dtype=qtype)
  else:
    w.add_tensor(name, gguf.quants.quantize(x.astype(np.float32), qtype), raw_dtype=qtype)


def _byte_level_vocab():
  """A small byte-level BPE (digits split one by one, as SmolLM2's) with ChatML specials."""
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
      tokenizers.pre_tokenizers.Digits(individual_digits=True),
      tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)])
  trainer = tokenizers.trainers.BpeTrainer(
      vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
      show_progress=False, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(CORPUS * 20, trainer)
  vocab = tok.get_vocab()
  tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
  merges = [" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
  types = [3 if i < 3 else 1 for i in range(len(tokens))]
  return tokens, types, merges


def _sentencepiece_vocab(tmp_dir):
  """A Gemma-style vocabulary: specials, user-defined newline and whitespace runs (stored with
  real spaces, as llama.cpp writes them), 256 byte tokens, then BPE pieces of a SentencePiece
  model trained here, scored by rank."""
  import sentencepiece as spm
  prefix = os.path.join(tmp_dir, "sp")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CORPUS * 20), model_prefix=prefix, vocab_size=420,
      model_type="bpe", byte_fallback=True, character_coverage=1.0, minloglevel=2,
      normalization_rule_name="identity", remove_extra_whitespaces=False,
      add_dummy_prefix=False, split_digits=True, allow_whitespace_only_pieces=True)
  sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
  specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
  user = ["\n", "\n\n", "\n\n\n", "  ", "   ", "\t\t"]
  normal = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
  spelled = {"\u2581" * len(u) if not u.strip(" ") else u for u in user}  # as Gemma spells them
  normal = [p for p in normal if p not in set(specials) | set(user) | spelled]
  tokens = specials + user + [f"<0x{b:02X}>" for b in range(256)] + normal
  types = [3] * len(specials) + [4] * len(user) + [6] * 256 + [1] * len(normal)
  scores = [-1000.0] * (len(specials) + len(user)) + [0.0] * 256 + [-float(i) for i in
                                                                     range(len(normal))]
  return tokens, types, scores


def _write_llama(path, seed=0):
  rng = np.random.RandomState(seed)
  tokens, types, merges = _byte_level_vocab()
  V, D, L, N, K, H, F = len(tokens), 64, 2, 4, 2, 16, 256
  w = gguf.GGUFWriter(path, "llama")
  for key, val in [("block_count", L), ("context_length", 256), ("embedding_length", D),
                   ("feed_forward_length", F), ("attention.head_count", N),
                   ("attention.head_count_kv", K), ("rope.dimension_count", H),
                   ("vocab_size", V)]:
    w.add_uint32(f"llama.{key}", val)
  w.add_float32("llama.rope.freq_base", 100000.0)
  w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
  w.add_string("tokenizer.ggml.model", "gpt2")
  w.add_string("tokenizer.ggml.pre", "smollm")
  w.add_token_list(tokens)
  w.add_token_types(types)
  w.add_token_merges(merges)
  for key, val in [("bos_token_id", 1), ("eos_token_id", 2), ("unknown_token_id", 0),
                   ("padding_token_id", 2)]:
    w.add_uint32(f"tokenizer.ggml.{key}", val)
  w.add_bool("tokenizer.ggml.add_bos_token", False)
  w.add_chat_template(CHATML)

  def rand(*shape):
    return rng.randn(*shape).astype(np.float32) / np.sqrt(shape[-1])

  _add(w, rng, "token_embd.weight", rng.randn(V, D).astype(np.float32), Q.Q8_0)
  _add(w, rng, "output.weight", rand(V, D), Q.BF16)  # untied, unlike SmolLM2: both paths
  _add(w, rng, "output_norm.weight", 1 + 0.2 * rng.randn(D).astype(np.float32), Q.F32)
  for i in range(L):
    b = f"blk.{i}"
    _add(w, rng, f"{b}.attn_norm.weight", 1 + 0.2 * rng.randn(D).astype(np.float32), Q.F32)
    _add(w, rng, f"{b}.ffn_norm.weight", 1 + 0.2 * rng.randn(D).astype(np.float32), Q.F32)
    # llama.cpp's converter permutes q and k rows; the loaders undo it.
    _add(w, rng, f"{b}.attn_q.weight", gguf_io.permute_qk(rand(N * H, D), N), Q.Q4_1)
    _add(w, rng, f"{b}.attn_k.weight", gguf_io.permute_qk(rand(K * H, D), K), Q.Q5_0)
    _add(w, rng, f"{b}.attn_v.weight", rand(K * H, D), Q.Q8_0)
    _add(w, rng, f"{b}.attn_output.weight", rand(D, N * H), Q.Q4_0)
    _add(w, rng, f"{b}.ffn_gate.weight", rand(F, D), Q.Q5_1)
    _add(w, rng, f"{b}.ffn_up.weight", rand(F, D), Q.F16)
    _add(w, rng, f"{b}.ffn_down.weight", rand(D, F), Q.Q4_K if i == 0 else Q.Q6_K)
  _finish(w)


def _write_gemma3(path, tmp_dir, seed=0):
  rng = np.random.RandomState(seed)
  tokens, types, scores = _sentencepiece_vocab(tmp_dir)
  V, D, L, N, K, H, F, W = len(tokens), 64, 6, 2, 1, 32, 256, 8
  w = gguf.GGUFWriter(path, "gemma3")
  for key, val in [("block_count", L), ("context_length", 256), ("embedding_length", D),
                   ("feed_forward_length", F), ("attention.head_count", N),
                   ("attention.head_count_kv", K), ("attention.key_length", H),
                   ("attention.value_length", H), ("attention.sliding_window", W)]:
    w.add_uint32(f"gemma3.{key}", val)
  w.add_float32("gemma3.rope.freq_base", 1000000.0)
  w.add_float32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
  w.add_string("tokenizer.ggml.model", "llama")
  w.add_string("tokenizer.ggml.pre", "default")
  w.add_token_list(tokens)
  w.add_token_scores(scores)
  w.add_token_types(types)
  for key, val in [("bos_token_id", 2), ("eos_token_id", 1), ("unknown_token_id", 3),
                   ("padding_token_id", 0)]:
    w.add_uint32(f"tokenizer.ggml.{key}", val)
  w.add_bool("tokenizer.ggml.add_bos_token", True)
  w.add_bool("tokenizer.ggml.add_space_prefix", False)

  def rand(*shape):
    return rng.randn(*shape).astype(np.float32) / np.sqrt(shape[-1])

  def norm(n):  # llama.cpp stores Gemma's zero-centred norms as 1 + w
    return 1 + 0.2 * rng.randn(n).astype(np.float32)

  _add(w, rng, "token_embd.weight", rand(V, D), Q.Q8_0)
  _add(w, rng, "output_norm.weight", norm(D), Q.F32)
  for i in range(L):
    b = f"blk.{i}"
    for n in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
      _add(w, rng, f"{b}.{n}.weight", norm(D), Q.F32)
    _add(w, rng, f"{b}.attn_q_norm.weight", norm(H), Q.F32)
    _add(w, rng, f"{b}.attn_k_norm.weight", norm(H), Q.F32)
    _add(w, rng, f"{b}.attn_q.weight", rand(N * H, D), Q.Q5_0)
    _add(w, rng, f"{b}.attn_k.weight", rand(K * H, D), Q.Q5_0)
    _add(w, rng, f"{b}.attn_v.weight", rand(K * H, D), Q.Q8_0)
    _add(w, rng, f"{b}.attn_output.weight", rand(D, N * H), Q.Q4_1 if i % 2 else Q.Q8_0)
    _add(w, rng, f"{b}.ffn_gate.weight", rand(F, D), Q.Q5_0)
    _add(w, rng, f"{b}.ffn_up.weight", rand(F, D), Q.Q5_0)
    _add(w, rng, f"{b}.ffn_down.weight", rand(D, F), Q.Q4_K if i % 2 else Q.Q6_K)
  _finish(w)


def _finish(w):
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


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
