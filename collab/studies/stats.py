"""Statistics shared by the study analyses: seed means with CIs, trend slopes, dominance."""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats

from collab.baselines import STATIC_FAMILIES  # noqa: F401  (re-exported for the studies)

CURVE_FAMILIES = ("random", "threshold")


def spread(values: Sequence[float]) -> dict[str, Any]:
  """Mean over seeds with a t-based 95% CI (zero width for one value)."""
  v = np.asarray(values, np.float64)
  half = 0.0
  if v.size > 1:
    half = float(scipy_stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
  return {"mean": float(v.mean()), "ci95": half, "values": v.tolist()}


def trend(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
  """OLS slope of y on x with a t-based 95% CI; `sign` is +1 / -1 when the CI excludes 0."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n = x.size
  if n < 3 or np.ptp(x) == 0:
    return {"slope": float("nan"), "ci95": float("nan"), "n": int(n), "sign": 0}
  fit = scipy_stats.linregress(x, y)
  half = float(scipy_stats.t.ppf(0.975, n - 2) * fit.stderr)
  sign = 1 if fit.slope - half > 0 else -1 if fit.slope + half < 0 else 0
  return {"slope": float(fit.slope), "ci95": half, "n": int(n), "sign": sign,
          "r": float(fit.rvalue)}


def paired_gain(a_N: Iterable[float], b_N: Iterable[float]) -> dict[str, float]:
  """Mean of a - b over the same problems, with a normal 95% CI."""
  d = np.asarray(list(a_N), np.float64) - np.asarray(list(b_N), np.float64)
  half = 1.959964 * d.std(ddof=1) / math.sqrt(d.size) if d.size > 1 else 0.0
  return {"mean": float(d.mean()), "ci95": float(half)}


def best_at_or_below(policies: dict[str, dict], families: Sequence[str], calls: float,
                     tol: float = 1e-9) -> tuple[str | None, float]:
  """The most accurate policy of `families` (SLM alone included: the 0-call end of every
  curve) that spends at most `calls` per problem: (name, accuracy)."""
  best, best_acc = None, -1.0
  for name, p in policies.items():
    if p["family"] in tuple(families) + ("slm_alone",) and p["calls"]["mean"] <= calls + tol:
      if p["accuracy"]["mean"] > best_acc:
        best, best_acc = name, p["accuracy"]["mean"]
  return best, best_acc


def dominance(gate_points: Sequence[dict[str, float]], policies: dict[str, dict]
              ) -> dict[str, Any]:
  """Does a set of gate operating points beat the baselines?

  gate_points: [{'accuracy', 'calls'}] (e.g. one per call cost, seed-averaged).
  static[name]: some gate point has higher accuracy at equal or fewer calls per problem (for
    SLM alone: higher accuracy).
  curves[family][i]: gate point i against the best policy of that family at equal or fewer
  calls (on or above: accuracy >= that policy's).
  static_pareto[name]: static[name], or some point has its accuracy or more with fewer calls.
  """
  static, matched = {}, {}
  for name, p in policies.items():
    if p["family"] in STATIC_FAMILIES:
      # SLM alone spends no calls: the bar there is accuracy alone.
      budget = float("inf") if p["family"] == "slm_alone" else p["calls"]["mean"] + 1e-9
      static[name] = any(g["accuracy"] > p["accuracy"]["mean"] and g["calls"] <= budget
                         for g in gate_points)
      # Pareto dominance: at least its accuracy with fewer calls (the only way to beat a
      # baseline at the 100% ceiling, such as a perfect LLM alone).
      matched[name] = static[name] or any(
          g["accuracy"] >= p["accuracy"]["mean"] and g["calls"] < p["calls"]["mean"]
          for g in gate_points)
  curves = {}
  for family in CURVE_FAMILIES:
    rows = []
    for g in gate_points:
      name, acc = best_at_or_below(policies, (family,), g["calls"])
      rows.append({"gate_calls": g["calls"], "gate_accuracy": g["accuracy"],
                   "best_baseline": name, "baseline_accuracy": acc,
                   "on_or_above": bool(g["accuracy"] >= acc)})
    curves[family] = rows
  return {"static": static, "all_static_beaten": all(static.values()) if static else False,
          "static_pareto": matched,
          "curves": curves,
          "all_curves_on_or_above": all(r["on_or_above"] for rs in curves.values()
                                        for r in rs)}
