"""A gate study on one SLM x LLM pair: seeds, a call-cost sweep and a privacy cost.

For each (seed, call cost, privacy cost) a gate is trained (resuming when its workdir has
one) and evaluated with every baseline on the same held-out problems. The summary holds, per
setting, the gate's accuracy / calls / exposure with their spread over seeds, whether it beats
each static baseline, and the Pareto curve of the gate across call costs against random asking
and the confidence threshold; `sweep.png` plots it.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from collab import evaluate
from collab.train import gate as gate_lib


def _setting_name(seed: int, call_cost: float, privacy_cost: float) -> str:
  return f"seed{seed}_call{call_cost:g}_priv{privacy_cost:g}"


def run_setting(base_arg: str, workdir: str, seed: int, call_cost: float, privacy_cost: float,
                *, pretrain_dir: str | None = None, assets_dir: str | None = None,
                steps: int = 0) -> dict[str, Any]:
  from configs import gate as gate_configs  # configs/ is a top-level package
  arg = f"{base_arg},seed={seed},call_cost={call_cost},privacy_cost={privacy_cost}"
  if steps:
    arg += f",steps={steps}"
  config = gate_configs.get_config(arg.strip(","))
  if pretrain_dir:
    config.pretrain_dir = pretrain_dir
  if assets_dir:
    config.assets_dir = assets_dir
  run_dir = os.path.join(workdir, _setting_name(seed, call_cost, privacy_cost))
  metrics_path = os.path.join(run_dir, "metrics.json")
  if os.path.exists(metrics_path):  # finished before: a rerun of the study resumes
    with open(metrics_path) as f:
      return json.load(f)
  gate_lib.train(config, run_dir)
  pair = gate_lib.load_pair(config)
  gate_params, _ = gate_lib.load_gate(run_dir)
  return evaluate.evaluate(config, pair, gate_params, run_dir)


def _spread(values: Sequence[float]) -> dict[str, float]:
  v = np.asarray(values, float)
  half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
  return {"mean": float(v.mean()), "ci95_over_seeds": float(half), "values": v.tolist()}


def summarize_study(runs: dict[tuple, dict]) -> dict[str, Any]:
  """runs: {(seed, call_cost, privacy_cost): metrics} -> the study summary."""
  settings: dict[tuple, list] = {}
  for (seed, call, priv), m in runs.items():
    settings.setdefault((call, priv), []).append(m)
  out = {}
  for (call, priv), ms in sorted(settings.items()):
    gate = [m["policies"]["gate"] for m in ms]
    kinds = sorted(gate[0]["action_mix"])
    beats = {}
    for name, cmp in ms[0]["comparison"].items():
      if cmp.get("static"):
        beats[name] = sum(m["comparison"][name]["dominates"] for m in ms)
    out[f"call{call:g}_priv{priv:g}"] = {
        "call_cost": call, "privacy_cost": priv, "seeds": len(ms),
        "accuracy": _spread([g["accuracy"]["mean"] for g in gate]),
        "calls": _spread([g["calls"]["mean"] for g in gate]),
        "llm_tokens": _spread([g["llm_tokens"]["mean"] for g in gate]),
        "exposed": _spread([g["exposed"]["mean"] for g in gate]),
        "action_mix": {k: float(np.mean([g["action_mix"][k] for g in gate])) for k in kinds},
        "seeds_dominating_static_baseline": beats,
        "baselines": {name: {"accuracy": p["accuracy"]["mean"], "calls": p["calls"]["mean"],
                             "exposed": p["exposed"]["mean"]}
                      for name, p in ms[0]["policies"].items() if name != "gate"},
    }
  return out


def plot_sweep(summary: dict[str, Any], path: str) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  rows = [s for s in summary.values() if s["privacy_cost"] == 0]
  rows.sort(key=lambda s: s["calls"]["mean"])
  ax.errorbar([s["calls"]["mean"] for s in rows], [100 * s["accuracy"]["mean"] for s in rows],
              yerr=[100 * s["accuracy"]["ci95_over_seeds"] for s in rows], marker="o",
              label="learned gate (call-cost sweep)")
  base = rows[0]["baselines"] if rows else {}
  for family in ("random", "threshold"):
    pts = sorted((b["calls"], 100 * b["accuracy"]) for n, b in base.items()
                 if n.startswith(family))
    if pts:
      ax.plot(*zip(*pts), marker=".", linestyle="--", label=family)
  for name in ("slm_alone", "llm_alone", "oracle"):
    if name in base:
      ax.scatter(base[name]["calls"], 100 * base[name]["accuracy"], marker="s")
      ax.annotate(name, (base[name]["calls"], 100 * base[name]["accuracy"]))
  ax.set_xlabel("LLM calls per problem")
  ax.set_ylabel("accuracy (%)")
  ax.legend(loc="lower right", fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run_study(base_arg: str, workdir: str, *, seeds=(0, 1, 2), call_costs=(0.05,),
              sweep_costs=(), privacy_costs=(), **kw) -> dict[str, Any]:
  """Trains and evaluates every setting; writes workdir/study.json and sweep.png."""
  runs = {}
  settings = [(s, c, 0.0) for s in seeds for c in call_costs]
  settings += [(seeds[0], c, 0.0) for c in sweep_costs if c not in call_costs]
  settings += [(seeds[0], c, p) for c in call_costs for p in privacy_costs]
  for seed, call, priv in settings:
    print(f"=== study: seed {seed}, call cost {call}, privacy cost {priv} ===", flush=True)
    runs[(seed, call, priv)] = run_setting(base_arg, workdir, seed, call, priv, **kw)
  summary = summarize_study(runs)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "study.json"), "w") as f:
    json.dump(summary, f, indent=2)
  plot_sweep(summary, os.path.join(workdir, "sweep.png"))
  for name, s in summary.items():
    print(f"{name}: accuracy {100 * s['accuracy']['mean']:.1f} ± "
          f"{100 * s['accuracy']['ci95_over_seeds']:.1f}, calls {s['calls']['mean']:.2f}, "
          f"exposed {s['exposed']['mean']:.2f}, mix {s['action_mix']}", flush=True)
  return summary
