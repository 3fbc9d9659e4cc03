"""experiments/compare_gates.py: two settings' gates compared problem by problem, seed with
seed, on the eval files a study writes."""
import json
import os

import pytest

from collab import errors
from experiments import compare_gates


def _write(workdir, setting, seed, correct, calls, name="eval_llm_s.json"):
  run_dir = os.path.join(workdir, f"{setting}__s{seed}")
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, name), "w") as f:
    json.dump({"accuracy": {"mean": sum(correct) / len(correct)}, "calls": {"mean": calls},
               "num_problems": len(correct), "per_problem": {"correct": correct}}, f)


def test_paired_difference_over_shared_seeds(tmp_path):
  workdir = str(tmp_path)
  _write(workdir, "default", 0, [1, 0, 0, 0], 2.0)
  _write(workdir, "default", 1, [1, 1, 0, 0], 2.0)
  _write(workdir, "default+x", 0, [1, 1, 1, 0], 3.0)
  _write(workdir, "default+x", 1, [1, 1, 1, 1], 3.0)
  _write(workdir, "default+x", 2, [0, 0, 0, 0], 9.0)  # no seed 2 of A: left out
  out = compare_gates.compare(workdir, "default", "default+x", "llm_s")
  assert out["seeds"] == [0, 1]
  assert (out["stats_a"]["accuracy"], out["stats_b"]["accuracy"]) == (0.375, 0.875)
  assert out["stats_b"]["calls"] == 3.0
  # Per problem, seed-averaged: A [1, .5, 0, 0], B [1, 1, 1, .5] -> differences [0, .5, 1, .5].
  assert out["b_minus_a"]["mean"] == pytest.approx(0.5)
  assert out["b_minus_a"]["ci95"] > 0
  with pytest.raises(errors.UserError, match="No seed of both"):
    compare_gates.compare(workdir, "default", "missing", "llm_s")


def test_a_price_conditioned_gate_is_compared_at_its_one_evaluated_price(tmp_path):
  workdir = str(tmp_path)
  _write(workdir, "default", 0, [1, 0], 2.0)
  _write(workdir, "priced", 0, [1, 1], 1.5, name="eval_llm_s_price0.1.json")
  _write(workdir, "priced", 0, [0, 0], 1.5, name="eval_other_price0.1.json")  # another LLM
  out = compare_gates.compare(workdir, "default", "priced", "llm_s")
  assert out["b_minus_a"]["mean"] == pytest.approx(0.5)
  _write(workdir, "priced", 0, [0, 0], 0.5, name="eval_llm_s_price1.json")
  with pytest.raises(errors.UserError, match="evals at 2 prices.*--call_rate"):
    compare_gates.compare(workdir, "default", "priced", "llm_s")
  # Both settings priced: each seed's eval at the price calibrated to the share asked.
  _write(workdir, "priced_b", 0, [1, 1], 2.0, name="eval_llm_s_price0.01.json")
  _write(workdir, "priced_b", 0, [0, 1], 1.0, name="eval_llm_s_price0.2.json")
  for setting, price in (("priced", 1.0), ("priced_b", 0.2)):
    with open(os.path.join(workdir, f"{setting}__s0", "calibration_call_rate0.25.json"),
              "w") as f:
      json.dump({"price": price}, f)
  out = compare_gates.compare(workdir, "priced", "priced_b", "llm_s", call_rate=0.25)
  assert (out["stats_a"]["calls"], out["stats_b"]["calls"]) == (0.5, 1.0)
  assert out["b_minus_a"]["mean"] == pytest.approx(0.5)
