"""The verdicts of the table that opens REPORT.md (collab/studies/report.py): one row per
claim of the paper, from results/<study>/summary.json.

Each row gives the setting, the measured effect, its 95% CI, the seeds, and a verdict:
'holds', 'fails' or 'inconclusive' (or 'not run' when its study has no results). The rules:

- 1, dynamic against static: for every static pipeline and standalone model, the most accurate
  gate point of the call-cost sweeps (seed means) that spends at most its calls. It is beaten
  when the paired gain over the same test problems is above 0 with 95% confidence, matched
  when the gate spends fewer calls and the gain's CI reaches 0 (LLM alone at 100% can only be
  matched). Holds: every one beaten or matched; fails: more than half neither.
- 1, against the confidence threshold and random asking: every seed's gate point against the
  best policy of each family at equal or fewer calls; a point under one is a significant
  shortfall when its paired CI lies below 0. Holds: none significant; fails: more than half of
  the points under the threshold curve.
- 2a / 2b, trends of the scaling grid (OLS slopes over seeds, one per fixed model): holds when
  most slopes are significant in the claimed direction and none against; fails when none is in
  the claimed direction and one is against, or most are against.
- 3, transfer: a gate run with an LLM it was not trained with against a gate trained on that
  LLM (Welch CI of the accuracy difference over seeds). Holds for a target when the transferred
  gate is not significantly worse; the row holds when every target does, fails when none does.
- 4a, privacy: the smallest privacy cost against gates at the same call cost without one, one
  that may redact and one that may only ask plainly (seeds pooled over the studies of the same
  pair). Holds when exposure is at least halved, significantly, for less than 5 points of
  accuracy against both; fails against neither.
- 4b, prices: slopes of calls (or LLM tokens) on log10 of the price a gate is told or trained
  at, over seeds; holds when every slope is significantly negative.
- 4b, budgets: a target is met when the seed mean achieved on the test split is within
  BUDGET_TOLERANCE of it; holds when every target of a mode is met, fails when most miss.
- 5, worlds: in each world, the gate (seeds pooled) against the most accurate point of each
  rival family (confidence threshold, supervised router, line-kind rule) at equal or fewer
  calls, paired over problems. Holds when it beats every one with 95% confidence; fails when
  one beats it so; inconclusive otherwise (a tie with at least one).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np
from scipy import stats as scipy_stats

from collab.studies import stats

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
BUDGET_TOLERANCE = 0.10  # relative distance of the achieved spend to a budget target
ACCURACY_SLACK = 0.05    # accuracy a privacy cost may cost (4a)

def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
  """Mean of a minus mean of b with a Welch 95% CI (independent seeds)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  diff = float(a.mean() - b.mean())
  if a.size < 2 or b.size < 2:
    return {"mean": diff, "ci95": float("nan")}
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  se = math.sqrt(va + vb)
  if se == 0:
    return {"mean": diff, "ci95": 0.0}
  df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  return {"mean": diff, "ci95": float(scipy_stats.t.ppf(0.975, df) * se)}


def interval(mean: float, half: float, scale: float = 100.0, digits: int = 1) -> str:
  """'[lo, hi]' (scaled: 100 turns shares into points), or 'n/a' without a CI."""
  if half is None or not math.isfinite(half):
    return "n/a"
  return f"[{scale * (mean - half):+.{digits}f}, {scale * (mean + half):+.{digits}f}]"


def seeds_text(seeds: Sequence[int]) -> str:
  seeds = sorted(set(seeds))
  if not seeds:
    return "-"
  if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
    return f"{len(seeds)} ({seeds[0]}-{seeds[-1]})"
  return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def load(results_dir: str, study: str) -> dict[str, Any] | None:
  path = os.path.join(results_dir, study, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _pct(x: float) -> str:
  return f"{100 * x:.1f}%"


def _name_value(name: str) -> float:
  return float(name.split("=", 1)[1].split("_")[0])


# ------------------------------------------------------------------------- claim 1: static


def call_sweep(sets: dict[str, dict]) -> dict[str, dict]:
  """Gates free to spend calls: no token or privacy cost, no hard budget."""
  return {n: s for n, s in sets.items()
          if not s["costs"]["per_private_token"] and not s["costs"]["per_llm_token"]
          and s.get("baselines_capped") is None}


def static_comparison(sets: dict[str, dict]) -> list[dict[str, Any]]:
  """Each static baseline against the most accurate gate point at its calls or fewer."""
  gates = call_sweep(sets)
  if not gates:
    return []
  base = next(iter(gates.values()))["baselines"]
  out = []
  for name, b in base.items():
    if b["family"] not in stats.STATIC_FAMILIES:
      continue
    budget = math.inf if b["family"] == "slm_alone" else b["calls"]["mean"] + 1e-9
    fit = [(g, s) for g, s in gates.items() if s["calls"]["mean"] <= budget]
    if not fit:
      out.append({"baseline": name, "status": "neither", "gate": None})
      continue
    gate, s = max(fit, key=lambda x: x[1]["accuracy"]["mean"])
    gain = s["gain_vs"][name]
    if gain["mean"] - gain["ci95"] > 0:
      status = "beaten"
    elif s["calls"]["mean"] < b["calls"]["mean"] and gain["mean"] + gain["ci95"] >= 0:
      status = "matched"
    else:
      status = "neither"
    out.append({"baseline": name, "status": status, "gate": gate, "gain": gain,
                "gate_calls": s["calls"]["mean"], "gate_accuracy": s["accuracy"]["mean"],
                "calls": b["calls"]["mean"], "accuracy": b["accuracy"]["mean"],
                "problems": b.get("num_problems")})
  return out


def claim_static(summary: dict[str, Any]) -> dict[str, Any]:
  comp = static_comparison(summary["settings"])
  if not comp:
    return {"verdict": INCONCLUSIVE, "effect": "no call-cost gates", "ci": "n/a"}
  beaten = [c for c in comp if c["status"] == "beaten"]
  matched = [c for c in comp if c["status"] == "matched"]
  neither = [c for c in comp if c["status"] == "neither"]
  verdict = (HOLDS if not neither else FAILS if len(neither) > len(comp) / 2
             else INCONCLUSIVE)
  parts = [f"beats {len(beaten)} of {len(comp)} static pipelines and standalone models at "
           "equal or fewer calls"]
  ci = "n/a"
  if beaten:
    worst = min(beaten, key=lambda c: c["gain"]["mean"])
    parts.append(f"smallest margin {100 * worst['gain']['mean']:+.1f} points over "
                 f"{worst['baseline']} ({_pct(worst['accuracy'])} at {worst['calls']:.2f} "
                 f"calls; gate {worst['gate']}: {_pct(worst['gate_accuracy'])} at "
                 f"{worst['gate_calls']:.2f})")
    ci = (f"{interval(worst['gain']['mean'], worst['gain']['ci95'])} points (paired over "
          f"{worst['problems']} problems)")
  for c in matched:
    parts.append(f"matches {c['baseline']} ({_pct(c['accuracy'])} at {c['calls']:.2f} calls) "
                 f"with {c['gate']}: {_pct(c['gate_accuracy'])} at {c['gate_calls']:.2f}")
  if neither:
    parts.append("neither beaten nor matched: " + ", ".join(c["baseline"] for c in neither))
  return {"verdict": verdict, "effect": "; ".join(parts), "ci": ci}


def claim_rivals(summary: dict[str, Any]) -> dict[str, Any]:
  d = summary.get("pareto_per_seed") or {}
  curves = d.get("curves", {})
  if not curves or not curves.get("threshold"):
    return {"verdict": INCONCLUSIVE, "effect": "no call-cost gates", "ci": "n/a"}
  n = len(curves["threshold"])
  on = {f: sum(r["on_or_above"] for r in rows) for f, rows in curves.items()}
  below = d.get("below", [])
  significant = [b for b in below if b["gain"]["mean"] + b["gain"]["ci95"] < 0]
  under_threshold = n - on["threshold"]
  verdict = (HOLDS if not significant else FAILS if under_threshold > n / 2
             else INCONCLUSIVE)
  effect = (f"{on['threshold']} of {n} seed points on or above the confidence-threshold "
            f"curve, {on.get('random', 0)} of {n} above random asking; "
            f"{len(significant)} significantly under")
  ci = "-"
  if below:
    worst = min(below, key=lambda b: b["gain"]["mean"])
    effect += (f"; largest shortfall {100 * worst['gain']['mean']:+.1f} points "
               f"({worst['setting']}, seed {worst['seed']}, under {worst['baseline']})")
    ci = f"{interval(worst['gain']['mean'], worst['gain']['ci95'])} points (paired)"
  return {"verdict": verdict, "effect": effect, "ci": ci}


def seeds_of(summary: dict[str, Any], key: str = "settings") -> list[int]:
  return sorted({seed for s in summary.get(key, {}).values() for seed in s.get("seeds", [])})


# ------------------------------------------------------------------------ claim 2: scaling

TREND_CLAIMS = {
    "slm_more_self_reliant": (-1, "calls per problem on SLM-alone accuracy (0-1), per LLM"),
    "llm_sparser": (-1, "calls per problem on LLM-alone accuracy (0-1), per SLM"),
    "llm_more_informative": (+1, "gain per call on LLM-alone accuracy (0-1), per SLM"),
}


def trend_verdict(trends: dict[str, dict], sign: int) -> str:
  n = len(trends)
  held = sum(t["sign"] == sign for t in trends.values())
  against = sum(t["sign"] == -sign for t in trends.values())
  if n == 0:
    return INCONCLUSIVE
  if against == 0 and held > n / 2:
    return HOLDS
  if (held == 0 and against > 0) or against > n / 2:
    return FAILS
  return INCONCLUSIVE


def claim_trend(summary: dict[str, Any], claim: str) -> dict[str, Any]:
  sign, what = TREND_CLAIMS[claim]
  trends = summary["claims"][claim]
  effect = f"slope of {what}: " + ", ".join(
      f"{k} {t['slope']:+.2f}" for k, t in trends.items())
  ci = "; ".join(f"{k} {interval(t['slope'], t['ci95'], 1.0, 2)}" for k, t in trends.items())
  return {"verdict": trend_verdict(trends, sign), "effect": effect, "ci": ci}


def scaling_setting(summary: dict[str, Any]) -> str:
  pairs = summary.get("pairs", {}).values()
  slms, llms = sorted({p["slm"] for p in pairs}), sorted({p["llm"] for p in pairs})
  costs = sorted({p["costs"]["per_call"] for p in pairs})
  return (f"{len(slms)} SLMs x {len(llms)} LLMs, a gate per pair at call cost "
          + "/".join(f"{c:g}" for c in costs))


def scaling_seeds(summary: dict[str, Any]) -> str:
  pairs = summary.get("pairs", {})
  return seeds_text(sorted({x for p in pairs.values() for x in p["seeds"]})) + (
      f" per pair, {len(pairs)} pairs")


# ----------------------------------------------------------------------- claim 3: transfer


def _lineage(name: str) -> tuple[str, int] | None:
  try:
    from collab.models import presets  # pylint: disable=g-import-not-at-top
    from collab.train import recipes  # pylint: disable=g-import-not-at-top
    recipe = recipes.get_recipe(name)
    return presets.PRESETS[recipe.model].arch, recipe.seed
  except (ImportError, KeyError, ValueError):
    return None


def claim_transfer(summary: dict[str, Any]) -> dict[str, Any]:
  entries = [e for e in summary["transfer"].values() if e.get("direct")]
  if not entries:
    return {"verdict": INCONCLUSIVE, "effect": "no gate trained on the target LLM", "ci": "n/a"}
  parts, cis, ok = [], [], []
  for e in entries:
    diff = welch(e["transfer"]["accuracy"]["values"], e["direct"]["accuracy"]["values"])
    ok.append(diff["mean"] + diff["ci95"] >= 0 if math.isfinite(diff["ci95"])
              else diff["mean"] >= 0)
    src, dst = _lineage(e["trained_with"]), _lineage(e["llm"])
    other = " (another lineage)" if src and dst and src != dst else ""
    kept = e.get("accuracy_kept")
    parts.append(f"{e['trained_with']} -> {e['llm']}{other}: "
                 f"{_pct(e['transfer']['accuracy']['mean'])} at "
                 f"{e['transfer']['calls']['mean']:.2f} calls vs "
                 f"{_pct(e['direct']['accuracy']['mean'])} at "
                 f"{e['direct']['calls']['mean']:.2f} for a gate trained on it ("
                 + (f"{100 * kept:.0f}% kept, " if kept is not None else "")
                 + f"{100 * diff['mean']:+.1f} points)")
    cis.append(f"{e['llm']} {interval(diff['mean'], diff['ci95'])}")
  verdict = HOLDS if all(ok) else FAILS if not any(ok) else INCONCLUSIVE
  return {"verdict": verdict, "effect": "; ".join(parts),
          "ci": "; ".join(cis) + " points (Welch, seeds)"}


def transfer_seeds(summary: dict[str, Any]) -> str:
  seeds = {len(e["transfer"]["accuracy"]["values"]) for e in summary["transfer"].values()}
  return ", ".join(str(n) for n in sorted(seeds)) or "-"


# ------------------------------------------------------------------------ claim 4a: privacy


def pool_settings(summaries: Sequence[dict[str, Any]]) -> dict[str, dict]:
  """Settings of the same name from studies of one pair, their seeds concatenated: the first
  summary's settings, extended by later ones whose seeds are new and whose baselines (SLM and
  LLM alone) are the same."""
  if not summaries:
    return {}
  pooled = {n: {"seeds": list(s["seeds"]), "costs": s["costs"],
                "action_mix": s["action_mix"],
                **{k: list(s[k]["values"]) for k in ("accuracy", "exposed", "calls")},
                "_pair": (s["slm"], s["llm"], s["slm_alone"], s["llm_alone"])}
            for n, s in summaries[0]["settings"].items()}
  for summary in summaries[1:]:
    for n, s in summary["settings"].items():
      p = pooled.get(n)
      if p is None or set(p["seeds"]) & set(s["seeds"]) or p["_pair"] != (
          s["slm"], s["llm"], s["slm_alone"], s["llm_alone"]):
        continue
      p["seeds"] += s["seeds"]
      for k in ("accuracy", "exposed", "calls"):
        p[k] += s[k]["values"]
  return pooled


def privacy_check(priv: dict, ref: dict) -> dict[str, Any]:
  exposure = welch(priv["exposed"], ref["exposed"])
  accuracy = welch(priv["accuracy"], ref["accuracy"])
  ref_mean = float(np.mean(ref["exposed"]))
  ratio = float(np.mean(priv["exposed"])) / ref_mean if ref_mean else None
  significant = exposure["mean"] + (exposure["ci95"] if math.isfinite(exposure["ci95"])
                                    else 0.0) < 0
  ok = (ratio is not None and ratio <= 0.5 and significant
        and -accuracy["mean"] < ACCURACY_SLACK)
  return {"exposure": exposure, "accuracy": accuracy, "ratio": ratio, "ok": ok,
          "ref_exposed": ref_mean, "exposed": float(np.mean(priv["exposed"])),
          "ref_accuracy": float(np.mean(ref["accuracy"])),
          "priv_accuracy": float(np.mean(priv["accuracy"]))}


def claim_privacy(pooled: dict[str, dict]) -> dict[str, Any]:
  private = sorted((n for n, s in pooled.items() if s["costs"]["per_private_token"] > 0),
                   key=lambda n: pooled[n]["costs"]["per_private_token"])
  if not private:
    return {"verdict": INCONCLUSIVE, "effect": "no privacy-priced gate", "ci": "n/a",
            "seeds": []}
  priv = pooled[private[0]]
  call = priv["costs"]["per_call"]
  refs = []
  for prefix, label in (("call", "an unpriced gate that may redact"),
                        ("plain_ask", "a gate that may only ask plainly")):
    ref = next((s for n, s in pooled.items() if n.startswith(prefix + "=")
                and not s["costs"]["per_private_token"] and s["costs"]["per_call"] == call),
               None)
    if ref is not None:
      refs.append((label, ref, privacy_check(priv, ref)))
  if not refs:
    return {"verdict": INCONCLUSIVE, "effect": "no reference gate at the same call cost",
            "ci": "n/a", "seeds": priv["seeds"]}
  oks = [c["ok"] for _, _, c in refs]
  verdict = HOLDS if all(oks) else FAILS if not any(oks) else INCONCLUSIVE
  effect = (f"privacy cost {priv['costs']['per_private_token']:g} per token at call cost "
            f"{call:g}: " + "; ".join(
                f"exposure {c['ref_exposed']:.2f} -> {c['exposed']:.2f} tokens per problem "
                f"({100 * c['ratio']:.0f}%) against {label}, accuracy "
                f"{_pct(c['ref_accuracy'])} -> {_pct(c['priv_accuracy'])}"
                if c["ratio"] is not None else f"no exposure to cut against {label}"
                for label, _, c in refs))
  ci = "; ".join(f"{interval(c['exposure']['mean'], c['exposure']['ci95'], 1.0, 2)} tokens"
                 for _, _, c in refs) + " (Welch, seeds)"
  return {"verdict": verdict, "effect": effect, "ci": ci, "seeds": priv["seeds"]}


# ------------------------------------------------------------------- claim 4b: efficiency


def price_trend(sets: dict[str, dict], prefix: str, metric: str) -> dict[str, Any] | None:
  """Slope of `metric` (per seed) on log10 of the price in the setting name '<prefix>=p'."""
  xs, ys, means = [], [], []
  for n, s in sets.items():
    if not n.startswith(prefix + "="):
      continue
    p = _name_value(n)
    if p <= 0:
      continue
    xs += [math.log10(p)] * len(s[metric]["values"])
    ys += s[metric]["values"]
    means.append((p, s[metric]["mean"]))
  if len(means) < 2:
    return None
  means.sort()
  return {"trend": stats.trend(xs, ys), "low": means[0], "high": means[-1],
          "seeds": sorted({x for n, s in sets.items() if n.startswith(prefix + "=")
                           for x in s["seeds"]})}


def claim_prices(found: list[tuple[str, str, dict]]) -> dict[str, Any]:
  """found: (label, unit, price_trend) per swept price."""
  parts, cis, ok = [], [], []
  for label, unit, t in found:
    tr = t["trend"]
    ok.append(tr["sign"] == -1)
    parts.append(f"{unit} {t['low'][1]:.2f} -> {t['high'][1]:.2f} as the {label} rises "
                 f"{t['low'][0]:g} -> {t['high'][0]:g} (slope {tr['slope']:+.2f} per "
                 "tenfold price)")
    cis.append(f"{interval(tr['slope'], tr['ci95'], 1.0, 2)}")
  verdict = HOLDS if all(ok) else FAILS if not any(ok) else INCONCLUSIVE
  return {"verdict": verdict, "effect": "; ".join(parts), "ci": "; ".join(cis)}


def budget_modes(sets: dict[str, dict]) -> dict[str, list[dict[str, Any]]]:
  modes: dict[str, list[dict[str, Any]]] = {}
  for n, s in sets.items():
    bt = s["budget_target"]
    key, target = ("calls", bt["calls"]) if bt["calls"] > 0 else ("llm_tokens",
                                                                    bt["llm_tokens"])
    if target <= 0:
      continue
    got = s[key]
    modes.setdefault(bt.get("mode", "dual"), []).append(
        {"setting": n, "key": key, "target": target, "mean": got["mean"], "ci95": got["ci95"],
         "error": abs(got["mean"] - target) / target, "seeds": s["seeds"],
         "accuracy": s["accuracy"]["mean"]})
  return modes


def claim_budget(points: list[dict[str, Any]]) -> dict[str, Any]:
  met = [p for p in points if p["error"] <= BUDGET_TOLERANCE]
  verdict = (HOLDS if len(met) == len(points) else FAILS if len(met) < len(points) / 2
             else INCONCLUSIVE)
  worst = max(points, key=lambda p: p["error"])
  unit = lambda p: "calls" if p["key"] == "calls" else "LLM tokens"  # noqa: E731
  effect = (f"{len(met)} of {len(points)} targets met within "
            f"{100 * BUDGET_TOLERANCE:.0f}% on the test split; farthest: {worst['target']:g} "
            f"{unit(worst)} -> {worst['mean']:.2f} ({100 * worst['error']:.0f}% off, accuracy "
            f"{_pct(worst['accuracy'])})")
  ci = f"{worst['mean'] - worst['ci95']:.2f} to {worst['mean'] + worst['ci95']:.2f} " + (
      f"{unit(worst)} (seeds)")
  return {"verdict": verdict, "effect": effect, "ci": ci}


def pair_name(summary: dict[str, Any] | None) -> str:
  if not summary or not summary.get("settings"):
    return "one pair"
  s = next(iter(summary["settings"].values()))
  return f"{s['slm']} x {s['llm']}"


# ------------------------------------------------------------------------- claim 5: worlds


def claim_world(setting: dict[str, Any], rivals: dict[str, str | None]) -> dict[str, Any]:
  """One world of the worlds study (collab/studies/worlds.py): the gate's paired gain over
  the best point of each rival family that spends no more calls."""
  parts, lows, highs = [], [], []
  for family, rival in rivals.items():
    if rival is None:
      parts.append(f"no {family} point at or under its calls")
      continue
    g = setting["gain_vs"][rival]
    lows.append(g["mean"] - g["ci95"])
    highs.append(g["mean"] + g["ci95"])
    # A family with no point at or under the gate's calls starts from SLM alone (0 calls).
    who = "none at or under its calls: SLM alone" if rival == "slm_alone" else rival
    parts.append(f"vs {family} ({who}) {100 * g['mean']:+.1f} "
                 f"{interval(g['mean'], g['ci95'])}")
  if not lows:
    return {"verdict": INCONCLUSIVE, "effect": "no rival point to compare", "ci": "-"}
  verdict = (FAILS if min(highs) < 0 else HOLDS if min(lows) > 0 and len(lows) == len(rivals)
             else INCONCLUSIVE)
  acc, calls = setting["accuracy"], setting["calls"]
  effect = (f"gate {_pct(acc['mean'])} at {calls['mean']:.2f} calls (SLM alone "
            f"{_pct(setting['slm_alone'])}, LLM alone {_pct(setting['llm_alone'])}); "
            + "; ".join(parts))
  return {"verdict": verdict, "effect": effect, "ci": "per rival, paired (in the effect)"}


def claim_headline(row: dict[str, Any]) -> dict[str, Any]:
  """One world of the headline study (collab/studies/headline.py): the gate against the
  most accurate rival at its calls, paired over the sealed split's problems."""
  g = row["gain"]
  lo, hi = g["mean"] - g["ci95"], g["mean"] + g["ci95"]
  share = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
  effect = (f"gate {_pct(row['gate'])} asking at {100 * row['call_rate']:.0f}% of steps "
            f"({row['calls']:.2f} calls; gap recovered {share(row['gate_gap_recovered'])}) vs "
            f"best rival {row['rival']} {_pct(row['rival_accuracy'])} (gap recovered "
            f"{share(row['rival_gap_recovered'])}); SLM alone {_pct(row['slm_alone'])}, LLM "
            f"alone {_pct(row['llm_alone'])}")
  verdict = HOLDS if lo > 0 else FAILS if hi < 0 else INCONCLUSIVE
  return {"verdict": verdict, "effect": effect,
          "ci": f"{interval(g['mean'], g['ci95'])} points (paired over {row['problems']} "
                "problems)"}
