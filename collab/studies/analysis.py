"""Study analyses: the tables, trends and figures of REPORT.md, from `runner.run_study` output.

Each `analyze_<study>(result, out_dir)` writes out_dir/summary.json, its figures, and
out_dir/report.md (the markdown section REPORT.md includes), and returns the summary.
Accuracies are on held-out test problems; "± x" is a 95% CI (over seeds for gate settings,
over problems for single policies).
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any, Callable

import numpy as np

from collab.studies import stats

# --------------------------------------------------------------------------------- helpers


def _acc(p) -> float:
  return p["accuracy"]["mean"]


def _calls(p) -> float:
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
    correct_N = np.mean([e["per_problem"]["correct"] for e in evals], axis=0)
    mix_keys = sorted(evals[0]["action_mix"])
    out[name] = {
        "slm": rs[0]["slm"], "llm": target, "trained_with": rs[0]["llm"],
        "seeds": [r["seed"] for r in rs], "costs": rs[0]["costs"],
        "budget_target": rs[0]["budget_target"], "granularity": rs[0]["granularity"],
        "step_tokens": rs[0]["step_tokens"],
        "accuracy": stats.spread([_acc(e) for e in evals]),
        "calls": stats.spread([_calls(e) for e in evals]),
        "llm_tokens": stats.spread([e["llm_tokens"]["mean"] for e in evals]),
        "exposed": stats.spread([e["exposed"]["mean"] for e in evals]),
        "train_calls": stats.spread([e.get("train", {}).get("calls", float("nan"))
                                     for e in evals]),
        "action_mix": {k: float(np.mean([e["action_mix"][k] for e in evals]))
                       for k in mix_keys},
        "slm_alone": _acc(base["slm_alone"]), "llm_alone": _acc(base["llm_alone"]),
        "llm_alone_calls": _calls(base["llm_alone"]),
        "gain_vs": {name_b: stats.paired_gain(correct_N, b["per_problem"]["correct"])
                    for name_b, b in base.items()},
        "baselines": base,
    }
    s = out[name]
    s["gain_per_call"] = ((s["accuracy"]["mean"] - s["slm_alone"]) / s["calls"]["mean"]
                          if s["calls"]["mean"] > 0 else float("nan"))
    gap = s["llm_alone"] - s["slm_alone"]
    s["gap_recovered"] = (s["accuracy"]["mean"] - s["slm_alone"]) / gap if gap > 0 else None
  return out


def _share(x: float | None) -> str:
  return "-" if x is None else f"{100 * x:.0f}%"


def _point(s) -> dict[str, float]:
  return {"accuracy": s["accuracy"]["mean"], "calls": s["calls"]["mean"]}


def _pct(x: float, ci: float | None = None) -> str:
  return f"{100 * x:.1f}" + (f" ± {100 * ci:.1f}" if ci is not None else "")


def _strip_baselines(summary: dict) -> dict:
  """Summary without per-problem arrays (they stay in the workdir)."""
  def clean(obj):
    if isinstance(obj, dict):
      return {k: clean(v) for k, v in obj.items() if k != "per_problem"}
    return obj
  return clean(summary)


def _write(out_dir: str, summary: dict, report: str) -> dict:
  os.makedirs(out_dir, exist_ok=True)
  summary = _strip_baselines(summary)
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(report.rstrip() + "\n")
  return summary


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _baseline_curves(ax, policies: dict, x: str = "calls"):
  for family, style in (("random", "o--"), ("threshold", "s:")):
    pts = sorted((p[x]["mean"], 100 * _acc(p)) for p in policies.values()
                 if p["family"] in (family, "slm_alone"))
    ax.plot(*zip(*pts), style, alpha=0.6, label=family)
  for name in ("slm_alone", "llm_alone", "oracle", "every_2", "fixed_0"):
    if name in policies:
      p = policies[name]
      ax.scatter([p[x]["mean"]], [100 * _acc(p)], marker="D", color="dimgray", s=18)
      ax.annotate(name, (p[x]["mean"], 100 * _acc(p)), fontsize=7, xytext=(3, 3),
                  textcoords="offset points")


def _static_table(sets: dict[str, dict]) -> tuple[str, dict]:
  """Per setting: the gate against every static baseline and the random/threshold curves."""
  lines = ["| setting | gate accuracy | calls | beats every static baseline | on or above "
           "random | on or above threshold | gain vs LLM alone | gain vs SLM alone |",
           "|---|---|---|---|---|---|---|---|"]
  out = {}
  for name, s in sets.items():
    d = stats.dominance([_point(s)], s["baselines"])
    out[name] = d
    lost = [k for k, v in d["static"].items() if not v]
    curve = lambda f: "yes" if all(r["on_or_above"] for r in d["curves"][f]) else (  # noqa
        f"no ({d['curves'][f][0]['best_baseline']})")
    g_llm, g_slm = s["gain_vs"]["llm_alone"], s["gain_vs"]["slm_alone"]
    lines.append(
        f"| {name} | {_pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
        f"{s['calls']['mean']:.2f} | {'yes' if not lost else 'no: ' + ', '.join(lost)} | "
        f"{curve('random')} | {curve('threshold')} | {_pct(g_llm['mean'], g_llm['ci95'])} | "
        f"{_pct(g_slm['mean'], g_slm['ci95'])} |")
  return "\n".join(lines), out


# --------------------------------------------------------------------------------- scaling


def analyze_scaling(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Claims: stronger SLMs ask less; stronger LLMs make asking sparser and more informative."""
  sets = settings(result)
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

  plt = _plt()
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
  fig.savefig(os.path.join(out_dir_ready(out_dir), "scaling.png"), dpi=110)
  plt.close(fig)

  table = ["| SLM | LLM | SLM alone | LLM alone | gate accuracy | calls | gain per call | "
           "gap recovered |", "|---|---|---|---|---|---|---|---|"]
  for slm in slms:
    for llm in llms:
      if (slm, llm) in by_pair:
        s = by_pair[(slm, llm)]
        table.append(
            f"| {slm} | {llm} | {_pct(s['slm_alone'])} | {_pct(s['llm_alone'])} | "
            f"{_pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
            f"{s['calls']['mean']:.2f} ± {s['calls']['ci95']:.2f} | "
            f"{100 * s['gain_per_call']:.1f} | {_share(s['gap_recovered'])} |")
  static_md, static = _static_table({f"{s['slm']} x {s['llm']}": s for s in sets.values()})
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
  return _write(out_dir, summary, report)


def _verdict(trends: dict[str, dict], sign: int) -> str:
  held = [k for k, t in trends.items() if t["sign"] == sign]
  against = [k for k, t in trends.items() if t["sign"] == -sign]
  if not trends:
    return "no data"
  return (f"{len(held)}/{len(trends)} significant in the claimed direction"
          + (f", {len(against)} against" if against else ""))


def out_dir_ready(out_dir: str) -> str:
  os.makedirs(out_dir, exist_ok=True)
  return out_dir


# -------------------------------------------------------------------------------- transfer


def analyze_transfer(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """A gate trained with one LLM, run unchanged with others, against gates trained on them."""
  own = settings(result)
  rows, out = [], {}
  for name, src in own.items():
    for run in result["runs"]:
      if run["setting"] != name:
        continue
      for llm in run["evals"]:
        if llm == src["llm"] or f"{name}@{llm}" in out:
          continue
        moved = settings(result, llm)[name]
        direct = next((s for s in own.values() if s["llm"] == llm and s["slm"] == src["slm"]),
                      None)
        entry = {"source": name, "trained_with": src["llm"], "llm": llm,
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
                                    if direct["gain_per_call"] > 0 else None))
        out[f"{name}@{llm}"] = entry
        rows.append(
            f"| {src['llm']} | {llm} | {_pct(moved['accuracy']['mean'], moved['accuracy']['ci95'])}"
            f" at {moved['calls']['mean']:.2f} calls | "
            + (f"{_pct(direct['accuracy']['mean'], direct['accuracy']['ci95'])} at "
               f"{direct['calls']['mean']:.2f} calls | {_share(entry['accuracy_kept'])} | "
               f"{_share(entry['gain_kept'])} | {_share(entry['call_efficiency_kept'])} |"
               if direct is not None else "- | - | - | - |")
            + f" {_pct(moved['slm_alone'])} / {_pct(moved['llm_alone'])} |")
  report = "\n".join([
      "### Transfer to unseen LLMs", "",
      "The gate reads only the SLM's features, so it runs unchanged with any LLM that shares "
      "the tokenizer. Kept = transferred / trained directly on that LLM; gain = accuracy above "
      "SLM alone; call efficiency = gain per call.", "",
      "| trained with | run with | transferred gate | gate trained on it | accuracy kept | "
      "gain kept | call efficiency kept | SLM / LLM alone |", "|---|---|---|---|---|---|---|---|",
      *rows])
  return _write(out_dir, {"transfer": out}, report)


# ----------------------------------------------------------------------------- constraints


def analyze_constraints(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Cost sweeps: Pareto fronts against calls, LLM tokens and exposure; the request mix."""
  sets = settings(result)
  plt = _plt()
  fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
  base = next(iter(sets.values()))["baselines"]
  families = collections.defaultdict(list)
  for name, s in sets.items():
    families[name.split("=")[0]].append((name, s))
  for ax, x in zip(axes[:3], ("calls", "llm_tokens", "exposed")):
    _baseline_curves(ax, base, x)
    for fam, members in families.items():
      pts = sorted((s[x]["mean"], 100 * s["accuracy"]["mean"], 100 * s["accuracy"]["ci95"])
                   for _, s in members)
      ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                  marker="*", markersize=10, capsize=3, label=f"gate: {fam} sweep")
    ax.set(xlabel=f"{x.replace('_', ' ')} per problem", ylabel="accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  names = list(sets)
  kinds = sorted({k for s in sets.values() for k in s["action_mix"]})
  bottom = np.zeros(len(names))
  for k in kinds:
    vals = np.array([sets[n]["action_mix"].get(k, 0.0) for n in names])
    axes[3].bar(range(len(names)), vals, bottom=bottom, label=k)
    bottom += vals
  axes[3].set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
  axes[3].set(ylabel="share of decisions", title="request mix")
  axes[3].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir_ready(out_dir), "constraints.png"), dpi=110)
  plt.close(fig)
  table = ["| setting | accuracy | calls | LLM tokens | private tokens exposed | mix "
           "(self / ask / ask_redacted) |", "|---|---|---|---|---|---|"]
  for name, s in sets.items():
    mix = " / ".join(f"{s['action_mix'].get(k, 0):.2f}" for k in ("self", "ask",
                                                                   "ask_redacted"))
    table.append(f"| {name} | {_pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
                 f"{s['calls']['mean']:.2f} | {s['llm_tokens']['mean']:.1f} | "
                 f"{s['exposed']['mean']:.2f} | {mix} |")
  privacy = _privacy_check(sets)
  static_md, static = _static_table(sets)
  sweep = stats.dominance([_point(s) for s in sets.values()
                           if s["costs"]["per_private_token"] == 0
                           and s["costs"]["per_llm_token"] == 0], base)
  lost = [k for k, v in sweep["static"].items() if not v]
  below = sorted({f"{r['best_baseline']} at {r['gate_calls']:.2f} calls"
                  for rs in sweep["curves"].values() for r in rs if not r["on_or_above"]})
  sweep_text = (
      "Across the call-cost sweep (seed means): the gate has a point with higher accuracy at "
      "equal or fewer calls than " + ("every static baseline" if not lost else
                                      f"every static baseline except {', '.join(lost)}")
      + "; each gate point is " + ("on or above the best random and threshold policy at equal "
                                   "or fewer calls." if not below else
                                   f"on or above random and threshold except: {'; '.join(below)}."))
  report = "\n".join([
      "### Constraints: cost sweeps", "", *table, "", sweep_text, "", privacy["text"], "",
      "![constraints](constraints.png)", "", "Each setting against the baselines:", "",
      static_md])
  return _write(out_dir, {"settings": sets, "privacy": privacy, "dominance": static,
                          "pareto": sweep}, report)


def _privacy_check(sets: dict[str, dict]) -> dict[str, Any]:
  """Done-means of issue 3: a privacy cost halves exposure for < 5 points of accuracy."""
  plain = [s for s in sets.values() if s["costs"]["per_private_token"] == 0]
  private = [s for s in sets.values() if s["costs"]["per_private_token"] > 0]
  if not plain or not private:
    return {"text": "", "pairs": []}
  ref = min(plain, key=lambda s: abs(s["costs"]["per_call"] - private[0]["costs"]["per_call"]))
  pairs, lines = [], []
  for s in private:
    drop = ref["accuracy"]["mean"] - s["accuracy"]["mean"]
    ratio = s["exposed"]["mean"] / ref["exposed"]["mean"] if ref["exposed"]["mean"] else None
    ok = ratio is not None and ratio <= 0.5 and drop < 0.05
    pairs.append({"privacy_cost": s["costs"]["per_private_token"], "exposure_ratio": ratio,
                  "accuracy_drop": drop, "meets_target": ok})
    lines.append(f"Privacy cost {s['costs']['per_private_token']:g}: exposure "
                 f"{ref['exposed']['mean']:.2f} -> {s['exposed']['mean']:.2f} per problem "
                 f"({_share(ratio)} of it), accuracy "
                 f"{_pct(ref['accuracy']['mean'])} -> {_pct(s['accuracy']['mean'])} "
                 f"({'meets' if ok else 'misses'} 'at least halved for < 5 points').")
  return {"text": "\n".join(lines), "pairs": pairs}


# ----------------------------------------------------------------------------- granularity


def analyze_granularity(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Token-level against step-level routing: accuracy per LLM token spent."""
  sets = settings(result)
  table = ["| routing | accuracy | calls | LLM tokens | accuracy points gained per LLM token |",
           "|---|---|---|---|---|"]
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for s in sets.values():
    tokens = s["llm_tokens"]["mean"]
    # Points of accuracy above SLM alone, per LLM token spent.
    s["gain_per_token"] = (100 * (s["accuracy"]["mean"] - s["slm_alone"]) / tokens
                           if tokens else float("nan"))
    label = ("line steps" if s["granularity"] == "line" else f"{s['step_tokens']}-token steps")
    table.append(f"| {label} | {_pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
                 f"{s['calls']['mean']:.2f} | {tokens:.1f} | "
                 f"{s['gain_per_token']:.2f} |")
    ax.errorbar([tokens], [100 * s["accuracy"]["mean"]], yerr=[100 * s["accuracy"]["ci95"]],
                marker="*", markersize=12, capsize=3, label=f"gate, {label}")
  _baseline_curves(ax, next(iter(sets.values()))["baselines"], "llm_tokens")
  ax.set(xlabel="LLM tokens per problem", ylabel="accuracy (%)",
         title="Routing granularity")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir_ready(out_dir), "granularity.png"), dpi=110)
  plt.close(fig)
  report = "\n".join(["### Granularity: token-level against step-level routing", "", *table,
                      "", "![granularity](granularity.png)"])
  return _write(out_dir, {"settings": sets}, report)


# ---------------------------------------------------------------------------------- budget


def analyze_budget(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Budget-targeted gates: target calls (or LLM tokens) against what held-out problems get."""
  sets = settings(result)
  rows, pts = [], []
  for name, s in sets.items():
    bt = s["budget_target"]
    key, target = (("calls", bt["calls"]) if bt["calls"] > 0 else ("llm_tokens",
                                                                    bt["llm_tokens"]))
    got = s[key]
    pts.append((key, target, got["mean"], got["ci95"]))
    rows.append(f"| {key} | {target:g} | {got['mean']:.2f} ± {got['ci95']:.2f} | "
                f"{s['train_calls']['mean']:.2f} | "
                f"{_pct(s['accuracy']['mean'], s['accuracy']['ci95'])} |")
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 4.5))
  for key in sorted({p[0] for p in pts}):
    sel = sorted(p for p in pts if p[0] == key)
    ax.errorbar([p[1] for p in sel], [p[2] for p in sel], yerr=[p[3] for p in sel],
                marker="o", capsize=3, label=key)
    hi = max(max(p[1], p[2]) for p in sel)
    ax.plot([0, hi], [0, hi], "k:", alpha=0.5)
  ax.set(xlabel="target per problem", ylabel="achieved on held-out problems",
         title="Budget-targeted gates")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir_ready(out_dir), "budget.png"), dpi=110)
  plt.close(fig)
  report = "\n".join([
      "### Budget-targeted gates (dual ascent on the price)", "",
      "| budget | target per problem | achieved, held-out (± seeds) | achieved, last training "
      "batch (calls) | accuracy |", "|---|---|---|---|---|", *rows, "",
      "![budget](budget.png)"])
  return _write(out_dir, {"settings": sets, "points": pts}, report)


ANALYSES: dict[str, Callable[[dict, str], dict]] = {
    "scaling": analyze_scaling, "transfer": analyze_transfer,
    "constraints": analyze_constraints, "granularity": analyze_granularity,
    "budget": analyze_budget}


# ------------------------------------------------------------------------------- frontier


def analyze_frontier(results_dir: str, out_dir: str,
                     studies: tuple[str, ...] = ("constraints", "budget")) -> dict[str, Any]:
  """Every gate of one pair (cost sweeps and budget targets, seed means) against the static
  baselines and the random / threshold curves: the done-means of learned help-seeking."""
  points = collections.defaultdict(list)
  bases = {}
  for study in studies:
    path = os.path.join(results_dir, study, "summary.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      sets = json.load(f)["settings"]
    for name, s in sets.items():
      if s["costs"]["per_private_token"] or s["llm"] != s["trained_with"]:
        continue
      pair = f"{s['slm']} x {s['llm']}"
      points[pair].append({"accuracy": s["accuracy"]["mean"], "calls": s["calls"]["mean"],
                           "setting": f"{study}: {name}", "seeds": len(s["seeds"])})
      bases[pair] = s["baselines"]
  out, lines = {}, []
  for pair, pts in points.items():
    d = stats.dominance(pts, bases[pair])
    out[pair] = {"points": pts, "dominance": d}
    lines += [f"**{pair}**, {len(pts)} gate settings:", "",
              "| static baseline | accuracy | calls | beaten by a gate at equal or fewer calls |",
              "|---|---|---|---|"]
    for name, beaten in d["static"].items():
      b = bases[pair][name]
      lines.append(f"| {name} | {_pct(_acc(b))} | {_calls(b):.2f} | "
                   f"{'yes' if beaten else 'no'} |")
    lines += ["", "| gate setting (seeds) | accuracy | calls | best random at <= calls | "
              "best threshold at <= calls |", "|---|---|---|---|---|"]
    for p, r, t in zip(pts, d["curves"]["random"], d["curves"]["threshold"]):
      cell = lambda row: (f"{row['best_baseline']} {_pct(row['baseline_accuracy'])}"  # noqa
                          + ("" if row["on_or_above"] else " (**above the gate**)"))
      lines.append(f"| {p['setting']} ({p['seeds']}) | {_pct(p['accuracy'])} | "
                   f"{p['calls']:.2f} | {cell(r)} | {cell(t)} |")
    lines.append("")
  report = "\n".join(["### Dynamic against static: every gate of a pair", "",
                      "Gate points from the cost sweeps and the budget targets (seed means).",
                      "", *lines])
  return _write(out_dir, {"pairs": out}, report)
