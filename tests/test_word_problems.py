"""Word problems as the second task family (collab/data/word_problems.py): step kinds, the
seeded generator coverage, pretraining a tiny recipe on GSM-style JSONL written with fake
generators (only its covered generators' problems, per-kind evaluation), the gap experiment
(experiments/word_problem_gap.py) on it, and the errors for missing data."""
import json
import os

import pytest

import fake_word_problems
from collab import errors
from collab import pair as pair_lib
from collab.data import word_problems
from collab.train import gate as gate_lib
from collab.train import pretrain
from collab.train import recipes
from configs import gate as gate_configs
from experiments import word_problem_gap


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fake_word_problems.write(str(tmp_path_factory.mktemp("wp") / "jsonl"))


def test_step_kinds():
  kind = word_problems.step_kind
  assert kind("answer 12") == "answer"
  assert kind("First count the pens.") == "text"
  assert kind("They have 3+4=7.") == "add"
  assert kind("So 170 - 34 = 136 left") == "sub"
  assert kind("Then 7*3=21 pens, or 3 x 4 or 2×5") == "mul"
  assert kind("Each gets 12/4=3 or 8 ÷ 2") == "div"
  assert kind("In all 2*3+1=7") == "mixed"
  assert kind("a well-known 2-3 day trip") == "text"  # no equation: a range, not arithmetic


def test_covered_generators_are_seeded_and_nested():
  ids = list(range(20)) * 3
  half = word_problems.covered_generators(ids, 0.5, seed=0)
  assert len(half) == 10 and half == word_problems.covered_generators(ids, 0.5, seed=0)
  assert half <= word_problems.covered_generators(ids, 0.75, seed=0)
  assert half != word_problems.covered_generators(ids, 0.5, seed=1)
  assert word_problems.covered_generators(ids, 1.0, seed=3) == set(range(20))


def test_read_split_keeps_generators_and_kinds(data_dir):
  test = word_problems.read_split(data_dir, "test")
  train = word_problems.read_split(data_dir, "train")
  assert len(test) == 8 and len({ex["generator"] for ex in test}) == 1  # the held-out one
  assert test[0]["generator"] not in {ex["generator"] for ex in train}
  assert train[0]["step_kinds"] == ["text", "add", "mul", "answer"]
  assert train[0]["steps"][-1] == f"answer {train[0]['answer']}"
  with pytest.raises(errors.DataError, match="make word-problems"):
    word_problems.read_split(os.path.dirname(data_dir), "train")


def _config(data_dir, tmp_path, coverage=0.5):
  config = recipes.pretrain_config("wp_tiny", runlocal=True, coverage=coverage)
  config.data_dir = data_dir
  config.assets_dir = str(tmp_path / "assets")
  config.eval.num_problems = 12
  config.eval.max_new_tokens = 48
  config.eval.step_max_new_tokens = 16
  return config


def test_training_data_keeps_the_covered_generators_only(data_dir, tmp_path):
  config = _config(data_dir, tmp_path)
  data = pretrain._word_problem_data(config)  # pylint: disable=protected-access
  train_ids = {ex["generator"] for ex in word_problems.read_split(data_dir, "train")}
  covered = word_problems.covered_generators(train_ids, 0.5, config.coverage_seed)
  assert len(covered) == 2 and data.known_mask is None
  assert {ex["generator"] for ex in data.train} == covered
  assert len(data.train) == 60  # the train split's generators take turns: 30 each
  pieces = [data.tokenizer.id_to_piece(i) for i in data.tokenizer.encode("has 120 pens")]
  assert [p for p in pieces if any(c.isdigit() for c in p)] == ["1", "2", "0"]  # digits split


@pytest.fixture(scope="module")
def pretrained(data_dir, tmp_path_factory):
  """(workdir, eval results) of wp_tiny pretrained on the fake generators' problems."""
  root = tmp_path_factory.mktemp("wp_runs")
  workdir = str(root / "pre" / "wp_tiny")
  return workdir, pretrain.train(_config(data_dir, root), workdir)


def test_pretrain_and_gap_on_word_problems(data_dir, pretrained, tmp_path):
  """A tiny recipe pretrains on the JSONL and is evaluated per kind; the gap experiment run
  with the same model as SLM and LLM finds no gap and nothing to fix."""
  workdir, results = pretrained
  assert results["split"] == "validation" and results["num_problems"] == 12
  assert results["step_count/all_steps"] == 48
  assert {k.split("/")[1] for k in results if k.startswith("step_count/")} == {
      "all_steps", "text", "add", "mul", "answer"}
  out = str(tmp_path / "gap")
  word_problem_gap.main([f"--slm={workdir}", f"--llm={workdir}", f"--data_dir={data_dir}",
                         "--num_problems=12", f"--out={out}"])
  with open(os.path.join(out, "gap.json")) as f:
    gap = json.load(f)
  val = gap["splits"]["validation"]
  assert val["all"]["num_problems"] == 12 and gap["slm"]["generators"] == 2
  assert val["slm_trained"]["num_problems"] + val["llm_only"]["num_problems"] == 12
  for split, group in (("validation", "all"), ("test", "all")):
    c = gap["splits"][split][group]
    assert c["final"]["gap"]["mean"] == 0.0 and c["final"]["slm"] == c["final"]["llm"]
    for kind in c["steps"].values():
      assert kind["slm"] == kind["llm"] and kind["llm_fixes"] in (0.0, None)
  assert os.path.exists(os.path.join(out, "gap.png"))
  with open(os.path.join(out, "report.md")) as f:
    assert "test, held-out generators" in f.read()


def test_a_gate_trains_on_a_word_problem_pair(data_dir, pretrained, tmp_path):
  """configs/gate.py with word-problem recipes: problems and prompts from the JSONL in the
  pretraining layout, room for their prompts and lines, and a gate trained through them."""
  workdir, _ = pretrained
  config = gate_configs.get_config("slm=wp_tiny,llm=wp_tiny,runlocal,steps=1")
  assert config.eval.line_kinds.problems == 0 and config.prompt_len == 224
  config.update(data_dir=data_dir, pretrain_dir=os.path.dirname(workdir),
                assets_dir=str(tmp_path / "assets"))
  pair = pair_lib.load_pair(config)
  records = pair_lib.load_records(config, pair, "test", 4)
  assert [r["question"] for r in records] == [
      ex["question"] for ex in word_problems.read_split(data_dir, "test")[:4]]
  batch = pair_lib.make_episodes(config, pair, records)
  tok = pair.tokenizer
  n = batch["prompt_len_B"][0]
  assert batch["prompt_BxP"][0, :n].tolist() == (
      [tok.bos_id] + tok.encode(records[0]["question"]) + [tok.sep_id])
  gate_lib.train(config, str(tmp_path / "gate"))
  with open(tmp_path / "gate" / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows and "accuracy" in rows[-1]


def test_missing_word_problems_are_refused_before_any_work(tmp_path):
  config = _config(str(tmp_path / "nowhere"), tmp_path)
  with pytest.raises(errors.DataError, match="does not exist"):
    pretrain.train(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")
  with pytest.raises(errors.UserError, match="no finished pretraining run"):
    word_problem_gap.main([f"--slm={tmp_path}", f"--llm={tmp_path}"])
