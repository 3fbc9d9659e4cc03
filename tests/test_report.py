"""The verdict table that opens REPORT.md (collab/studies/report.py, verdicts.py), on hand-made
summaries with known answers and on the committed results/. No JAX training."""
import json
import os

import pytest

from collab.studies import report
from collab.studies import verdicts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spread(values):
  import numpy as np
  return {"mean": float(np.mean(values)), "ci95": 0.0, "values": list(values)}


def _policy(family, accuracy, calls):
  return {"family": family, "accuracy": {"mean": accuracy, "ci95": 0.03},
          "calls": {"mean": calls, "ci95": 0.0}, "num_problems": 300}


BASELINES = {
    "slm_alone": _policy("slm_alone", 0.1, 0.0),
    "llm_alone": _policy("llm_alone", 1.0, 6.0),
    "every_2": _policy("every_k", 0.2, 3.0),
    "threshold_-0.1": _policy("threshold", 0.9, 2.5),
    "random_0.5": _policy("random", 0.3, 3.0),
}


def _setting(accuracy, calls, exposed=(1.0, 1.0, 1.0), seeds=(0, 1, 2), per_call=0.1,
             privacy=0.0, token=0.0, mix=("self", "ask", "ask_redacted"), gains=None,
             budget_target=None, llm_tokens=(10.0, 10.0, 10.0)):
  acc = sum(accuracy) / len(accuracy)
  return {
      "slm": "slm_s", "llm": "llm_l", "trained_with": "llm_l", "seeds": list(seeds),
      "costs": {"per_call": per_call, "per_llm_token": token, "per_private_token": privacy,
                "per_call_range": [0.01, 0.0]},
      "budget_target": budget_target or {"calls": 0.0, "llm_tokens": 0.0, "mode": "dual"},
      "accuracy": _spread(accuracy), "calls": _spread(calls), "exposed": _spread(exposed),
      "llm_tokens": _spread(llm_tokens), "action_mix": {k: 1 / len(mix) for k in mix},
      "slm_alone": 0.1, "llm_alone": 1.0, "baselines": BASELINES, "baselines_capped": None,
      "gain_vs": gains or {n: {"mean": acc - b["accuracy"]["mean"], "ci95": 0.02}
                           for n, b in BASELINES.items()}}


def _trend(slope, half):
  sign = 1 if slope - half > 0 else -1 if slope + half < 0 else 0
  return {"slope": slope, "ci95": half, "n": 9, "sign": sign}


def _write(results, study, summary):
  os.makedirs(os.path.join(results, study), exist_ok=True)
  with open(os.path.join(results, study, "summary.json"), "w") as f:
    json.dump(summary, f)


@pytest.fixture
def results(tmp_path):
  r = str(tmp_path / "results")
  _write(r, "constraints", {
      "settings": {
          # The price gate's points: beats every_2 at 2.0 calls, matches LLM alone at 4.
          "price=0.02": _setting([1.0, 1.0, 1.0], [4.0, 4.1, 3.9],
                                 gains={"llm_alone": {"mean": 0.0, "ci95": 0.0},
                                        "slm_alone": {"mean": 0.9, "ci95": 0.03},
                                        "every_2": {"mean": 0.8, "ci95": 0.05}}),
          "price=1": _setting([0.5, 0.6, 0.7], [2.0, 2.0, 2.0],
                              gains={"llm_alone": {"mean": -0.4, "ci95": 0.05},
                                     "slm_alone": {"mean": 0.5, "ci95": 0.05},
                                     "every_2": {"mean": 0.4, "ci95": 0.05}}),
          "call=0.1": _setting([0.99] * 3, [3.0] * 3, exposed=(6.0, 5.0, 7.0)),
          "plain_ask=0.1": _setting([0.99] * 3, [3.0] * 3, exposed=(8.0, 8.1, 7.9),
                                    mix=("self", "ask")),
          "privacy=0.05": _setting([0.99] * 3, [3.0] * 3, exposed=(2.0, 2.1, 1.9),
                                   privacy=0.05),
      },
      "pareto_per_seed": {
          "curves": {"threshold": [{"on_or_above": True}] * 5 + [{"on_or_above": False}],
                     "random": [{"on_or_above": True}] * 6},
          "below": [{"setting": "price=1", "seed": 2, "baseline": "threshold_-0.1",
                     "family": "threshold", "accuracy": 0.5, "calls": 2.0,
                     "gain": {"mean": -0.01, "ci95": 0.02}}]}})
  _write(r, "scaling", {
      "pairs": {f"{s}__{m}": {"slm": s, "llm": m, "seeds": [0, 1, 2],
                              "costs": {"per_call": 0.05}}
                for s in ("slm_s", "slm_m") for m in ("llm_s", "llm_l")},
      "claims": {
          "slm_more_self_reliant": {"llm_s": _trend(-2.0, 0.5), "llm_l": _trend(-1.0, 0.5)},
          "llm_sparser": {"slm_s": _trend(0.1, 0.5), "slm_m": _trend(2.0, 0.5)},
          "llm_more_informative": {"slm_s": _trend(0.3, 0.1), "slm_m": _trend(-0.3, 0.1)}}})
  _write(r, "transfer", {"transfer": {"a@llm_l": {
      "trained_with": "llm_s", "llm": "llm_l", "accuracy_kept": 0.5,
      "transfer": {"accuracy": _spread([0.45, 0.5, 0.55]), "calls": _spread([1.7] * 3)},
      "direct": {"accuracy": _spread([0.99, 1.0, 1.0]), "calls": _spread([2.8] * 3)}}}})
  _write(r, "budget_causal", {"settings": {
      "calls=1_price": _setting([0.4] * 3, [0.95, 1.0, 0.97], budget_target={
          "calls": 1.0, "llm_tokens": 0.0, "mode": "price"}),
      "tokens=10_price": _setting([0.4] * 3, [1.0] * 3, llm_tokens=(9.6, 9.9, 9.3),
                                  budget_target={"calls": 0.0, "llm_tokens": 10.0,
                                                 "mode": "price"}),
      "calls=1_lr0.001": _setting([0.4] * 3, [2.0, 0.0, 0.5], budget_target={
          "calls": 1.0, "llm_tokens": 0.0, "mode": "dual"})}})
  gain = lambda mean: {"threshold_-0.1": {"mean": mean, "ci95": 0.02}}  # noqa: E731
  _write(r, "worlds", {
      "settings": {"default": _setting([0.9] * 3, [2.0] * 3, gains=gain(0.05)),
                   "heldout": _setting([0.9] * 3, [2.0] * 3, gains=gain(-0.05)),
                   "fallible": _setting([0.9] * 3, [2.0] * 3, gains=gain(0.01)),
                   "arith": _setting([0.9] * 3, [2.0] * 3, gains=gain(0.05))},
      "rivals": dict({w: {"threshold": "threshold_-0.1", "router": None}
                      for w in ("default", "heldout", "fallible")},
                     arith={"threshold": "threshold_-0.1"})})
  return r


def _by_claim(rows):
  return {r["claim"]: r for r in rows}


def test_verdicts_of_known_summaries(results):
  rows = _by_claim(report.verdict_rows(results))
  static = rows["1. A learned gate beats static pipelines and standalone models"]
  assert static["verdict"] == "holds"  # every_2 and SLM alone beaten, LLM alone matched
  assert "beats 2 of 3" in static["effect"] and "matches llm_alone" in static["effect"]
  # At every_2's 3 calls the most accurate gate is call=0.1 (99%), 79 points above it.
  assert "+79.0 points over every_2" in static["effect"] and "[+77.0, +81.0]" in static["ci"]
  assert static["section"] == "[Constraints](#constraints)"
  rivals = next(r for c, r in rows.items() if c.startswith("1. ..."))
  assert rivals["verdict"] == "holds"  # the one point under the curve is a paired tie
  assert "5 of 6 seed points" in rivals["effect"] and "[-3.0, +1.0]" in rivals["ci"]
  assert rows["2a. A stronger SLM asks less"]["verdict"] == "holds"
  assert rows["2b. A stronger LLM is asked less"]["verdict"] == "fails"
  informative = rows["2b. A stronger LLM's calls are more informative (gain per call)"]
  assert informative["verdict"] == "inconclusive"
  assert "slm_s [+0.20, +0.40]" in informative["ci"]
  assert rows["2a. A stronger SLM asks less"]["seeds"] == "3 (0-2) per pair, 4 pairs"
  transfer = rows["3. The policy transfers to unseen LLMs and lineages"]
  assert transfer["verdict"] == "fails" and "50% kept, -49.7 points" in transfer["effect"]
  privacy = rows["4a. A privacy cost steers requests to redaction"]
  # 6.0 -> 2.0 (33%) against the gate that may redact, 8.0 -> 2.0 (25%) against plain asks.
  assert privacy["verdict"] == "holds"
  assert "(33%)" in privacy["effect"] and "(25%)" in privacy["effect"]
  prices = rows["4b. Prices shape the strategy"]
  assert prices["verdict"] == "holds" and "calls 4.00 -> 2.00" in prices["effect"]
  assert rows["4b. Budget targets are met: price"]["verdict"] == "holds"
  dual = rows["4b. Budget targets are met: dual"]
  assert dual["verdict"] == "fails" and "0 of 1 targets" in dual["effect"]
  # Worlds: a row per world; a family with no point at the gate's calls keeps 'holds' out.
  worlds = {r["setting"].split()[0]: r for r in report.verdict_rows(results)
            if r["claim"].startswith("5.")}
  assert {w: r["verdict"] for w, r in worlds.items()} == {
      "default": "inconclusive", "heldout": "fails", "fallible": "inconclusive",
      "arith": "holds"}
  assert "vs threshold (threshold_-0.1) +5.0 [+3.0, +7.0]" in worlds["default"]["effect"]
  assert "no router point" in worlds["default"]["effect"]
  # Variants not run leave no 'also'; a missing study is 'not run'.
  assert "also" not in rows["2a. A stronger SLM asks less"]["setting"]


def test_missing_studies_and_pooled_privacy_seeds(results):
  # A second privacy run of the same pair on new seeds is pooled with the first.
  _write(results, "constraints_privacy", {"settings": {
      "call=0.1": _setting([0.99] * 3, [3.0] * 3, exposed=(8.0, 8.0, 8.0), seeds=(3, 4, 5)),
      "plain_ask=0.1": _setting([0.99] * 3, [3.0] * 3, exposed=(8.0, 8.0, 8.0),
                                seeds=(3, 4, 5), mix=("self", "ask")),
      "privacy=0.05": _setting([0.99] * 3, [3.0] * 3, exposed=(2.0, 2.0, 2.0),
                               privacy=0.05, seeds=(3, 4, 5))}})
  os.remove(os.path.join(results, "transfer", "summary.json"))
  rows = _by_claim(report.verdict_rows(results))
  privacy = rows["4a. A privacy cost steers requests to redaction"]
  assert privacy["seeds"] == "6 (0-5)" and "7.00 -> 2.00" in privacy["effect"]
  assert "#constraints-privacy-cost-seeds-3-5" in privacy["section"]
  assert rows["3. The policy transfers to unseen LLMs and lineages"]["verdict"] == "not run"


def test_report_opens_with_the_verdict_table(results, tmp_path):
  text = report.build_report(results, str(tmp_path / "REPORT.md"))
  assert text.index("## Verdicts") < text.index("## Frontier") < text.index("## Scaling")
  start = text.index("## Verdicts")
  table = text[start:text.index("\n## ", start + 1)]
  assert "| claim | setting | measured effect | 95% CI | seeds | verdict | section |" in table
  # Header and 15 rows: 4 of them worlds, 1 the headline study's (not run here).
  assert table.count("\n| ") == 16
  assert "Not run yet" not in table


def test_helpers():
  assert report.anchor("Budget: causal credit, dual ascent") == "budget-causal-credit-dual-ascent"
  from collab.studies import summaries  # pylint: disable=g-import-not-at-top
  assert [summaries.steps_share(r) for r in (None, 0.25, 0.375)] == ["a quarter", "a quarter",
                                                                     "37.5%"]
  w = verdicts.welch([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
  assert w["mean"] == pytest.approx(1.0) and w["ci95"] == pytest.approx(2.484, abs=1e-3)
  assert verdicts.welch([1.0, 1.0], [0.0, 0.0]) == {"mean": 1.0, "ci95": 0.0}
  assert verdicts.seeds_text([5, 3, 4]) == "3 (3-5)" and verdicts.seeds_text([0]) == "1 (0)"
  t = {"a": {"sign": -1}, "b": {"sign": -1}, "c": {"sign": 0}}
  assert verdicts.trend_verdict(t, -1) == "holds"
  assert verdicts.trend_verdict(t, +1) == "fails"
  assert verdicts.trend_verdict({"a": {"sign": -1}, "b": {"sign": 1}}, -1) == "inconclusive"
  assert verdicts.trend_verdict({"a": {"sign": 0}}, -1) == "inconclusive"


def test_a_resumed_study_keeps_its_compute_time(tmp_path):
  out = str(tmp_path)
  read = lambda: json.load(open(os.path.join(out, "run_info.json")))["seconds"]  # noqa: E731
  report.write_run_info(out, "study a", 600.0)
  report.write_run_info(out, "study a", 2.0, resumed=True)  # rerun to redo its analysis
  assert read() == 602.0
  report.write_run_info(out, "study b", 5.0, resumed=True)  # another command: its own time
  assert read() == 5.0
  report.write_run_info(out, "study b", 7.0)  # run afresh
  assert read() == 7.0


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO, "results", "scaling")),
                    reason="no committed results")
def test_committed_results_give_a_verdict_per_claim():
  rows = report.verdict_rows(os.path.join(REPO, "results"))
  claims = {r["claim"].split(" ")[0] for r in rows}
  assert {"1.", "2a.", "2b.", "3.", "4a.", "4b.", "5."} <= claims
  run = {c: os.path.exists(os.path.join(REPO, "results", d))
         for c, d in (("5.", "worlds"), ("Headline:", "headline"))}
  assert all(r["verdict"] in ("holds", "fails", "inconclusive")
             or any(r["claim"].startswith(c) and not ran for c, ran in run.items())
             for r in rows)
