"""Grain pipeline: batch shapes, loss masks, known-fact filtering, exact resumption."""
import numpy as np
import pytest

from collab.data import pipeline
from collab.data import task as task_lib
from collab.data import tfds_task
from collab.data import tokenizer as tokenizer_lib

CFG = task_lib.TaskConfig(num_train=600, num_validation=20, num_test=20)


@pytest.fixture(scope="module")
def tok():
  return tokenizer_lib.train_tokenizer(task_lib.corpus_texts(CFG, 1000), vocab_size=256)


@pytest.fixture(scope="module")
def problems():
  return task_lib.generate_split(CFG, "train")


def test_batches_shapes_and_masks(tok, problems):
  ds = pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=8, seed=0)
  batch = ds[3]
  tokens_BxT, mask_BxT = batch["tokens_BxT"], batch["loss_mask_BxT"]
  assert tokens_BxT.shape == mask_BxT.shape == (8, 128)
  assert tokens_BxT.dtype == np.int32 and mask_BxT.dtype == np.float32
  texts = {p.text(): p for p in problems}
  for tokens_T, mask_T in zip(tokens_BxT, mask_BxT):
    assert tokens_T[0] == tok.bos_id
    n = int((tokens_T != tok.pad_id).sum())
    assert tokens_T[n - 1] == tok.eos_id and (tokens_T[n:] == tok.pad_id).all()
    p = texts[tok.decode(tokens_T[1:])]  # a real problem, whole
    # Mask: 0 on bos, the question and its <sep>; 1 on every solution token through eos.
    q_len = len(tok.encode(p.question))
    assert tokens_T[1 + q_len] == tok.sep_id
    assert (mask_T[:2 + q_len] == 0).all() and (mask_T[2 + q_len:n] == 1).all()
    assert (mask_T[n:] == 0).all()
    assert tok.decode(tokens_T[mask_T > 0]) == "\n".join(p.step_texts)


def test_deterministic_resumable_and_reshuffled_each_epoch(tok, problems):
  make = lambda seed: pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=50,
                                               seed=seed)
  a, b = make(0), make(0)
  for step in (0, 5, 37):
    np.testing.assert_array_equal(a[step]["tokens_BxT"], b[step]["tokens_BxT"])
  assert not np.array_equal(a[0]["tokens_BxT"], make(1)[0]["tokens_BxT"])
  # 600 problems / 50 = 12 batches per epoch: each epoch covers every problem once,
  # in a different order.
  epoch = lambda e: np.concatenate([a[s]["tokens_BxT"] for s in range(12 * e, 12 * e + 12)])
  e0, e1 = epoch(0), epoch(1)
  key = lambda x: sorted(map(bytes, x))
  assert key(e0) == key(e1) and len(set(map(bytes, e0))) == 600
  assert not np.array_equal(e0, e1)


def test_known_mask_filters_unknown_entities(tok, problems):
  world = task_lib.World(CFG)
  known_E = world.known_mask(0.5)
  ds = pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=16, seed=0,
                                known_mask=known_E)
  by_text = {p.text(): p for p in problems}
  expected = {p.text() for p in problems if known_E[list(p.entity_ids)].all()}
  assert 0 < len(expected) < len(problems)
  seen = set()
  for step in range(-(-len(expected) // 16)):
    for tokens_T in ds[step]["tokens_BxT"]:
      text = tok.decode(tokens_T[1:])
      assert known_E[list(by_text[text].entity_ids)].all()
      seen.add(text)
  assert seen == expected  # one epoch covers exactly the known problems
  unfiltered = pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=16, seed=0,
                                        known_mask=known_E, entity_filter=False)
  texts = {tok.decode(t[1:]) for s in range(40) for t in unfiltered[s]["tokens_BxT"]}
  assert texts - expected
  with pytest.raises(ValueError, match="No training examples"):
    pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=16, seed=0,
                             known_mask=np.zeros_like(known_E))


def test_truncation_warns(tok, problems):
  with pytest.warns(UserWarning, match="truncated"):
    ds = pipeline.make_lm_dataset(problems[:10], tok, seq_len=24, batch_size=4, seed=0)
  assert ds[0]["tokens_BxT"].shape == (4, 24)


def test_reads_a_tfds_source(tok, tmp_path):
  source = tfds_task.load_task_source(CFG, str(tmp_path), "validation")
  ds = pipeline.make_lm_dataset(source, tok, seq_len=128, batch_size=20, seed=0)
  texts = {tok.decode(t[1:]) for t in ds[0]["tokens_BxT"]}
  assert texts == {p.text() for p in task_lib.generate_split(CFG, "validation")}


def test_encode_prompts(tok):
  prompts_BxP, lengths_B = pipeline.encode_prompts(tok, ["buy 2 bako ; total ?", "answer 1"],
                                                   pad_to_multiple=16)
  assert prompts_BxP.dtype == np.int32 and prompts_BxP.shape[1] % 16 == 0
  for row, n, text in zip(prompts_BxP, lengths_B, ["buy 2 bako ; total ?", "answer 1"]):
    assert row.tolist()[:n] == [tok.bos_id] + tok.encode(text) + [tok.sep_id]
    assert (row[n:] == tok.pad_id).all()


def test_mask_mode_hides_only_unknown_lookup_lines():
  from collab.data import task as task_lib
  from collab.data import tokenizer as tokenizer_lib
  from collab.data import pipeline as pipeline_lib
  cfg = task_lib.TaskConfig(num_train=300, num_validation=8, num_test=8)
  problems = task_lib.generate_split(cfg, "train")
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 300), vocab_size=256)
  known = task_lib.World(cfg).known_mask(0.5)
  ds = pipeline_lib.make_lm_dataset(problems, tok, seq_len=104, batch_size=len(problems),
                                    seed=0, known_mask=known, unknown_facts="mask")
  assert len(ds[0]["tokens_BxT"]) == len(problems)  # nothing filtered
  tokens, mask, _ = pipeline_lib.tokenize_examples(problems, tok, 104)
  masked = mask.copy()
  n = pipeline_lib.mask_unknown_lookups(problems, tok, masked, known)
  expected = sum(not known[p.entity_ids[k]] for p in problems
                 for k in range(len(p.entity_ids)))
  assert n == expected > 0
  world = task_lib.World(cfg)
  for i, p in enumerate(problems[:50]):
    hidden_ids = [int(t) for t, m, m2 in zip(tokens[i], mask[i], masked[i]) if m and not m2]
    hidden = tok.decode(hidden_ids)
    for e in p.entity_ids:
      assert (f"price {world.names[e]}" in hidden) == (not known[e])
    assert not any(op in hidden for op in ("*", "+", "-", "answer"))


def test_redacted_examples_mask_lines_they_cannot_know():
  from collab.data import task as task_lib
  from collab.data import tokenizer as tokenizer_lib
  from collab.data import pipeline as pipeline_lib
  cfg = task_lib.TaskConfig(num_train=200, num_validation=8, num_test=8, private_prob=1.0)
  problems = task_lib.generate_split(cfg, "train")
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 300), vocab_size=256)
  known = task_lib.World(cfg).known_mask(0.5)
  ds = pipeline_lib.make_lm_dataset(problems, tok, seq_len=104, batch_size=len(problems),
                                    seed=0, known_mask=known, unknown_facts="mask",
                                    redact_prob=0.5)
  batch = ds[0]
  tokens, mask = batch["tokens_BxT"], batch["loss_mask_BxT"]
  has_red = (tokens == tok.redacted_id).any(-1)
  assert 0.3 < has_red.mean() < 0.7
  assert not (tokens == tok.priv_open_id)[has_red].any()
  for row, m in zip(tokens[has_red][:20], mask[has_red][:20]):
    lines = tok.decode([int(t) for t in row if t != tok.pad_id]).split("\n")
    trained = tok.decode([int(t) for t, w in zip(row, m) if w])
    for line in lines[1:]:
      if "<redacted>" in line:
        assert "<redacted>" not in trained
    assert "answer" in trained
