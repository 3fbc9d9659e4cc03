"""The worlds study: the gate against its rivals in each harder world (docs/worlds.md).

Per world: SLM alone, LLM alone, the hindsight oracle, the gate (± over seeds), the share of
the SLM-to-LLM gap it recovers, and its paired gain over the threshold, router and line-kind
best points that spend no more calls per problem (SLM alone is every curve's 0-call end).
"""
from __future__ import annotations

import os
from typing import Any

from collab.studies import stats
from collab.studies import summaries as sm

RIVALS = ("threshold", "router", "line_kind")


def analyze_worlds(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  sets = sm.settings(result)
  rows, rivals = [], {}
  for name, s in sets.items():
    base = s["baselines"]
    rivals[name] = {}
    cells = []
    for family in RIVALS:
      if not any(b.get("family") == family for b in base.values()):
        cells.append("n/a")  # not run in this world (the line-kind rule on word problems)
        continue
      rival, _ = stats.best_at_or_below(base, (family,), s["calls"]["mean"])
      rivals[name][family] = rival
      if rival is None:
        cells.append("-")
        continue
      g = s["gain_vs"][rival]
      cells.append(f"{sm.pct(g['mean'], g['ci95'])} ({rival}, "
                   f"{sm.calls_of(base[rival]):.2f} calls)")
    oracle = sm.pct(sm.accuracy_of(base["oracle"])) if "oracle" in base else "-"
    rows.append(f"| {name} | {s['slm']} x {s['llm']} | {sm.pct(s['slm_alone'])} | "
                f"{sm.pct(s['llm_alone'])} | {oracle} | "
                f"{sm.pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
                f"{s['calls']['mean']:.2f} | {sm.share(s['gap_recovered'])} | "
                + " | ".join(cells) + " |")
  plot_settings(sets, os.path.join(sm.out_dir_ready(out_dir), "worlds.png"))
  report = "\n".join([
      "### Worlds where when-to-ask is hard to judge", "",
      "Gain: the gate's paired accuracy gain (± 95% CI over problems, seeds pooled) over the "
      "most accurate policy of each family that spends no more calls per problem.", "",
      "| world | pair | SLM alone | LLM alone | oracle | gate | calls | gap recovered | "
      "vs threshold | vs router | vs line kinds |", "|---|---|---|---|---|---|---|---|---|---|---|",
      *rows, "", "![worlds](worlds.png)"])
  return sm.write(out_dir, {"settings": sets, "rivals": rivals}, report)


def plot_settings(sets: dict[str, dict], path: str) -> None:
  """One panel per setting: its rivals' curves and the gate's point (± seeds)."""
  plt = sm.pyplot()
  fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4), squeeze=False)
  for ax, (name, s) in zip(axes[0], sets.items()):
    sm.baseline_curves(ax, s["baselines"], "calls")
    ax.errorbar([s["calls"]["mean"]], [100 * s["accuracy"]["mean"]],
                yerr=[100 * s["accuracy"]["ci95"]], marker="*", markersize=12, capsize=3,
                color="tab:red", label="gate")
    ax.set(xlabel="LLM calls per problem", ylabel="accuracy (%)", title=name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
