"""Gate training and evaluation on imported Hugging Face checkpoints and GSM8K-style JSONL:
tiny random Qwen2-architecture models written with hf_io.save_hf, a byte-level BPE
tokenizer.json beside each, a fixture data set, and the pair config's runlocal settings."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from collab import errors
from collab import evaluate
from collab import export
from collab.data import tokenizer as tokenizer_lib
from collab.models import hf_io
from collab.models import transformer as tfm
from collab.train import gate
from collab import pair as pair_lib
from configs.pairs import qwen2_5

tokenizers = pytest.importorskip("tokenizers")

NAMES = ["Tom", "Ann", "Raj", "Mei", "Ola", "Ben"]
ITEMS = ["apples", "pens", "cards", "books"]


def _problem(i):
  rng = np.random.RandomState(i)
  name, item = NAMES[i % len(NAMES)], ITEMS[i % len(ITEMS)]
  a, b = rng.randint(2, 40, size=2)
  question = f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have?"
  answer = f"{name} has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {item}.\n#### {a + b}"
  return {"question": question, "answer": answer}


def _write_data(path):
  os.makedirs(path)
  for split, (lo, hi) in {"train": (0, 24), "test": (100, 116)}.items():
    with open(os.path.join(path, f"{split}.jsonl"), "w") as f:
      f.writelines(json.dumps(_problem(i)) + "\n" for i in range(lo, hi))
  return path


def _write_tokenizer(path, texts, vocab_size=300):
  """A Qwen2-style byte-level BPE: <|endoftext|> is eos and pad, no bos."""
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  tok.train_from_iterator(texts, tokenizers.trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
    json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "bos_token": None}, f)


def _write_model(path, fields, seed, tok_dir):
  cfg = hf_io.config_from_hf(fields)
  params = tfm.init_params(cfg, jax.random.key(seed))
  hf_io.save_hf(path, jax.device_get(params), cfg)
  for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tok_dir, name), path)
  return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("hfpair")
  data = _write_data(str(root / "gsm8k"))
  texts = [json.loads(l)["question"] + "\n" + json.loads(l)["answer"]
           for l in open(os.path.join(data, "train.jsonl"))]
  os.makedirs(root / "tok")
  _write_tokenizer(str(root / "tok"), texts)
  base = qwen2_5.get_config("runlocal")
  slm_fields = base.models.slm.to_dict()
  # The LLM's embedding is wider than the SLM's, as Qwen2.5-7B's is than 0.5B's.
  llm_fields = dict(base.models.llm.to_dict(), vocab_size=520)
  slm = _write_model(str(root / "slm"), slm_fields, 0, str(root / "tok"))
  llm = _write_model(str(root / "llm"), llm_fields, 1, str(root / "tok"))
  config = qwen2_5.get_config(f"runlocal,slm_dir={slm},llm_dir={llm},data_dir={data}")
  config.models.llm.vocab_size = 520
  config.assets_dir = str(root / "assets")
  # Fewer steps and baselines than runlocal: each policy compiles its own rollout (~20 s).
  config.rl.num_steps = 2
  config.eval.update(every_k=(), fixed_steps=(), random_rates=(), thresholds=())
  return dict(root=root, config=config, texts=texts)


def test_train_and_evaluate_end_to_end(setup):
  config = setup["config"]
  workdir = str(setup["root"] / "gate")
  pair = pair_lib.load_pair(config)
  # Cropped to the common width: a random LLM emits ids past the SLM's 512 rows otherwise.
  assert pair.slm_cfg.qkv_bias and pair.llm_cfg.vocab_size == pair.slm_cfg.vocab_size == 512
  assert pair.llm_params["lm_head"]["kernel"].shape[1] == 512
  assert pair.tokenizer.vocab_size <= pair.slm_cfg.vocab_size
  out = gate.train(config, workdir)
  assert jax.tree.leaves(out["gate_params"])
  assert os.path.exists(os.path.join(workdir, "gate"))
  gate_params, meta = pair_lib.load_gate(workdir)
  tokenizer_lib.check_fingerprint(meta["tokenizer_fingerprint"], pair.tokenizer, where=workdir)
  metrics = evaluate.evaluate(config, pair, gate_params, str(setup["root"] / "eval"))
  assert metrics["num_problems"] == config.eval.num_problems == 16
  assert metrics["split"] == "test"
  assert {"gate", "slm_alone", "llm_alone", "oracle"} <= set(metrics["policies"])
  assert metrics["policies"]["llm_alone"]["calls"]["mean"] > 0
  assert os.path.exists(str(setup["root"] / "eval" / "metrics.json"))

  # The imported pair exports like a generated one and evaluates from the export alone.
  export_dir = export.write_export(config, workdir, str(setup["root"] / "export"))
  config2, pair2, gate2 = export.load_export(export_dir)
  # The LLM's wider embedding was cropped to the SLM's; the export records it.
  assert pair2.vocab == pair.vocab and pair.vocab["LLM"]["rows_cropped"] == 8
  assert pair2.tokenizer.fingerprint == pair.tokenizer.fingerprint
  assert (pair2.slm_cfg, pair2.llm_cfg) == (pair.slm_cfg, pair.llm_cfg)
  for got, want in ((pair2.slm_params, pair.slm_params), (pair2.llm_params, pair.llm_params),
                    (gate2, gate_params)):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      assert g.dtype == w.dtype
      np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
  again = evaluate.evaluate(config2, pair2, gate2, str(setup["root"] / "eval_export"))
  for name, summary in metrics["policies"].items():
    assert {k: v for k, v in again["policies"][name].items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k != "seconds"}, name


def test_pair_with_two_tokenizers_gets_a_handoff(setup, tmp_path):
  """Two tokenizers: a pair whose rollout hands text over (collab/handoff.py;
  tests/test_mixed_pair.py runs one), except with K-token steps, which have no text to cut."""
  config = setup["config"]
  other = str(tmp_path / "llm_other")
  shutil.copytree(config.llm_hf_dir, other)
  _write_tokenizer(other, setup["texts"][::-1] + ["something else entirely"], vocab_size=310)
  config = config.copy_and_resolve_references()
  config.llm_hf_dir = other
  pair = pair_lib.load_pair(config)
  assert pair.llm_tokenizer.fingerprint != pair.tokenizer.fingerprint
  assert pair_lib.make_setup(config, pair).handoff is not None
  config.rollout.granularity = "tokens"
  with pytest.raises(errors.ConfigError, match="granularity"):
    pair_lib.load_pair(config)


def test_checkpoint_must_match_the_pair_config(setup):
  config = setup["config"].copy_and_resolve_references()
  config.models.slm.num_hidden_layers = 3
  with pytest.raises(ValueError, match="num_layers"):
    pair_lib.load_pair(config)
  config = setup["config"].copy_and_resolve_references()
  config.data_dir = ""
  with pytest.raises(ValueError, match="data_dir"):
    pair_lib.load_records(config, pair_lib.load_pair(config), "train", 4)
