"""HF checkpoint tokenizers behind the project interface: parity with transformers' tokenizers,
special ids, markup, save/load, fingerprints, and the pair mismatch error."""
import json
import os
import shutil

import pytest

from collab.data import episodes as episodes_lib
from collab.data import hf_tokenizer
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab import rollout as rollout_lib

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

LINES = [
    "Natalia sold clips to 48 of her friends in April.",
    "She sold half as many clips in May: 48 / 2 = 24 clips.",
    "buy 3 roni ; have 193 ; left ?",
    "price roni = 33",
    "3 * 33 = 99",
    "  two leading spaces, trailing one ",
    "unicode: café — naïve 😀",
    "answer 292",
]
LLAMA3_SPECIALS = (["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(8)])


def _byte_level(specials, vocab_size=400, seed_lines=LINES):
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  trainer = tokenizers.trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(list(seed_lines) * 20, trainer)
  return tok


def _save_fast(tok, path, **special):
  fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **special)
  fast.save_pretrained(path)
  return path


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("tok")
  out = {}
  # Llama 3 style: bos, eos, a pad piece and reserved special tokens.
  out["llama3"] = _save_fast(_byte_level(LLAMA3_SPECIALS), str(root / "llama3"),
                             bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
  # Qwen2 style: <|endoftext|> is eos and pad, no bos, nothing reserved.
  out["qwen2"] = _save_fast(_byte_level(["<|endoftext|>", "<|im_start|>"]), str(root / "qwen2"),
                            eos_token="<|endoftext|>", pad_token="<|endoftext|>")
  # Llama 2 style: a SentencePiece model file (unk 0, bos 1, eos 2, byte fallback).
  import sentencepiece as spm
  os.makedirs(root / "llama2")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(LINES * 20), model_prefix=str(root / "llama2" / "tokenizer"),
      vocab_size=360, model_type="bpe", byte_fallback=True, character_coverage=1.0,
      unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, minloglevel=2,
      normalization_rule_name="identity", remove_extra_whitespaces=False)  # as Llama 2
  with open(root / "llama2" / "tokenizer_config.json", "w") as f:
    json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>"}, f)
  out["llama2"] = str(root / "llama2")
  return out


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_tokenizer_json_encodes_like_transformers(name, dirs):
  ours = hf_tokenizer.HFTokenizer.from_dir(dirs[name])
  ref = transformers.AutoTokenizer.from_pretrained(dirs[name])
  for line in LINES:
    assert ours.encode(line) == ref.encode(line, add_special_tokens=False), line
  assert ours.encode_batch(LINES[:3]) == [ours.encode(l) for l in LINES[:3]]
  assert [ours.sep_id] == ref.encode("\n", add_special_tokens=False)
  text = "\n".join(LINES)
  ids = ours.encode(text)
  assert ids.count(ours.sep_id) == len(LINES) - 1
  assert ours.decode(ids) == text
  assert ours.decode([ours.bos_id] + ids + [ours.eos_id, ours.pad_id, 5]) == text


def test_sentencepiece_model_encodes_like_transformers(dirs):
  import sentencepiece as spm
  ours = hf_tokenizer.HFTokenizer.from_dir(dirs["llama2"])
  assert ours.kind == "sentencepiece"
  ref = transformers.AutoTokenizer.from_pretrained(dirs["llama2"])
  sp = spm.SentencePieceProcessor(model_file=os.path.join(dirs["llama2"], "tokenizer.model"))
  for line in LINES:
    assert ours.encode(line) == sp.encode(line), line
    assert ours.decode(ours.encode(line)) == line
    # transformers' converted tokenizer differs from SentencePiece on leading spaces.
    if not line.startswith(" "):
      assert ours.encode(line) == ref.encode(line, add_special_tokens=False), line
  assert (ours.unk_id, ours.bos_id, ours.eos_id) == (0, 1, 2)
  assert ours.pad_id == 0  # no pad piece: unk pads, and it differs from eos
  assert ours.id_to_piece(ours.sep_id) == "<0x0A>"


def test_special_ids_and_markup(dirs):
  llama = hf_tokenizer.HFTokenizer.from_dir(dirs["llama3"])
  vocab = tokenizers.Tokenizer.from_file(os.path.join(dirs["llama3"], "tokenizer.json"))
  piece = vocab.token_to_id
  assert llama.bos_id == piece("<|begin_of_text|>") and llama.eos_id == piece("<|end_of_text|>")
  assert llama.pad_id == piece("<|finetune_right_pad_id|>")
  # Markup takes the reserved special tokens in order; the vocabulary does not grow.
  assert [llama.ask_id, llama.ask_redacted_id, llama.redacted_id, llama.priv_open_id,
          llama.priv_close_id] == [piece(f"<|reserved_special_token_{i}|>") for i in range(5)]
  assert llama.vocab_size == vocab.get_vocab_size()

  qwen = hf_tokenizer.HFTokenizer.from_dir(dirs["qwen2"])
  base = tokenizers.Tokenizer.from_file(os.path.join(dirs["qwen2"], "tokenizer.json"))
  eot = base.token_to_id("<|endoftext|>")
  assert qwen.eos_id == eot and qwen.bos_id == eot  # no bos: the document separator
  assert qwen.pad_id != qwen.eos_id  # the rollout needs them apart
  extra = [qwen.pad_id, qwen.ask_id, qwen.ask_redacted_id, qwen.redacted_id,
           qwen.priv_open_id, qwen.priv_close_id]
  n = base.get_vocab_size()
  assert extra == list(range(n, n + 6)) and qwen.vocab_size == n + 6

  for tok in (llama, qwen):
    text = "buy 3 roni ; have <priv>193</priv> ; left ?\n<ask_redacted>price roni = 33"
    ids = tok.encode(text)
    assert tok.priv_open_id in ids and tok.priv_close_id in ids and tok.ask_redacted_id in ids
    assert tok.decode(ids) == text
    redacted = tok.encode(task_lib.redacted("have <priv>193</priv> ; left ?"))
    assert tok.redacted_id in redacted
    hf_tokenizer.check_fits(tok, tok.vocab_size, "model")
    with pytest.raises(ValueError, match="embedding has only"):
      hf_tokenizer.check_fits(tok, tok.vocab_size - 1, "model")


def test_works_with_episodes_and_rollout_specials(dirs):
  tok = hf_tokenizer.HFTokenizer.from_dir(dirs["qwen2"])
  record = {"question": "buy 3 roni ; have <priv>193</priv> ; left ?",
            "steps": ["price roni = 33", "3 * 33 = 99", "answer 292"]}
  ep = episodes_lib.make_episodes([record], tok, prompt_len=48, num_steps=4, step_tokens=16)
  assert ep["prompt_BxP"][0, 0] == tok.bos_id
  assert tok.decode(ep["answer_BxA"][0]) == "answer 292"
  assert (ep["answer_BxA"][0] == tok.eos_id).sum() == 1
  specials = rollout_lib.Specials.from_tokenizer(tok)
  ids = (specials.pad, specials.eos, specials.sep, specials.priv_open, specials.priv_close,
         specials.redacted)
  assert specials.sep == tok.sep_id and len(set(ids)) == len(ids)


def test_save_load_and_fingerprint(dirs, tmp_path):
  tok = hf_tokenizer.HFTokenizer.from_dir(dirs["llama3"])
  path = str(tmp_path / "tok.json")
  tok.save(path)
  again = hf_tokenizer.load_any(path)
  assert isinstance(again, hf_tokenizer.HFTokenizer)
  assert again.fingerprint == tok.fingerprint and again.encode(LINES[1]) == tok.encode(LINES[1])
  tokenizer_lib.check_fingerprint(tok.fingerprint, again, where=path)
  # A copy whose tokenizer.json only differs in padding/truncation settings: same mapping.
  copy = str(tmp_path / "copy")
  shutil.copytree(dirs["llama3"], copy)
  with open(os.path.join(copy, "tokenizer.json")) as f:
    data = json.load(f)
  data["truncation"] = {"direction": "Right", "max_length": 7, "strategy": "LongestFirst",
                        "stride": 0}
  with open(os.path.join(copy, "tokenizer.json"), "w") as f:
    json.dump(data, f)
  assert hf_tokenizer.HFTokenizer.from_dir(copy).fingerprint == tok.fingerprint
  sp = hf_tokenizer.load_any(dirs["llama2"])
  sp_path = str(tmp_path / "sp.json")
  sp.save(sp_path)
  assert hf_tokenizer.load_any(sp_path).fingerprint == sp.fingerprint


def test_pair_with_different_tokenizers_is_a_clear_error(dirs, tmp_path):
  a = hf_tokenizer.HFTokenizer.from_dir(dirs["llama3"])
  hf_tokenizer.check_same_tokenizer(a, hf_tokenizer.HFTokenizer.from_dir(dirs["llama3"]),
                                    "slm", "llm")
  other = _save_fast(_byte_level(LLAMA3_SPECIALS, seed_lines=LINES[::-1] + ["zzz qqq"]),
                     str(tmp_path / "other"), bos_token="<|begin_of_text|>",
                     eos_token="<|end_of_text|>")
  b = hf_tokenizer.HFTokenizer.from_dir(other)
  with pytest.raises(tokenizer_lib.TokenizerMismatchError) as e:
    hf_tokenizer.check_same_tokenizer(a, b, "SLM Llama-3.2-1B", "LLM Llama-3.1-8B")
  msg = str(e.value)
  assert "SLM Llama-3.2-1B" in msg and "LLM Llama-3.1-8B" in msg
  assert dirs["llama3"] in msg and other in msg and "First difference" in msg
  c = hf_tokenizer.load_any(dirs["llama2"])
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="sentencepiece"):
    hf_tokenizer.check_same_tokenizer(a, c, "slm", "llm")


def test_newline_must_be_one_token(tmp_path):
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "[UNK]": 1, "</s>": 2},
                                                        unk_token="[UNK]"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  path = _save_fast(tok, str(tmp_path / "wl"), eos_token="</s>")
  with pytest.raises(ValueError, match="newline"):
    hf_tokenizer.HFTokenizer.from_dir(path)
