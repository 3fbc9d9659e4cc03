"""The headline study (configs/studies/headline.py): per world, on the sealed split, the gate
told the price at which it asks at a chosen share of its steps, against the best rival at the
same calls per problem.

Each swept rival family (threshold, router, line kinds, random) is taken at its convex hull:
two of its points mixed per problem (a fixed seeded draw per problem decides which point a
problem uses, collab/hull.py `mix_at`) so that the mix spends at most the gate's calls. Every
problem's outcome is then a real outcome of one of the two points, so the paired comparison
with the gate is over the same 300 problems. Static schedules enter at their best point at or
under the gate's calls. The gap recovered is (accuracy - SLM alone) / (LLM alone - SLM alone).
The default world's pretraining seeds (settings default_p*) are also pooled: their paired
differences concatenated, each pair against its own rivals.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from collab import hull as hull_lib
from collab.studies import stats
from collab.studies import summaries as sm
from collab.studies import worlds as worlds_lib

HULL_FAMILIES = ("threshold", "router", "line_kind", "random")
POINT_FAMILIES = ("every_k", "fixed")
_DRAW_SEED = 0


def hull_at(policies: dict[str, dict], per_problem: dict[str, dict], family: str,
            calls: float) -> tuple[str, np.ndarray] | None:
  """(name, correct_N) of `family`'s hull mix spending at most `calls` per problem (SLM alone
  is every family's 0-call end); None for a family with no point."""
  pts = [(p["calls"]["mean"], p["accuracy"]["mean"], n) for n, p in policies.items()
         if p["family"] in (family, "slm_alone")]
  if not any(policies[n]["family"] == family for _, _, n in pts):
    return None
  hull = hull_lib.upper_hull(pts)
  below = [v for v in hull if v[0] <= calls + 1e-9]
  above = [v for v in hull if v[0] > calls + 1e-9]
  a = below[-1]
  if not above:  # the gate spends more than the family's most accurate point
    return a[2], np.asarray(per_problem[a[2]]["correct"], float)
  b = above[0]
  per_a, per_b = per_problem[a[2]], per_problem[b[2]]
  draws_N = np.random.default_rng(_DRAW_SEED).random(len(per_a["correct"]))
  p = hull_lib.mix_at(per_a["calls"], per_b["calls"], draws_N, calls)
  mix = hull_lib.mixed({k: np.asarray(v, float) for k, v in per_a.items()},
                       {k: np.asarray(v, float) for k, v in per_b.items()}, draws_N, p)
  return f"{a[2]}~{b[2]}@{p:.2f}", mix["correct"]


def best_rival(policies: dict[str, dict], per_problem: dict[str, dict], calls: float
               ) -> dict[str, Any]:
  """The most accurate rival at or under `calls`: each hull family's mix, each static
  family's best point. {'family', 'name', 'correct_N', 'accuracy'}."""
  options = []
  for family in HULL_FAMILIES:
    got = hull_at(policies, per_problem, family, calls)
    if got is not None:
      options.append((family, *got))
  for family in POINT_FAMILIES:
    name, _ = stats.best_at_or_below(policies, (family,), calls)
    if name is not None:
      options.append((family, name, np.asarray(per_problem[name]["correct"], float)))
  family, name, correct_N = max(options, key=lambda o: o[2].mean())
  return {"family": family, "name": name, "correct_N": correct_N,
          "accuracy": float(correct_N.mean())}


def _row(name: str, slm: float, llm: float, gate_N: np.ndarray, rival_N: np.ndarray,
         calls: float, rate: float, rival: str) -> dict[str, Any]:
  gap = llm - slm
  recovered = lambda acc: (acc - slm) / gap if gap > 0 else None  # noqa: E731
  gain = stats.paired_gain(gate_N, rival_N)
  return {"world": name, "slm_alone": slm, "llm_alone": llm, "calls": calls,
          "call_rate": rate, "gate": float(gate_N.mean()), "rival": rival,
          "rival_accuracy": float(rival_N.mean()),
          "gate_gap_recovered": recovered(float(gate_N.mean())),
          "rival_gap_recovered": recovered(float(rival_N.mean())), "gain": gain,
          "problems": int(len(gate_N))}


def analyze_headline(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  # The default world's pretraining seeds first (their pooled row follows them).
  sets = dict(sorted(sm.settings(result).items(),
                     key=lambda kv: not kv[0].startswith("default_p")))
  rates = {}
  for r in result["runs"]:
    e = r["evals"][r["llm"]]
    rates.setdefault(r["setting"], []).append(e["call_rate"])
  rows, pooled = [], []
  for name, s in sets.items():
    per = s["baselines"]
    per_problem = {n: p["per_problem"] for n, p in per.items()}
    gate_N = np.mean(s["per_problem"]["correct_by_seed"], axis=0).astype(float)
    calls = s["calls"]["mean"]
    rival = best_rival(per, per_problem, calls)
    row = _row(name, s["slm_alone"], s["llm_alone"], gate_N, rival["correct_N"], calls,
               float(np.mean(rates[name])), f"{rival['family']}: {rival['name']}")
    row["seeds"] = s["seeds"]
    row["target_rate"] = s["budget_target"].get("call_rate")
    rows.append(row)
    if name.startswith("default_p"):
      pooled.append((s, gate_N, rival["correct_N"], row))
  if len(pooled) > 1:
    gate_N = np.concatenate([g for _, g, _, _ in pooled])
    rival_N = np.concatenate([r for _, _, r, _ in pooled])
    row = _row(f"default (pooled over {len(pooled)} pretraining seeds)",
               float(np.mean([s["slm_alone"] for s, *_ in pooled])),
               float(np.mean([s["llm_alone"] for s, *_ in pooled])), gate_N, rival_N,
               float(np.mean([r["calls"] for *_, r in pooled])),
               float(np.mean([r["call_rate"] for *_, r in pooled])),
               "per pair, as above")
    row["seeds"] = sorted(x for s, *_ in pooled for x in s["seeds"])
    row["target_rate"] = pooled[0][3]["target_rate"]
    rows.insert(len(pooled), row)
  worlds_lib.plot_settings(sets, os.path.join(sm.out_dir_ready(out_dir), "headline.png"))
  lines = [f"| {r['world']} | {sm.pct(r['slm_alone'])} | {sm.pct(r['llm_alone'])} | "
           f"{100 * r['call_rate']:.0f}% ({r['calls']:.2f}) | {sm.pct(r['gate'])} | "
           f"{sm.share(r['gate_gap_recovered'])} | {r['rival']} | "
           f"{sm.pct(r['rival_accuracy'])} | {sm.share(r['rival_gap_recovered'])} | "
           f"{100 * r['gain']['mean']:+.1f} [{100 * (r['gain']['mean'] - r['gain']['ci95']):+.1f}, "
           f"{100 * (r['gain']['mean'] + r['gain']['ci95']):+.1f}] |" for r in rows]
  # The study's protocol run elsewhere (config.base_arg without eval_split=sealed) says so.
  base_arg = result.get("base_arg", "eval_split=sealed")
  sealed = "eval_split=sealed" in base_arg
  where = ("the sealed split" if sealed else
           f"not the sealed split: {base_arg}, problems settings may be chosen on")
  report = "\n".join([
      f"### Headline{'' if sealed else ' protocol'}: {where.partition(':')[0]}, at "
      f"{sm.steps_share(rows[0]['target_rate'])} of the steps asked", "",
      f"{'Problems no setting was chosen on' if sealed else 'Problems'} ({where}; "
      f"{rows[0]['problems']} per world and pretraining seed). Steps asked: the "
      "gate's calls per decision (calls per problem). Best rival: the most accurate of the "
      "threshold, router, line-kind and random hulls and the static schedules at the gate's "
      "calls per problem. Gain: gate minus best rival, paired over problems, 95% CI.", "",
      "| world | SLM alone | LLM alone | steps asked (calls) | gate | gap recovered | "
      "best rival | its accuracy | its gap recovered | gain |",
      "|---|---|---|---|---|---|---|---|---|---|", *lines, "", "![headline](headline.png)"])
  return sm.write(out_dir, {"settings": sets, "rows": rows}, report)

