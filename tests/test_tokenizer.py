"""Tokenizer: fixed special ids, exact round trips of the corpus, fingerprints."""
import dataclasses

import numpy as np
import pytest

from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib

CFG = task_lib.TaskConfig(num_train=2000, num_validation=100, num_test=100, private_prob=0.7)


@pytest.fixture(scope="module")
def tok():
  return tokenizer_lib.train_tokenizer(task_lib.corpus_texts(CFG, 2000), vocab_size=512)


def test_special_ids(tok):
  assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
  specials = [tok.sep_id, tok.ask_id, tok.ask_redacted_id, tok.redacted_id, tok.priv_open_id,
              tok.priv_close_id]
  assert specials == list(range(4, 10))
  assert [tok.id_to_piece(i) for i in specials] == list(tokenizer_lib.SPECIAL_TOKENS)
  assert tok.vocab_size <= 512


def test_round_trips_every_split_and_redactions(tok):
  splits = task_lib.generate_splits(CFG)
  texts = [p.text() for s in task_lib.SPLITS for p in splits[s]]
  texts += [task_lib.redacted(t) for t in texts[:200]]
  texts += [p.text() for p in task_lib.generate_split(
      dataclasses.replace(CFG, lsd_first=False, num_train=200), "train")]
  encoded = tok.encode_batch(texts)
  for text, ids in zip(texts, encoded):
    assert tok.decode(ids) == text
    assert ids.count(tok.sep_id) == text.count("\n")
    assert tok.encode(text) == ids
  red = tok.encode(task_lib.redacted(texts[0]))
  assert tok.redacted_id in red and tok.priv_open_id not in red


def test_decode_stops_at_eos_drops_pad_and_bos(tok):
  ids = tok.encode("answer 12\nanswer 3")
  padded = np.array([tok.bos_id] + ids + [tok.eos_id] + ids + [tok.pad_id] * 3)
  assert tok.decode(padded) == "answer 12\nanswer 3"
  assert tok.decode([]) == "" and tok.decode([tok.sep_id]) == "\n"
  # Digits are single pieces, so arithmetic is written digit by digit.
  digit_ids = [i for i in tok.encode("answer 907") if tok.id_to_piece(i).isdigit()]
  assert [tok.id_to_piece(i) for i in digit_ids] == ["9", "0", "7"]


def test_save_load_and_fingerprint(tok, tmp_path):
  path = str(tmp_path / "tok.model")
  tok.save(path)
  loaded = tokenizer_lib.Tokenizer.load(path)
  assert loaded.fingerprint == tok.fingerprint and len(tok.fingerprint) == 64
  assert loaded.encode("buy 3 bako") == tok.encode("buy 3 bako")
  tokenizer_lib.check_fingerprint(tok.fingerprint, loaded, where=path)
  other = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(CFG, 300), vocab_size=200)
  assert other.fingerprint != tok.fingerprint
  with pytest.raises(tokenizer_lib.TokenizerMismatchError) as err:
    tokenizer_lib.check_fingerprint(tok.fingerprint, other, where="/ckpt/step_10")
  msg = str(err.value)
  assert "/ckpt/step_10" in msg and tok.fingerprint in msg and other.fingerprint in msg
  assert isinstance(err.value, ValueError)


def test_rejects_foreign_models():
  import io
  import sentencepiece as spm
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d"] * 10), model_writer=model,
                                 vocab_size=8, minloglevel=2)
  with pytest.raises(ValueError, match="Not a collab tokenizer"):
    tokenizer_lib.Tokenizer.from_bytes(model.getvalue())
