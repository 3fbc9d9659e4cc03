"""What every study analysis shares: gate settings summarised over seeds, number formats,
the baseline curves of a figure, the static-baseline table, and writing summary + report.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any

import numpy as np

from collab.studies import stats


def accuracy_of(p) -> float:
  return p["accuracy"]["mean"]


def calls_of(p) -> float:
  return p["calls"]["mean"]


def settings(result: dict[str, Any], llm: str | None = None) -> dict[str, dict[str, Any]]:
  """Runs grouped by setting (seeds pooled), evaluated with `llm` (default: their own)."""
  groups = collections.defaultdict(list)
  for r in result["runs"]:
    groups[r["setting"]].append(r)
  out = {}
  for name, rs in groups.items():
    target = llm or rs[0]["llm"]
    evals = [r["evals"][target] for r in rs if target in r["evals"]]
    if not evals:
      continue
    base = result["baselines"][rs[0]["baselines"][target]]["policies"]
    capped_key = rs[0].get("baselines_capped", {}).get(target)
    correct_N = np.mean([e["per_problem"]["correct"] for e in evals], axis=0)
    mix_keys = sorted(evals[0]["action_mix"])
    out[name] = {
        "slm": rs[0]["slm"], "llm": target,
        # '+'-joined when the gate trained with several LLMs (its first is its `llm`).
        "trained_with": "+".join(rs[0].get("train_llms", [rs[0]["llm"]])),
        "seeds": [r["seed"] for r in rs], "costs": rs[0]["costs"],
        "budget_target": rs[0]["budget_target"], "granularity": rs[0]["granularity"],
        "step_tokens": rs[0]["step_tokens"],
        "accuracy": stats.spread([accuracy_of(e) for e in evals]),
        "calls": stats.spread([calls_of(e) for e in evals]),
        "llm_tokens": stats.spread([e["llm_tokens"]["mean"] for e in evals]),
        "exposed": stats.spread([e["exposed"]["mean"] for e in evals]),
        "train_calls": stats.spread([e.get("train", {}).get("calls", float("nan"))
                                     for e in evals]),
        # The call price at the end: a dual variable's, or a calibrated one (else NaN).
        "train_price": stats.spread([e.get("train", {}).get("cost/per_call", float("nan"))
                                     for e in evals]),
        "action_mix": {k: float(np.mean([e["action_mix"][k] for e in evals]))
                       for k in mix_keys},
        "slm_alone": accuracy_of(base["slm_alone"]), "llm_alone": accuracy_of(base["llm_alone"]),
        "llm_alone_calls": calls_of(base["llm_alone"]),
        "gain_vs": {name_b: stats.paired_gain(correct_N, b["per_problem"]["correct"])
                    for name_b, b in base.items()},
        "baselines": base,
        # Each seed's per-problem correctness (kept out of summary.json, as every per_problem).
        "per_problem": {"correct_by_seed": [e["per_problem"]["correct"] for e in evals]},
        # A gate under a hard call budget: the baselines under the same budget (else None).
        "baselines_capped": (result["baselines"][capped_key]["policies"] if capped_key
                             else None),
        "budget": rs[0].get("budget"),
    }
    s = out[name]
    s["gain_per_call"] = ((s["accuracy"]["mean"] - s["slm_alone"]) / s["calls"]["mean"]
                          if s["calls"]["mean"] > 0 else float("nan"))
    gap = s["llm_alone"] - s["slm_alone"]
    s["gap_recovered"] = (s["accuracy"]["mean"] - s["slm_alone"]) / gap if gap > 0 else None
  return out


def share(x: float | None) -> str:
  return "-" if x is None else f"{100 * x:.0f}%"


def steps_share(rate: float | None) -> str:
  """The share of steps a headline gate is calibrated to ask at, in words (0.25 unless set)."""
  return "a quarter" if rate in (None, 0.25) else f"{100 * rate:g}%"


def point(s) -> dict[str, float]:
  return {"accuracy": s["accuracy"]["mean"], "calls": s["calls"]["mean"]}


def pct(x: float, ci: float | None = None) -> str:
  return f"{100 * x:.1f}" + (f" ± {100 * ci:.1f}" if ci is not None else "")


def strip_baselines(summary: dict) -> dict:
  """Summary without per-problem arrays (they stay in the workdir)."""
  def clean(obj):
    if isinstance(obj, dict):
      return {k: clean(v) for k, v in obj.items() if k != "per_problem"}
    return obj
  return clean(summary)


def write(out_dir: str, summary: dict, report: str) -> dict:
  os.makedirs(out_dir, exist_ok=True)
  summary = strip_baselines(summary)
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(report.rstrip() + "\n")
  return summary


def pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def baseline_curves(ax, policies: dict, x: str = "calls"):
  for family, style in (("random", "o--"), ("threshold", "s:"), ("router", "v-."),
                        ("line_kind", "^-")):
    if not any(p["family"] == family for p in policies.values()):
      continue  # the fitted baselines (router, line kinds) may be off
    pts = sorted((p[x]["mean"], 100 * accuracy_of(p)) for p in policies.values()
                 if p["family"] in (family, "slm_alone"))
    ax.plot(*zip(*pts), style, alpha=0.6, label=family)
  for name in ("slm_alone", "llm_alone", "oracle", "every_2", "fixed_0"):
    if name in policies:
      p = policies[name]
      ax.scatter([p[x]["mean"]], [100 * accuracy_of(p)], marker="D", color="dimgray", s=18)
      ax.annotate(name, (p[x]["mean"], 100 * accuracy_of(p)), fontsize=7, xytext=(3, 3),
                  textcoords="offset points")


def static_table(sets: dict[str, dict]) -> tuple[str, dict]:
  """Per setting: the gate against every static baseline and the random/threshold curves."""
  lines = ["'no: X' names the static baselines that no gate point beats at equal or fewer "
           "calls. A setting's gate is one operating point, so a baseline that spends fewer "
           "calls than it is never beaten here, however low its accuracy; price sweeps compare "
           "at every call rate.", "",
           "| setting | gate accuracy | calls | beats every static baseline | on or above "
           "random | on or above threshold | gain vs LLM alone | gain vs SLM alone |",
           "|---|---|---|---|---|---|---|---|"]
  out = {}
  for name, s in sets.items():
    d = stats.dominance([point(s)], s.get("baselines_capped") or s["baselines"])
    out[name] = d
    lost = [k for k, v in d["static"].items() if not v]
    curve = lambda f: "yes" if all(r["on_or_above"] for r in d["curves"][f]) else (  # noqa
        f"no ({d['curves'][f][0]['best_baseline']})")
    g_llm, g_slm = s["gain_vs"]["llm_alone"], s["gain_vs"]["slm_alone"]
    lines.append(
        f"| {name} | {pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
        f"{s['calls']['mean']:.2f} | {'yes' if not lost else 'no: ' + ', '.join(lost)} | "
        f"{curve('random')} | {curve('threshold')} | {pct(g_llm['mean'], g_llm['ci95'])} | "
        f"{pct(g_slm['mean'], g_slm['ci95'])} |")
  return "\n".join(lines), out


def out_dir_ready(out_dir: str) -> str:
  os.makedirs(out_dir, exist_ok=True)
  return out_dir
