"""Tiny GGUF files written with the `gguf` package's writer, no download: a llama file shaped
like SmolLM2 (byte-level BPE tokenizer with ChatML specials, 'smollm' pre-tokenizer, q/k rows
permuted as llama.cpp's converter permutes them, untied output) and a gemma3 file shaped like
Gemma 3 (SentencePiece-style vocabulary with control, user-defined, whitespace and byte
tokens; norms stored as 1 + w; five sliding layers and a global one), random weights in the
types the real files use. Used by tests/test_gguf.py (parity with transformers) and
tests/test_mixed_pair.py (the two as a pair with two tokenizers). No torch here."""
import json
import os

import gguf
import numpy as np
import tokenizers

from collab.models import gguf_io

Q = gguf.GGMLQuantizationType
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

