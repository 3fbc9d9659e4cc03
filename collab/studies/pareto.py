"""Analyses of accuracy against cost: the constraints study's cost sweeps (calls, LLM tokens,
private tokens exposed) and the pair-level frontier of every gate against the baselines.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any

import numpy as np

from collab.studies import stats
from collab.studies import summaries as sm


# ----------------------------------------------------------------------------- constraints


def analyze_constraints(result: dict[str, Any], out_dir: str) -> dict[str, Any]:
  """Cost sweeps: Pareto fronts against calls, LLM tokens and exposure; the request mix."""
  sets = sm.settings(result)
  plt = sm.pyplot()
  fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
  base = next(iter(sets.values()))["baselines"]
  families = collections.defaultdict(list)
  for name, s in sets.items():
    families[name.split("=")[0]].append((name, s))
  for ax, x in zip(axes[:3], ("calls", "llm_tokens", "exposed")):
    sm.baseline_curves(ax, base, x)
    for fam, members in families.items():
      pts = sorted((s[x]["mean"], 100 * s["accuracy"]["mean"], 100 * s["accuracy"]["ci95"])
                   for _, s in members)
      line = ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                         marker="*", markersize=10, capsize=3, label=f"gate: {fam} sweep")
      # Each seed's point too: seeds of one price can sit at different costs, and their mean
      # (with a t interval over 3 seeds) hides where each gate really operates.
      seeds = [(v, 100 * a) for _, s in members
               for v, a in zip(s[x]["values"], s["accuracy"]["values"])]
      ax.scatter(*zip(*seeds), s=12, alpha=0.5, color=line[0].get_color())
    ax.set(xlabel=f"{x.replace('_', ' ')} per problem", ylabel="accuracy (%)", ylim=(-3, 105))
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
  fig.savefig(os.path.join(sm.out_dir_ready(out_dir), "constraints.png"), dpi=110)
  plt.close(fig)
  table = ["| setting | accuracy | calls | LLM tokens | private tokens exposed | mix "
           "(self / ask / ask_redacted) |", "|---|---|---|---|---|---|"]
  for name, s in sets.items():
    mix = " / ".join(f"{s['action_mix'].get(k, 0):.2f}" for k in ("self", "ask",
                                                                   "ask_redacted"))
    table.append(f"| {name} | {sm.pct(s['accuracy']['mean'], s['accuracy']['ci95'])} | "
                 f"{s['calls']['mean']:.2f} | {s['llm_tokens']['mean']:.1f} | "
                 f"{s['exposed']['mean']:.2f} | {mix} |")
  privacy = _privacy_check(sets)
  static_md, static = sm.static_table(sets)
  call_only = {n: s for n, s in sets.items()
               if s["costs"]["per_private_token"] == 0 and s["costs"]["per_llm_token"] == 0}
  # The call-cost sweep: gates free to spend (a fixed price or a price they are told). Gates
  # under a hard budget are compared with the baselines under the same budget instead.
  call_sets = {n: s for n, s in call_only.items() if s.get("baselines_capped") is None}
  capped = {n: _capped_check(s) for n, s in call_only.items()
            if s.get("baselines_capped") is not None}
  sweep = stats.dominance([sm.point(s) for s in call_sets.values()], base)
  # Seeds of one price can land at different call rates (a price-conditioned gate especially):
  # each seed's point is also checked on its own, so averaging does not blur the curve.
  seed_points = _seed_points(call_sets)
  per_seed = stats.dominance(seed_points, base)
  per_seed["points"] = seed_points
  per_seed["below"] = _paired_shortfalls(call_sets, per_seed, base)
  report = "\n".join([
      "### Constraints: cost sweeps", "", *table, "",
      *([_sweep_text("seed means", sweep), "", _sweep_text("each seed", per_seed), ""]
        if call_sets else []),  # a token or privacy sweep alone has no call-sweep points
      *[c["text"] for c in capped.values()], "", privacy["text"], "",
      "![constraints](constraints.png)", "", "Each setting against the baselines (a setting "
      "with a hard call budget against the baselines under the same budget):", "",
      static_md])
  return sm.write(out_dir, {"settings": sets, "privacy": privacy, "dominance": static,
                            "pareto": sweep, "pareto_per_seed": per_seed, "capped": capped},
                  report)


def _seed_points(sets: dict[str, dict]) -> list[dict[str, Any]]:
  return [{"accuracy": a, "calls": c, "setting": n, "seed": seed}
          for n, s in sets.items()
          for seed, a, c in zip(s["seeds"], s["accuracy"]["values"], s["calls"]["values"])]


def _paired_shortfalls(sets: dict[str, dict], per_seed: dict[str, Any],
                       base: dict[str, dict]) -> list[dict[str, Any]]:
  """Each seed point under the random or threshold curve: by how much, paired over the same
  problems (gate minus that baseline, with a 95% CI), so a shortfall of a problem or two can
  be told from a real one."""
  correct = [c for s in sets.values() for c in s["per_problem"]["correct_by_seed"]]
  out = []
  for family, rows in per_seed["curves"].items():
    for point, row, gate_N in zip(per_seed["points"], rows, correct):
      if not row["on_or_above"]:
        gain = stats.paired_gain(gate_N, base[row["best_baseline"]]["per_problem"]["correct"])
        out.append(dict(point, family=family, baseline=row["best_baseline"], gain=gain))
  return out


def _capped_check(s: dict[str, Any]) -> dict[str, Any]:
  """A gate under a hard budget of calls per problem (seed mean and each seed) against the
  random and threshold policies run under the same budget."""
  base = s["baselines_capped"]
  mean = stats.dominance([sm.point(s)], base)
  per_seed = stats.dominance(_seed_points({"": s}), base)
  on = {f: sum(r["on_or_above"] for r in per_seed["curves"][f]) for f in stats.CURVE_FAMILIES}
  t = mean["curves"]["threshold"][0]
  text = (f"Hard budget of {s['budget']} call(s) per problem: the gate gets "
          f"{sm.pct(s['accuracy']['mean'])}% at {s['calls']['mean']:.2f} calls; under the same "
          f"budget the best threshold at <= its calls is {t['best_baseline']} with "
          f"{sm.pct(t['baseline_accuracy'])}%. Seeds on or above the best random policy: "
          f"{on['random']} of {len(s['seeds'])}; the best threshold: {on['threshold']} of "
          f"{len(s['seeds'])}.")
  return {"budget": s["budget"], "mean": mean, "per_seed": per_seed, "text": text}


def _sweep_text(what: str, d: dict[str, Any]) -> str:
  """One paragraph: the static baselines some gate point beats (higher accuracy at equal or
  fewer calls) or only matches (equal accuracy, fewer calls), and the points that fall below
  the best random or threshold policy at equal or fewer calls."""
  beaten = [k for k, v in d["static"].items() if v]
  matched = [k for k, v in d["static_pareto"].items() if v and not d["static"][k]]
  neither = [k for k, v in d["static_pareto"].items() if not v]
  n = len(d["curves"]["threshold"])
  on = {f: sum(r["on_or_above"] for r in rs) for f, rs in d["curves"].items()}
  below = sorted({f"{r['best_baseline']} at {r['gate_calls']:.2f} calls"
                  for rs in d["curves"].values() for r in rs if not r["on_or_above"]})
  if "below" in d:  # each seed's point: the paired shortfall
    below = [f"{b['setting']} seed {b['seed']}, {b['accuracy'] * 100:.1f}% at "
             f"{b['calls']:.2f} calls, under {b['baseline']} by "
             f"{sm.pct(-b['gain']['mean'], b['gain']['ci95'])} points paired"
             for b in d["below"]]
  return (f"Across the call-cost sweeps ({what}, {n} gate points). Static baselines beaten "
          f"(higher accuracy at equal or fewer calls): {', '.join(beaten) or 'none'}; matched "
          f"(equal accuracy, fewer calls): {', '.join(matched) or 'none'}; neither: "
          f"{', '.join(neither) or 'none'}. On or above the best random policy at equal or "
          f"fewer calls: {on['random']} of {n} points; the best threshold: {on['threshold']} "
          f"of {n}" + (f" (below: {'; '.join(below)})." if below else "."))


def _privacy_check(sets: dict[str, dict]) -> dict[str, Any]:
  """The privacy target: a privacy cost halves exposure for < 5 points of accuracy.

  Two references at the nearest call cost without a privacy cost: a gate that may redact
  (the check's verdict), and, when the study has one, a gate that may only ask plainly. The
  first has no reason to prefer either kind where redaction suffices, so its exposure is an
  arbitrary mix (it varied 3.82-8.17 between seeds); the second is what the requests expose
  when nothing steers them to `ask_redacted`."""
  unpriced = [s for s in sets.values() if s["costs"]["per_private_token"] == 0
              and s.get("baselines_capped") is None]
  may_redact = [s for s in unpriced if "ask_redacted" in s["action_mix"]]
  plain_only = [s for s in unpriced if "ask_redacted" not in s["action_mix"]]
  private = [s for s in sets.values() if s["costs"]["per_private_token"] > 0]
  if not may_redact or not private:
    return {"text": "", "pairs": []}
  nearest = lambda refs: min(refs, key=lambda s: abs(s["costs"]["per_call"]
                                                     - private[0]["costs"]["per_call"]))
  ref = nearest(may_redact)
  plain = nearest(plain_only) if plain_only else None
  pairs, lines = [], []
  for s in private:
    ratio, drop, ok = _halved(s, ref)
    pair = {"privacy_cost": s["costs"]["per_private_token"], "exposure_ratio": ratio,
            "accuracy_drop": drop, "meets_target": ok,
            "redacted_share_of_asks": _redacted_share(s),
            "reference_redacted_share_of_asks": _redacted_share(ref)}
    line = (f"Privacy cost {s['costs']['per_private_token']:g}: exposure "
            f"{ref['exposed']['mean']:.2f} -> {s['exposed']['mean']:.2f} per problem "
            f"({sm.share(ratio)} of it), accuracy "
            f"{sm.pct(ref['accuracy']['mean'])} -> {sm.pct(s['accuracy']['mean'])} "
            f"({'meets' if ok else 'misses'} 'at least halved for < 5 points'); redacted "
            f"share of requests {sm.share(pair['reference_redacted_share_of_asks'])} -> "
            f"{sm.share(pair['redacted_share_of_asks'])}.")
    if plain is not None:
      plain_ratio, plain_drop, plain_ok = _halved(s, plain)
      pair.update(plain_ask_exposure_ratio=plain_ratio, plain_ask_accuracy_drop=plain_drop,
                  meets_target_vs_plain_ask=plain_ok)
      line += (f" Against the gate that may only ask plainly: {plain['exposed']['mean']:.2f} "
               f"-> {s['exposed']['mean']:.2f} ({sm.share(plain_ratio)} of it), accuracy "
               f"{sm.pct(plain['accuracy']['mean'])} -> {sm.pct(s['accuracy']['mean'])} "
               f"({'meets' if plain_ok else 'misses'}).")
    pairs.append(pair)
    lines.append(line)
  return {"text": "\n".join(lines), "pairs": pairs}


def _halved(s, ref) -> tuple[float | None, float, bool]:
  """(exposure ratio, accuracy drop, whether exposure is at least halved for < 5 points)."""
  ratio = s["exposed"]["mean"] / ref["exposed"]["mean"] if ref["exposed"]["mean"] else None
  drop = ref["accuracy"]["mean"] - s["accuracy"]["mean"]
  return ratio, drop, ratio is not None and ratio <= 0.5 and drop < 0.05


def _redacted_share(s) -> float | None:
  mix = s["action_mix"]
  asks = sum(v for k, v in mix.items() if k != "self")
  return mix.get("ask_redacted", 0.0) / asks if asks else None


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
      # Privacy-priced gates trade calls for exposure; capped gates meet the baselines under
      # their own budget (the constraints section).
      if (s["costs"]["per_private_token"] or s["llm"] != s["trained_with"]
          or s.get("baselines_capped")):
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
      lines.append(f"| {name} | {sm.pct(sm.accuracy_of(b))} | {sm.calls_of(b):.2f} | "
                   f"{'yes' if beaten else 'no'} |")
    lines += ["", "| gate setting (seeds) | accuracy | calls | best random at <= calls | "
              "best threshold at <= calls |", "|---|---|---|---|---|"]
    for p, r, t in zip(pts, d["curves"]["random"], d["curves"]["threshold"]):
      cell = lambda row: (f"{row['best_baseline']} {sm.pct(row['baseline_accuracy'])}"  # noqa
                          + ("" if row["on_or_above"] else " (**above the gate**)"))
      lines.append(f"| {p['setting']} ({p['seeds']}) | {sm.pct(p['accuracy'])} | "
                   f"{p['calls']:.2f} | {cell(r)} | {cell(t)} |")
    lines.append("")
  report = "\n".join(["### Dynamic against static: every gate of a pair", "",
                      "Gate points from the cost sweeps and the budget targets (seed means; "
                      "gates under a hard call budget are in the constraints section).",
                      "", *lines])
  return sm.write(out_dir, {"pairs": out}, report)
