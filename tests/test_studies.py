"""Studies: statistics on hand-made cases, and the transfer study's runlocal variant end to
end (gates, baselines, analysis, report, resume) on tiny models. The other studies' runlocal
variants run in tests/e2e/test_studies_e2e.py (`make test-e2e`)."""
import numpy as np
import pytest

from collab.studies import runner
from collab.studies import stats
from studies_shared import config_of as _config, run as _run, shared  # noqa: F401 (a fixture)


def _policy(family, acc, calls):
  return {"family": family, "accuracy": {"mean": acc}, "calls": {"mean": calls}}


def test_trend_detects_a_clear_slope_and_not_noise():
  x = np.repeat([0.1, 0.2, 0.3], 3)
  down = stats.trend(x, 5.0 - 10 * x + np.tile([0.01, -0.01, 0.0], 3))
  assert down["sign"] == -1 and down["slope"] == pytest.approx(-10, abs=0.2)
  flat = stats.trend(x, np.tile([1.0, -1.0, 0.0], 3))
  assert flat["sign"] == 0
  assert stats.trend([1.0, 1.0, 1.0], [1, 2, 3])["sign"] == 0  # no spread in x: no claim


def test_spread_uses_a_t_interval_over_seeds():
  s = stats.spread([0.4, 0.5, 0.6])
  assert s["mean"] == pytest.approx(0.5)
  assert s["ci95"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
  assert stats.spread([0.3])["ci95"] == 0.0


def test_dominance_needs_more_accuracy_at_equal_or_fewer_calls():
  policies = {"slm_alone": _policy("slm_alone", 0.1, 0.0),
              "llm_alone": _policy("llm_alone", 0.5, 6.0),
              "fixed_0": _policy("fixed", 0.2, 1.0),
              "random_0.25": _policy("random", 0.15, 1.5),
              "threshold_-1": _policy("threshold", 0.45, 2.0)}
  d = stats.dominance([{"accuracy": 0.42, "calls": 1.8}], policies)
  assert d["static"] == {"slm_alone": True, "llm_alone": False, "fixed_0": False}
  # Threshold spends 2.0 > 1.8 calls: the best threshold at <= 1.8 calls is SLM alone.
  assert d["curves"]["threshold"][0]["best_baseline"] == "slm_alone"
  assert d["all_curves_on_or_above"]
  d = stats.dominance([{"accuracy": 0.25, "calls": 1.0}, {"accuracy": 0.42, "calls": 1.8},
                       {"accuracy": 0.55, "calls": 5.0}], policies)
  assert d["all_static_beaten"] and d["all_curves_on_or_above"]
  d = stats.dominance([{"accuracy": 0.3, "calls": 2.5}], policies)
  row = d["curves"]["threshold"][0]
  assert row["best_baseline"] == "threshold_-1" and not row["on_or_above"]
  assert not d["all_curves_on_or_above"]


def test_a_seed_under_the_threshold_curve_gets_its_paired_shortfall():
  from collab.studies import pareto
  base = {"slm_alone": dict(_policy("slm_alone", 0.0, 0.0), per_problem={"correct": [0] * 4}),
          "threshold_-1": dict(_policy("threshold", 0.75, 2.0),
                               per_problem={"correct": [1, 1, 1, 0]})}
  s = {"seeds": [0, 1], "accuracy": {"values": [0.5, 1.0]}, "calls": {"values": [2.0, 2.0]},
       "per_problem": {"correct_by_seed": [[1, 0, 1, 0], [1, 1, 1, 1]]}}
  per_seed = stats.dominance(pareto._seed_points({"price=1": s}), base)
  per_seed["points"] = pareto._seed_points({"price=1": s})
  (below,) = pareto._paired_shortfalls({"price=1": s}, per_seed, base)
  assert below["seed"] == 0 and below["baseline"] == "threshold_-1"
  assert below["gain"]["mean"] == pytest.approx(-0.25)  # problem 1: threshold right, gate not
  assert below["gain"]["ci95"] > 0


def test_privacy_check_against_both_references():
  from collab.studies import pareto

  def gate(call, private, acc, exposed, mix, capped=None):
    return {"costs": {"per_call": call, "per_private_token": private}, "baselines_capped": capped,
            "accuracy": {"mean": acc}, "exposed": {"mean": exposed}, "action_mix": mix}
  sets = {  # the cap-1 gate (no privacy cost, less exposure) is not a reference
      "call=0.1": gate(0.1, 0, 0.99, 6.0, {"self": 0.5, "ask": 0.25, "ask_redacted": 0.25}),
      "cap=1": gate(0.1, 0, 0.3, 1.0, {"self": 0.9, "ask": 0.1, "ask_redacted": 0.0}, {}),
      "plain_ask=0.1": gate(0.1, 0, 0.99, 9.0, {"self": 0.5, "ask": 0.5}),
      "privacy=0.05": gate(0.1, 0.05, 0.97, 3.2, {"self": 0.5, "ask": 0.1,
                                                  "ask_redacted": 0.4})}
  (pair,) = pareto._privacy_check(sets)["pairs"]
  assert pair["exposure_ratio"] == pytest.approx(3.2 / 6.0) and not pair["meets_target"]
  assert pair["plain_ask_exposure_ratio"] == pytest.approx(3.2 / 9.0)
  assert pair["meets_target_vs_plain_ask"] and pair["plain_ask_accuracy_drop"] == (
      pytest.approx(0.02))
  assert pair["redacted_share_of_asks"] == pytest.approx(0.8)
  assert pair["reference_redacted_share_of_asks"] == pytest.approx(0.5)
  del sets["plain_ask=0.1"]
  (pair,) = pareto._privacy_check(sets)["pairs"]
  assert "plain_ask_exposure_ratio" not in pair


def test_transfer_study_runlocal(shared):
  result, summary, md, _ = _run(shared, "transfer")
  entry = summary["transfer"]["test_tiny__gpt2_tiny@test_tiny"]
  assert entry["trained_with"] == "gpt2_tiny" and entry["llm"] == "test_tiny"
  assert "direct" in entry and "### Transfer" in md
  # Every baseline of a pair ran through the one compiled rollout, and each was stored.
  (key, base), *_ = result["baselines"].items()
  assert {"slm_alone", "llm_alone", "oracle", "threshold_-0.1"} <= set(base["policies"])
  # Rerunning resumes: nothing is trained or evaluated again, results are identical.
  again = runner.run_study(_config(shared, "transfer"), shared["workdir"])
  assert again["runs"] == result["runs"]


def _policy(family, correct, calls):
  correct, calls = np.asarray(correct, float), np.asarray(calls, float)
  return {"family": family, "accuracy": {"mean": correct.mean()}, "calls": {"mean": calls.mean()},
          "per_problem": {"correct": correct.tolist(), "calls": calls.tolist()}}


def test_headline_rival_is_a_real_hull_mix_at_the_gates_calls():
  from collab.studies import headline
  n = 200
  rng = np.random.default_rng(0)
  policies = {
      "slm_alone": _policy("slm_alone", np.zeros(n), np.zeros(n)),
      # a solves the first 40% of the problems, b all but the first 10%.
      "threshold_a": _policy("threshold", np.arange(n) < 0.4 * n, np.ones(n)),
      "threshold_b": _policy("threshold", np.arange(n) >= 0.1 * n, np.full(n, 3.0)),
      "threshold_worse": _policy("threshold", np.zeros(n), np.full(n, 2.0)),
      "every_2": _policy("every_k", rng.random(n) < 0.6, np.full(n, 2.0))}
  per = {k: p["per_problem"] for k, p in policies.items()}
  name, correct_N = headline.hull_at(policies, per, "threshold", 2.0)
  assert name.startswith("threshold_a~threshold_b@")
  a, b = (np.asarray(per[k]["correct"]) for k in ("threshold_a", "threshold_b"))
  # Each problem's outcome is one of its two points'; about half the problems use each
  # (2 calls), seen where the two differ.
  assert np.all((correct_N == a) | (correct_N == b))
  differ = a != b
  assert abs((correct_N[differ] == b[differ]).mean() - 0.5) < 0.15
  best = headline.best_rival(policies, per, 2.0)
  assert best["family"] == "threshold" and best["accuracy"] > policies["every_2"][
      "accuracy"]["mean"]
  # Past the family's most accurate point the hull is that point; under its cheapest, SLM
  # alone mixed in.
  assert headline.hull_at(policies, per, "threshold", 5.0)[0] == "threshold_b"
  assert headline.hull_at(policies, per, "threshold", 0.5)[0].startswith("slm_alone~threshold_a")
  assert headline.hull_at(policies, per, "router", 1.0) is None
