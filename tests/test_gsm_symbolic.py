"""GSM-Symbolic JSONL splits (collab/data/gsm_symbolic.py): with fake generators, the splits are
deterministic, draw from disjoint seed ranges, share no question, hold out generators for test
and parse with the GSM8K reader; with the real reasoning-gym wheel (`make gsm-symbolic`; skipped
without it) the same holds for its 85 generators."""
import dataclasses
import json
import random
import sys

import pytest

from collab import errors
from collab.data import gsm_symbolic as gs
from collab.data import reasoning_gym_wheel as rgw
from collab.data import tfds_gsm8k


def fake_generator(gid: int, span: int = 1000):
  """A generator in reasoning-gym's shape: question, answer, metadata.answer_cot ('#### N.0'
  as some real ones write it); `span` distinct questions."""

  def generate(rng: random.Random, difficulty: float = 1.0) -> dict:
    a = rng.randrange(span)
    b = 1 + a % int(9 * difficulty)  # span distinct questions at difficulty 1
    return {"question": f"G{gid}: Ann has {a} apples and buys {b}. How many now?",
            "answer": str(a + b),
            "metadata": {"answer_cot": f"She has {a} + {b} = {a + b} apples.\n#### {a + b}.0"}}

  return generate


def fakes(n: int = 6, span: int = 1000):
  return {gid: fake_generator(gid, span) for gid in range(n)}


def test_splits_are_deterministic_disjoint_and_readable(tmp_path):
  spec = gs.Spec(train=40, validation=10, test=20, seed=3, sealed=15)
  a = gs.build(str(tmp_path / "a"), spec, fakes())
  gs.build(str(tmp_path / "b"), spec, fakes())
  for split in gs.SPLITS:
    assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == \
        (tmp_path / "b" / f"{split}.jsonl").read_bytes()
  questions = [{r["question"] for r in a[s]} for s in gs.SPLITS]
  assert [len(q) for q in questions] == [40, 10, 20, 15]  # no repeat within a split
  assert all(not questions[i] & questions[j] for i in range(4) for j in range(i))
  for split in gs.SPLITS:  # seeds inside the split's own range
    lo = gs.seed_base(3, split)
    assert all(lo <= r["seed"] < lo + gs.SEED_STRIDE for r in a[split])
    examples = tfds_gsm8k.read_jsonl(str(tmp_path / "a" / f"{split}.jsonl"))
    assert [e["answer"] for e in examples] == [r["value"] for r in a[split]]
    # '#### N.0' is written as the generator's answer.
    assert all(r["answer"].endswith(f"#### {r['value']}") for r in a[split])
  # No two (seed, split) pairs share item seeds, for any allowed seed.
  bases = sorted(gs.seed_base(seed, split) for seed in range(gs.SEALED_BLOCK // 3)
                 for split in gs.SPLITS)
  assert all(b - a_ >= gs.SEED_STRIDE for a_, b in zip(bases, bases[1:]))
  # Generators take turns: every one in every split of 10 or more.
  assert all({r["generator"] for r in a[s]} == set(range(6)) for s in gs.SPLITS)
  # Every record says where it came from, and redrawing it gives it back.
  r = a["test"][5]
  assert gs.draw(fake_generator(r["generator"]), r["generator"], r["seed"], 1.0) == r
  info = json.loads((tmp_path / "a" / "info.json").read_text())
  assert info["counts"] == {"train": 40, "validation": 10, "test": 20, "sealed": 15}
  # The sealed split is optional: without it the other splits are the same bytes, and a
  # sealed file left from an earlier build is removed.
  gs.build(str(tmp_path / "a"), dataclasses.replace(spec, sealed=0), fakes())
  assert not (tmp_path / "a" / "sealed.jsonl").exists()
  for split in ("train", "validation", "test"):
    assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == \
        (tmp_path / "b" / f"{split}.jsonl").read_bytes()
  # Another seed draws other problems.
  c = gs.make_splits(fakes(), gs.Spec(train=40, validation=10, test=20, seed=4))
  assert c["test"] != a["test"]


def test_heldout_generators_only_in_test():
  splits = gs.make_splits(fakes(10), gs.Spec(train=30, validation=10, test=12, heldout=3,
                                             sealed=14))
  train = {r["generator"] for r in splits["train"] + splits["validation"]}
  test = {r["generator"] for r in splits["test"]}
  assert len(test) == 3 and len(train) == 7 and not train & test
  # The sealed split is in distribution: fresh problems of the training generators.
  assert {r["generator"] for r in splits["sealed"]} == train
  assert gs.assign_generators(range(10), 0, 3)["test"] == sorted(test)
  assert gs.assign_generators(range(10), 1, 3)["test"] != sorted(test)  # seeded


def test_duplicates_and_failures_are_redrawn_and_exhaustion_is_an_error(tmp_path):
  flaky = fakes(2, span=50)
  calls = {"n": 0}

  def sometimes_fails(rng, difficulty=1.0):
    calls["n"] += 1
    if calls["n"] % 3 == 0:
      raise ValueError("empty range")
    return fake_generator(1, span=50)(rng, difficulty)

  flaky[1] = sometimes_fails
  splits = gs.make_splits(flaky, gs.Spec(train=30, validation=10, test=10))
  assert sum(len(v) for v in splits.values()) == 50
  # 2 generators x 50 questions cannot fill 120 distinct problems.
  with pytest.raises(errors.DataError, match="gave no new question"):
    gs.make_splits(fakes(2, span=50), gs.Spec(train=100, validation=10, test=10))
  # A split that is asked for no problems is written as no file at all.
  gs.build(str(tmp_path), gs.Spec(train=4, validation=0, test=2), fakes())
  assert not (tmp_path / "validation.jsonl").exists()


def test_bad_specs_and_answers():
  with pytest.raises(errors.ConfigError, match="difficulty"):
    gs.Spec(difficulty=0.5).check(10)
  with pytest.raises(errors.ConfigError, match="heldout"):
    gs.Spec(heldout=10).check(10)
  with pytest.raises(errors.ConfigError, match="at least one"):
    gs.Spec(test=0).check(10)
  with pytest.raises(errors.DataError, match="but the answer is"):
    gs.canonical_solution("1 + 1 = 2\n#### 2", "3")
  with pytest.raises(errors.DataError, match="does not end"):
    gs.canonical_solution("1 + 1 = 2", "2")


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    errors.wrap(gs.main)(["--out", str(tmp_path), "--wheel", str(tmp_path / "none.whl")])
  assert exit_info.value.code == errors.EXIT_EXPECTED
  err = capsys.readouterr().err
  assert "no reasoning-gym wheel" in err and "Traceback" not in err


WHEEL = rgw.find()


@pytest.mark.skipif(WHEEL is None, reason=rgw.missing_reason())
def test_real_generators(tmp_path):
  before = {n for n in sys.modules if n.startswith("reasoning_gym")}
  generators = rgw.load_generators(WHEEL)
  assert {n for n in sys.modules if n.startswith("reasoning_gym")} == before
  assert len(generators) == 85 and 32 not in generators  # 32 is in tasks_need_fix
  spec = gs.Spec(train=85, validation=10, test=20, heldout=5, seed=1, sealed=10)
  splits = gs.build(str(tmp_path), spec, generators)
  assert len({r["generator"] for r in splits["train"]}) == 80
  assert len({r["generator"] for r in splits["test"]}) == 5
  assert {r["generator"] for r in splits["sealed"]} <= {r["generator"] for r in splits["train"]}
  for split in gs.SPLITS:
    examples = tfds_gsm8k.read_jsonl(str(tmp_path / f"{split}.jsonl"))
    assert all(len(e["steps"]) >= 2 for e in examples)  # worked lines, then 'answer N'
  tfds_gsm8k.check_source_dir(str(tmp_path))
  again = gs.make_splits(rgw.load_generators(WHEEL), spec)
  assert again == splits


def test_probe_counts_generators_that_finish_fail_or_hang():
  def failing(rng, difficulty=1.0):
    raise ValueError("empty range")

  def hanging(rng, difficulty=1.0):
    while True:
      pass

  generators = {**fakes(2), 7: failing, 9: hanging}
  out = gs.probe(generators, 1.0, seeds=2, timeout_s=0.2)
  assert (out["finish"], out["fail"], out["hang"], out["hung"]) == (2, 1, 1, [9])
  assert out["median_digits_of_largest"] >= 1
