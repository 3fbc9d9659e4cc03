"""Study analyses: the tables, trends and figures of REPORT.md, from `runner.run_study` output.

Each `analyze_<study>(result, out_dir)` writes out_dir/summary.json, its figures, and
out_dir/report.md (the markdown section REPORT.md includes), and returns the summary.
Accuracies are on held-out test problems; "± x" is a 95% CI (over seeds for gate settings,
over problems for single policies).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from collab.studies import stats
from collab.studies import summaries as sm
from collab.studies.pareto import analyze_constraints, analyze_frontier  # noqa: F401
from collab.studies.headline import analyze_headline
from collab.studies.worlds import analyze_worlds

# --------------------------------------------------------------------------------- scaling


def analyze_scaling(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Claims: stronger SLMs ask less; stronger LLMs make asking sparser and more informative."""
  sets = sm.settings(result)
  slms = sorted({s["slm"] for s in sets.values()}, key=lambda m: min(
      s["slm_alone"] for s in sets.values() if s["slm"] == m))
  llms = sorted({s["llm"] for s in sets.values()}, key=lambda m: min(
      s["llm_alone"] for s in sets.values() if s["llm"] == m))
  by_pair = {(s["slm"], s["llm"]): s for s in sets.values()}
  slm_strength = {m: float(np.mean([s["slm_alone"] for s in sets.values() if s["slm"] == m]))
                  for m in slms}
  llm_strength = {m: float(np.mean([s["llm_alone"] for s in sets.values() if s["llm"] == m]))
                  for m in llms}

  def per_seed(s, key):
    return s[key]["values"]

  def gpc_seeds(s):
    return [(a - s["slm_alone"]) / c if c > 0 else 0.0
            for a, c in zip(s["accuracy"]["values"], s["calls"]["values"])]

  claims = {"slm_more_self_reliant": {}, "llm_sparser": {}, "llm_more_informative": {}}
  for llm in llms:  # fixed LLM, SLM strength varies: calls should fall
    xs, ys = [], []
    for slm in slms:
      if (slm, llm) in by_pair:
        v = per_seed(by_pair[(slm, llm)], "calls")
        xs += [slm_strength[slm]] * len(v)
        ys += v
    claims["slm_more_self_reliant"][llm] = stats.trend(xs, ys)
  for slm in slms:  # fixed SLM, LLM strength varies: fewer calls, more gain per call
    xs, calls, gpc = [], [], []
    for llm in llms:
      if (slm, llm) in by_pair:
        s = by_pair[(slm, llm)]
        calls += per_seed(s, "calls")
        gpc += gpc_seeds(s)
        xs += [llm_strength[llm]] * len(s["calls"]["values"])
    claims["llm_sparser"][slm] = stats.trend(xs, calls)
    claims["llm_more_informative"][slm] = stats.trend(xs, gpc)
  verdict = {
      "slm_more_self_reliant": _verdict(claims["slm_more_self_reliant"], -1),
      "llm_sparser": _verdict(claims["llm_sparser"], -1),
      "llm_more_informative": _verdict(claims["llm_more_informative"], +1)}

  plt = sm.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for llm in llms:
    pts = [(100 * slm_strength[m], by_pair[(m, llm)]["calls"]) for m in slms
           if (m, llm) in by_pair]
    axes[0].errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                     yerr=[p[1]["ci95"] for p in pts], marker="o", capsize=3, label=llm)
  axes[0].set(xlabel="SLM alone accuracy (%)", ylabel="gate calls per problem",
              title="Stronger SLM: fewer calls?")
  for slm in slms:
    pts = [(100 * llm_strength[m], by_pair[(slm, m)]) for m in llms if (slm, m) in by_pair]
    axes[1].errorbar([p[0] for p in pts], [p[1]["calls"]["mean"] for p in pts],
                     yerr=[p[1]["calls"]["ci95"] for p in pts], marker="o", capsize=3,
                     label=slm)
    axes[2].plot([p[0] for p in pts], [100 * p[1]["gain_per_call"] for p in pts], "o-",
                 label=slm)
  axes[1].set(xlabel="LLM alone accuracy (%)", ylabel="gate calls per problem",
              title="Stronger LLM: sparser calls?")
  axes[2].set(xlabel="LLM alone accuracy (%)", ylabel="accuracy gained per call (points)",
              title="Stronger LLM: more informative calls?")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(sm.out_dir_ready(out_dir), "scaling.png"), dpi=110)
  plt.close(fig)

  table = ["| SLM | LLM | SLM alone | LLM alone | gate accuracy | calls | gain per call | "
           "gap recovered |", "|---|---|---|---|---|---|---|---|"]
  for slm in slms:
    for llm in llms:
      if (slm, llm) in by_pair:
        s = by_pair[(slm, llm)]
        table.append(
            f"| {slm} | {llm} | {sm.pct(s['slm_alone'])} | {sm.pct(s['llm_alone'])} | "
            f"{sm.pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
            f"{s['calls']['mean']:.2f} ± {s['calls']['ci95']:.2f} | "
            f"{100 * s['gain_per_call']:.1f} | {sm.share(s['gap_recovered'])} |")
  static_md, static = sm.static_table({f"{s['slm']} x {s['llm']}": s for s in sets.values()})
  trend_md = ["| claim | held by | slopes (95% CI) |", "|---|---|---|"]
  for claim, per in claims.items():
    slopes = "; ".join(f"{k}: {t['slope']:+.3g} ± {t['ci95']:.2g}" for k, t in per.items())
    trend_md.append(f"| {claim} | {verdict[claim]} | {slopes} |")
  seeds = sorted({len(s["seeds"]) for s in sets.values()})
  report = "\n".join([
      "### Scaling grid", "",
      f"{len(slms)} SLMs x {len(llms)} LLMs, a gate per pair, seeds per pair: {seeds}. "
      "Gain per call = (gate accuracy - SLM alone) / calls, in points; gap recovered = share "
      "of the SLM-to-LLM accuracy gap the gate closes.", "", *table, "",
      "Trend tests (OLS slope over seeds; x = standalone accuracy of the model that varies):",
      "", *trend_md, "", "![scaling](scaling.png)", "",
      "### Dynamic against static, every pair", "", static_md])
  summary = {"pairs": {f"{k[0]}__{k[1]}": v for k, v in by_pair.items()}, "claims": claims,
             "verdict": verdict, "dominance": static, "slm_strength": slm_strength,
             "llm_strength": llm_strength}
  return sm.write(out_dir, summary, report)


def _verdict(trends: dict[str, dict], sign: int) -> str:
  held = [k for k, t in trends.items() if t["sign"] == sign]
  against = [k for k, t in trends.items() if t["sign"] == -sign]
  if not trends:
    return "no data"
  return (f"{len(held)}/{len(trends)} significant in the claimed direction"
          + (f", {len(against)} against" if against else ""))


# -------------------------------------------------------------------------------- transfer


def analyze_transfer(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """A gate trained with one LLM, run unchanged with others, against gates trained on them."""
  own = sm.settings(result)
  rows, out = [], {}
  for name, src in own.items():
    for run in result["runs"]:
      if run["setting"] != name:
        continue
      for llm in run["evals"]:
        if llm in src["trained_with"].split("+") or f"{name}@{llm}" in out:
          continue
        moved = sm.settings(result, llm)[name]
        # The direct gate: trained with that LLM alone.
        direct = next((dict(s, name=n) for n, s in own.items()
                       if s["trained_with"] == llm and s["slm"] == src["slm"]), None)
        entry = {"source": name, "trained_with": src["trained_with"], "llm": llm,
                 "transfer": {k: moved[k] for k in ("accuracy", "calls", "llm_tokens",
                                                    "gain_per_call")},
                 "slm_alone": moved["slm_alone"], "llm_alone": moved["llm_alone"]}
        if direct is not None:
          d_gain = direct["accuracy"]["mean"] - direct["slm_alone"]
          t_gain = moved["accuracy"]["mean"] - moved["slm_alone"]
          entry.update(
              direct={k: direct[k] for k in ("accuracy", "calls", "llm_tokens",
                                              "gain_per_call")},
              accuracy_kept=(moved["accuracy"]["mean"] / direct["accuracy"]["mean"]
                             if direct["accuracy"]["mean"] > 0 else None),
              gain_kept=t_gain / d_gain if d_gain > 0 else None,
              call_efficiency_kept=(moved["gain_per_call"] / direct["gain_per_call"]
                                    if direct["gain_per_call"] > 0 else None),
              accuracy_diff_paired=_paired_diff(result, name, direct["name"], llm))
        out[f"{name}@{llm}"] = entry
        rows.append(
            f"| {src['trained_with']} | {llm} | {sm.pct(moved['accuracy']['mean'], moved['accuracy']['ci95'])}"
            f" at {moved['calls']['mean']:.2f} calls | "
            + (f"{sm.pct(direct['accuracy']['mean'], direct['accuracy']['ci95'])} at "
               f"{direct['calls']['mean']:.2f} calls | "
               f"{_points(entry['accuracy_diff_paired'])} | {sm.share(entry['accuracy_kept'])} | "
               f"{sm.share(entry['gain_kept'])} | {sm.share(entry['call_efficiency_kept'])} |"
               if direct is not None else "- | - | - | - | - |")
            + f" {sm.pct(moved['slm_alone'])} / {sm.pct(moved['llm_alone'])} |")
  report = "\n".join([
      "### Transfer to unseen LLMs", "",
      "The gate reads only the SLM's features, so it runs unchanged with any LLM (one with "
      "another tokenizer reads the text at step boundaries). Kept = transferred / trained "
      "directly on that LLM; gain = accuracy above SLM alone; call efficiency = gain per call; "
      "paired difference = transferred minus direct accuracy on the same problems, seed with "
      "seed, in points with a 95% CI.", "",
      "| trained with | run with | transferred gate | gate trained on it | paired difference | "
      "accuracy kept | gain kept | call efficiency kept | SLM / LLM alone |",
      "|---|---|---|---|---|---|---|---|---|",
      *rows])
  return sm.write(out_dir, {"transfer": out}, report)


def _paired_diff(result: dict[str, Any], source: str, direct: str, llm: str
                 ) -> dict[str, float] | None:
  """Accuracy of `source`'s gates run with `llm` minus `direct`'s (trained on it), problem by
  problem and seed by seed (stats.paired_gain over every seed's problems); None when the
  seeds or problems do not match."""
  def per_problem(setting):
    return {r["seed"]: r["evals"][llm]["per_problem"]["correct"] for r in result["runs"]
            if r["setting"] == setting and llm in r["evals"]}
  moved, own = per_problem(source), per_problem(direct)
  seeds = sorted(set(moved) & set(own))
  if not seeds or any(len(moved[s]) != len(own[s]) for s in seeds):
    return None
  return stats.paired_gain([c for s in seeds for c in moved[s]],
                           [c for s in seeds for c in own[s]])


def _points(diff: dict[str, float] | None) -> str:
  return "-" if diff is None else f"{100 * diff['mean']:+.1f} [±{100 * diff['ci95']:.1f}]"


# ----------------------------------------------------------------------------- granularity


def analyze_granularity(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Token-level against step-level routing: accuracy per LLM token spent."""
  sets = sm.settings(result)
  table = ["| routing | accuracy | calls | LLM tokens | accuracy points gained per LLM token |",
           "|---|---|---|---|---|"]
  plt = sm.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for s in sets.values():
    tokens = s["llm_tokens"]["mean"]
    # Points of accuracy above SLM alone, per LLM token spent.
    s["gain_per_token"] = (100 * (s["accuracy"]["mean"] - s["slm_alone"]) / tokens
                           if tokens else float("nan"))
    label = ("line steps" if s["granularity"] == "line" else f"{s['step_tokens']}-token steps")
    table.append(f"| {label} | {sm.pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
                 f"{s['calls']['mean']:.2f} | {tokens:.1f} | "
                 f"{s['gain_per_token']:.2f} |")
    ax.errorbar([tokens], [100 * s["accuracy"]["mean"]], yerr=[100 * s["accuracy"]["ci95"]],
                marker="*", markersize=12, capsize=3, label=f"gate, {label}")
  sm.baseline_curves(ax, next(iter(sets.values()))["baselines"], "llm_tokens")
  ax.set(xlabel="LLM tokens per problem", ylabel="accuracy (%)",
         title="Routing granularity")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(sm.out_dir_ready(out_dir), "granularity.png"), dpi=110)
  plt.close(fig)
  report = "\n".join(["### Granularity: token-level against step-level routing", "", *table,
                      "", "![granularity](granularity.png)"])
  return sm.write(out_dir, {"settings": sets}, report)


# ---------------------------------------------------------------------------------- budget


MODE_COLORS = {"dual": "tab:green", "mixture": "tab:purple", "price": "tab:red"}


def analyze_budget(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Budget-targeted gates: target calls (or LLM tokens) against what held-out problems get,
  and the accuracy each mode buys at the calls it spends (beside random and threshold)."""
  sets = sm.settings(result)
  rows, pts = [], []
  for name, s in sets.items():
    bt = s["budget_target"]
    key, target = (("calls", bt["calls"]) if bt["calls"] > 0 else ("llm_tokens",
                                                                    bt["llm_tokens"]))
    got = s[key]
    mode = bt.get("mode", "dual")
    pts.append((key, target, got["mean"], got["ci95"], mode))
    price = (s["costs"]["per_call"] if mode == "mixture" else s["train_price"]["mean"])
    rows.append(f"| {key} | {mode} | {target:g} | "
                f"{got['mean']:.2f} ± {got['ci95']:.2f} | "
                f"{s['train_calls']['mean']:.2f} | {price:.3g} | "
                f"{sm.pct(s['accuracy']['mean'], s['accuracy']['ci95'])} |")
  plt = sm.pyplot()
  keys = sorted({p[0] for p in pts})  # a panel per budget (calls, LLM tokens), then accuracy
  fig, axes = plt.subplots(1, len(keys) + 1, figsize=(5 * (len(keys) + 1), 4.5))
  for key, ax in zip(keys, axes):
    for mode in sorted({p[4] for p in pts if p[0] == key}):
      sel = sorted(p for p in pts if p[0] == key and p[4] == mode)
      ax.errorbar([p[1] for p in sel], [p[2] for p in sel], yerr=[p[3] for p in sel],
                  marker="o", capsize=3, label=mode, color=MODE_COLORS.get(mode))
    hi = max(max(p[1], p[2]) for p in pts if p[0] == key)
    ax.plot([0, hi], [0, hi], "k:", alpha=0.5)
    ax.set(xlabel=f"target {key} per problem", ylabel="achieved on the test split",
           title=f"Budget-targeted gates: {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  ax_acc = axes[-1]
  sm.baseline_curves(ax_acc, next(iter(sets.values()))["baselines"], "calls")
  for mode in sorted({p[4] for p in pts}):
    sel = sorted((s["calls"]["mean"], 100 * s["accuracy"]["mean"], 100 * s["accuracy"]["ci95"])
                 for s in sets.values() if s["budget_target"].get("mode", "dual") == mode)
    ax_acc.errorbar([p[0] for p in sel], [p[1] for p in sel], yerr=[p[2] for p in sel],
                    marker="*", markersize=10, capsize=3, linestyle="none", label=mode,
                    color=MODE_COLORS.get(mode))
  ax_acc.set(xlabel="LLM calls per problem (test)", ylabel="accuracy (%)",
             title="What each target buys", ylim=(-2, 105))
  ax_acc.grid(alpha=0.3)
  ax_acc.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(sm.out_dir_ready(out_dir), "budget.png"), dpi=110)
  plt.close(fig)
  report = "\n".join([
      "### Budget-targeted gates", "",
      "Mode dual: dual ascent on the price in training; 'in training' is the last training "
      "batch, the price the dual variable's last value. Mode mixture: a gate trained at a "
      "fixed price, used on a calibrated share of the problems (SLM alone on the rest); 'in "
      "training' is the gate's own spend, before mixing. Mode price: one gate per seed trained "
      "over a range of prices it is told, told the price (bisection) at which it meets the "
      "target on held-out training problems; 'in training' is its spend there. Achieved: on "
      "the test split.", "",
      "| budget | mode | target per problem | achieved, test split (± seeds) | achieved in "
      "training (calls) | call price (mean) | accuracy |", "|---|---|---|---|---|---|---|",
      *rows, "",
      "![budget](budget.png)"])
  return sm.write(out_dir, {"settings": sets, "points": pts}, report)


ANALYSES: dict[str, Callable[[dict, str], dict]] = {
    "scaling": analyze_scaling, "transfer": analyze_transfer,
    "transfer_tokenizers": analyze_transfer,
    "constraints": analyze_constraints, "granularity": analyze_granularity,
    "budget": analyze_budget, "worlds": analyze_worlds, "headline": analyze_headline}
