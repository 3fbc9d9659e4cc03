"""Evaluation: the learned gate against every baseline, through the same jitted rollout.

Each policy (learned gate, SLM alone, LLM alone, ask every k, ask at fixed steps, random asking,
confidence threshold and its convex hull, line-kind rule, supervised router and its hull,
hindsight oracle) runs on the same problems with the same models, so the numbers differ only
by who decides when to ask. Outputs: per-problem arrays (`run_policy`),
their summary with 95% confidence intervals (`summarize`), and, from `evaluate`, metrics.json,
a Pareto plot of accuracy against calls, and a markdown table (`results_table`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from collab import baselines as baselines_lib
from collab import fitted_baselines
from collab import gating
from collab import hull as hull_lib
from collab import parallel
from collab import rollout as rollout_lib
from collab import pair as pair_lib
from collab.policy_runs import run_policy  # noqa: F401  (re-exported: evaluate.run_policy)

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
# Swept families whose convex hull is run at the gate's call rate (as `<family>_hull`).
HULL_FAMILIES = ("threshold", "router")
# The families head_to_head compares the gate with, in order.
RIVAL_FAMILIES = ("threshold", "threshold_hull", "router", "router_hull", "line_kind", "random",
                  "every_k", "fixed", "slm_alone", "llm_alone")
# Per-problem quantities reported with a mean and a confidence interval.
CI_METRICS = {"accuracy": "correct", "calls": "calls", "llm_tokens": "llm_tokens",
              "exposed": "exposed", "context_tokens": "context_tokens"}


# ---------------------------------------------------------------------------------------------
# Summaries.

def mean_ci(x_N) -> dict[str, float]:
  """Mean and 95% CI by the normal approximation: mean +- 1.96 * std(ddof=1) / sqrt(N).
  With fewer than two values the interval has zero width."""
  x_N = np.asarray(x_N, np.float64)
  mean = float(x_N.mean()) if x_N.size else float("nan")
  half = Z_95 * float(x_N.std(ddof=1)) / math.sqrt(x_N.size) if x_N.size > 1 else 0.0
  return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "ci95": half}


def summarize(per_problem: dict[str, np.ndarray]) -> dict[str, Any]:
  """Per-problem arrays -> a JSON-able summary.

  accuracy, calls, llm_tokens, exposed, context_tokens (per problem): {mean, ci_low, ci_high,
  ci95}, a 95% confidence interval by the normal approximation over problems (`mean_ci`).
  call_rate = total calls / total decisions; action_mix[kind] = the share of decisions that
  chose each request kind (asks over capacity included: they chose to ask); overflow_rate =
  overflowed asks / decisions.
  """
  out: dict[str, Any] = {name: mean_ci(per_problem[key]) for name, key in CI_METRICS.items()
                         if key in per_problem}
  decisions = float(np.sum(per_problem["decisions"]))
  rate = lambda key: float(np.sum(per_problem[key])) / decisions if decisions else 0.0
  out["num_problems"] = int(len(per_problem["correct"]))
  out["decisions"] = mean_ci(per_problem["decisions"])
  out["call_rate"] = rate("calls")
  out["overflow_rate"] = rate("overflow") if "overflow" in per_problem else 0.0
  out["action_mix"] = {k[len("action_"):]: rate(k) for k in per_problem
                       if k.startswith("action_")}
  return out


def paired_gain(gate_correct_N, base_correct_N) -> dict[str, float]:
  """Accuracy of the gate minus a baseline's, on the same problems (paired normal CI)."""
  return mean_ci(np.asarray(gate_correct_N, np.float64) - np.asarray(base_correct_N, np.float64))


def compare(policies: dict[str, dict], per_problem: dict[str, dict], gate: str = "gate"
            ) -> dict[str, dict]:
  """For each baseline: does the gate dominate it (higher accuracy at equal or fewer calls per
  problem, point estimates), and the paired accuracy gain with its 95% CI."""
  g = policies[gate]
  out = {}
  for name, s in policies.items():
    if s["family"] == "gate":  # the gate itself, or its points at other prices
      continue
    out[name] = {
        "family": s["family"], "static": s["family"] in baselines_lib.STATIC_FAMILIES,
        "dominates": bool(g["accuracy"]["mean"] > s["accuracy"]["mean"]
                          and g["calls"]["mean"] <= s["calls"]["mean"]),
        "accuracy_gain": paired_gain(per_problem[gate]["correct"], per_problem[name]["correct"]),
        "calls_saved": s["calls"]["mean"] - g["calls"]["mean"]}
  return out


# ---------------------------------------------------------------------------------------------
# Named policies: the gate and the baselines (collab/baselines.py).

GREEDY_GATE = rollout_lib.Policy(kind="gate", greedy=True)


def run_named(config: ml_collections.ConfigDict, pair: pair_lib.Pair, setup: rollout_lib.Setup,
              gate_params, episodes: dict[str, np.ndarray], named: baselines_lib.Baseline, *,
              call_price: float | None = None, mesh: parallel.ModelMesh | None = None,
              tag: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """One named policy on every episode: (its summary with family, value and seconds, the
  per-problem arrays). Prints one line with its accuracy and spend. A baseline with its own
  params (the router) runs with them in the gate's place, in the gate's compiled rollout."""
  t0 = time.time()
  params = gate_params
  if named.params is not None:
    params = named.params
    if gating.MIX_KEY in gate_params and gating.MIX_KEY not in params:  # the same pytree
      params = dict(params, **{gating.MIX_KEY: np.float32(1.0)})  # (baselines ignore it)
    params = mesh.replicate(params) if mesh else params
  per = run_policy(pair, setup, params, episodes, named.policy,
                   batch_size=config.eval.batch_size, value=named.value, rng_seed=config.seed,
                   call_price=call_price, mesh=mesh, name=named.name, value2=named.value2,
                   mix=named.mix)
  summary = dict(summarize(per), family=named.family, value=named.value,
                 seconds=time.time() - t0)  # the first policy's includes the compile
  if named.mix:
    summary.update(value2=named.value2, mix=named.mix)
  print(f"  {tag}{named.name:>22}: accuracy {100 * summary['accuracy']['mean']:5.1f}%  calls "
        f"{summary['calls']['mean']:.2f}  LLM tokens {summary['llm_tokens']['mean']:.1f}  "
        f"exposed {summary['exposed']['mean']:.2f}  ({summary['seconds']:.1f} s)", flush=True)
  return summary, per


def gate_points(config: ml_collections.ConfigDict, setup: rollout_lib.Setup
                ) -> list[tuple[baselines_lib.Baseline, float | None]]:
  """(named gate policy, the call price it is told): the greedy gate, and a point per
  evaluation price for a price-conditioned gate."""
  if not setup.gate.price_input:
    return [(baselines_lib.Baseline("gate", "gate", GREEDY_GATE), None)]
  return [(baselines_lib.Baseline("gate", "gate", GREEDY_GATE), float(config.costs.per_call))
          ] + [(baselines_lib.Baseline(f"gate@{p:g}", "gate", GREEDY_GATE, p), p)
               for p in pair_lib.eval_prices(config)]


def hull_baselines(policies: dict[str, dict], per_problem: dict[str, dict],
                   named: dict[str, baselines_lib.Baseline], draws_N, target_calls: float
                   ) -> list[baselines_lib.Baseline]:
  """For each swept family of HULL_FAMILIES: the mix of the two vertices of its upper hull
  around `target_calls` that spends at most the target on these problems (collab/hull.py),
  as a baseline `<family>_hull`. A family whose cheapest point spends more has none."""
  out = []
  for family in HULL_FAMILIES:
    pts = [(s["calls"]["mean"], s["accuracy"]["mean"], name) for name, s in policies.items()
           if s["family"] == family]
    vertices = hull_lib.upper_hull(pts)
    if not vertices or vertices[0][0] > target_calls + 1e-9:
      continue
    below = [v for v in vertices if v[0] <= target_calls + 1e-9]
    above = [v for v in vertices if v[0] > target_calls + 1e-9]
    a = named[below[-1][2]]
    b = named[above[0][2]] if above else a
    p = (hull_lib.mix_at(per_problem[a.name]["calls"], per_problem[b.name]["calls"], draws_N,
                         target_calls) if b is not a else 0.0)
    out.append(baselines_lib.Baseline(f"{family}_hull", f"{family}_hull", a.policy, a.value,
                                      b.value, p, a.params))
  return out


class BaselineRuns(NamedTuple):
  """The baselines that do not depend on the gate, run: what `evaluate` would run for them."""
  fitted: fitted_baselines.Fitted
  policies: dict[str, dict]                  # name -> summary
  per_problem: dict[str, dict[str, np.ndarray]]


def _placed(config: ml_collections.ConfigDict, pair: pair_lib.Pair, gate_params):
  """(pair, gate_params, mesh): placed once on the model mesh, if there is one, so that
  run_policy copies nothing."""
  mesh = parallel.model_mesh(config)
  if mesh:
    pair = dataclasses.replace(pair, slm_params=mesh.replicate(pair.slm_params),
                               llm_params=mesh.shard_model(pair.llm_params))
    gate_params = mesh.replicate(gate_params)
  return pair, gate_params, mesh


def run_baselines(config: ml_collections.ConfigDict, pair: pair_lib.Pair, gate_params=None
                  ) -> BaselineRuns:
  """Fits the fitted baselines and runs every baseline that does not depend on the gate (all
  but random asking at the gate's rate and the hulls at its calls) on the evaluation problems.
  Their asks ignore the gate, so `gate_params` may be an untrained gate of the same shape
  (the default): this can run beside gate training, and `evaluate(..., baselines=)` then
  reuses it."""
  setup = pair_lib.make_setup(config, pair)
  episodes = pair_lib.eval_episodes(config, pair)
  if gate_params is None:
    gate_params = pair_lib.init_gate(config, pair)
  pair, gate_params, mesh = _placed(config, pair, gate_params)
  fitted = fitted_baselines.fit(config, pair, setup)
  named = baselines_lib.baselines(config.eval, None, fitted)
  policies, per_problem, t0 = {}, {}, time.time()
  for i, b in enumerate(named):
    eta = f", ETA {(time.time() - t0) / i * (len(named) - i):.0f} s" if i else ""
    policies[b.name], per_problem[b.name] = run_named(
        config, pair, setup, gate_params, episodes, b, mesh=mesh,
        tag=f"[baseline {i + 1}/{len(named)}{eta}] ")
  return BaselineRuns(fitted, policies, jax.device_get(per_problem))


def evaluate(config: ml_collections.ConfigDict, pair: pair_lib.Pair, gate_params,
             out_dir: str, baselines: BaselineRuns | None = None) -> dict[str, Any]:
  """Evaluates the greedy gate and every baseline on config.eval.num_problems problems of
  config.eval.split. Writes out_dir/metrics.json, out_dir/pareto.png (accuracy vs calls; also
  pareto_llm_tokens.png and pareto_exposed.png), prints a table, and
  returns the metrics dict ({"policies": {name: summary}, "comparison": ..., "fitted": what
  the fitted baselines learned on training problems, ...}). The convex hull of each swept
  family is run at the greedy gate's calls (`hull_baselines`). `baselines`, from
  `run_baselines` on the same config and pair, are reused instead of run again.
  With several processes, each runs its share of the problems and process 0 writes."""
  episodes = pair_lib.eval_episodes(config, pair)
  setup = pair_lib.make_setup(config, pair)
  pair, gate_params, mesh = _placed(config, pair, gate_params)
  per_problem, policies = {}, {}
  points = gate_points(config, setup)
  t0 = time.time()
  for i, (named, call_price) in enumerate(points):
    policies[named.name], per_problem[named.name] = run_named(
        config, pair, setup, gate_params, episodes, named, call_price=call_price, mesh=mesh,
        tag=f"[{i + 1}/{len(points)}+] ")
  spent = time.time() - t0  # on policies alone: the ETA leaves out fitting the rivals
  fitted = baselines.fitted if baselines else fitted_baselines.fit(config, pair, setup)
  others = baselines_lib.baselines(config.eval, policies["gate"]["call_rate"], fitted)
  done = dict(baselines.policies) if baselines else {}
  for name in done:
    policies[name], per_problem[name] = done[name], baselines.per_problem[name]
  to_run = [b for b in others if b.name not in done]
  for i, named in enumerate(to_run):
    left, t0 = spent / (len(points) + i) * (len(to_run) - i), time.time()
    policies[named.name], per_problem[named.name] = run_named(
        config, pair, setup, gate_params, episodes, named, mesh=mesh,
        tag=f"[{len(points) + i + 1}/{len(points) + len(to_run)}, ETA {left:.0f} s] ")
    spent += time.time() - t0
  # In the order of the baseline list, whoever ran them.
  policies = {n: policies[n] for n in [p.name for p, _ in points] + [b.name for b in others]}
  draws_N = hull_lib.draws(config.seed, episodes["row_id_B"])
  for named in hull_baselines(policies, per_problem, {b.name: b for b in others}, draws_N,
                              policies["gate"]["calls"]["mean"]):
    policies[named.name], per_problem[named.name] = run_named(
        config, pair, setup, gate_params, episodes, named, mesh=mesh, tag="[hull] ")

  metrics = {"policies": policies, "comparison": compare(policies, per_problem),
             "num_problems": len(episodes["row_id_B"]), "split": config.eval.split,
             "skip": int(config.eval.get("skip", 0)),
             "fitted": fitted.info, "config": json.loads(config.to_json_best_effort())}
  if jax.process_index() != 0:  # every process holds the gathered metrics; process 0 writes
    return metrics
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  plot_pareto(metrics, os.path.join(out_dir, "pareto.png"))
  for x in ("llm_tokens", "exposed"):
    plot_pareto(metrics, os.path.join(out_dir, f"pareto_{x}.png"), x=x)
  print(results_table(metrics), flush=True)
  print(head_to_head(metrics), flush=True)
  return metrics


def plot_pareto(metrics: dict[str, Any], path: str, x: str = "calls") -> str:
  """Accuracy against `x` per problem (calls, llm_tokens or exposed), with 95% CI error bars:
  random-rate and threshold sweeps as lines, the gate and the other policies as labelled
  markers."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  def point(s):
    return (s[x]["mean"], s["accuracy"]["mean"], s[x]["ci95"], s["accuracy"]["ci95"])

  fig, ax = plt.subplots(figsize=(7, 5))
  policies = metrics["policies"]
  curves = (("random", "o--"), ("threshold", "s-"), ("router", "v-"), ("line_kind", "^-"))
  for family, style in curves:
    pts = sorted(point(s) for s in policies.values() if s["family"] == family)
    if pts:
      xs, ys, xerr, yerr = map(list, zip(*pts))
      ax.errorbar(xs, ys, yerr=yerr, xerr=xerr, fmt=style, capsize=3, alpha=0.7, label=family)
    if family in HULL_FAMILIES and pts:  # what mixing two of its points per problem reaches
      hull = hull_lib.upper_hull([(p[0], p[1], "") for p in pts])
      ax.plot([h[0] for h in hull], [h[1] for h in hull], ":", color="gray", alpha=0.8,
              label=f"{family} hull")
  for name, s in policies.items():
    if s["family"] in dict(curves):
      continue
    gate = s["family"] == "gate"
    px, py, ex, ey = point(s)
    ax.errorbar([px], [py], yerr=[ey], xerr=[ex], fmt="*" if gate else "D", capsize=3,
                markersize=14 if gate else 6, color="crimson" if gate else "dimgray")
    ax.annotate(name, (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8)
  ax.set_xlabel({"calls": "LLM calls per problem", "llm_tokens": "LLM tokens per problem",
                 "exposed": "private tokens exposed per problem"}.get(x, x))
  ax.set_ylabel("accuracy")
  ax.set_title(f"Accuracy vs {x} ({metrics['num_problems']} problems, 95% CI)")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def results_table(metrics: dict[str, Any]) -> str:
  """A markdown table: policy, accuracy +- 95% CI, calls, LLM tokens, exposed per problem."""
  lines = ["| policy | accuracy | calls | LLM tokens | exposed | call rate |",
           "|---|---|---|---|---|---|"]
  for name, s in metrics["policies"].items():
    acc = s["accuracy"]
    lines.append(
        f"| {name} | {100 * acc['mean']:.1f} ± {100 * acc['ci95']:.1f}% "
        f"| {s['calls']['mean']:.2f} | {s['llm_tokens']['mean']:.1f} "
        f"| {s['exposed']['mean']:.2f} | {s['call_rate']:.3f} |")
  return "\n".join(lines)


def head_to_head(metrics: dict[str, Any], gate: str = "gate") -> str:
  """Markdown lines: the gate against the strongest rival of each family at equal or fewer
  calls per problem (the most accurate such point), with the paired accuracy gain and its
  95% CI, so a reader sees at once where the learned gate wins, ties or loses."""
  policies, comparison = metrics["policies"], metrics["comparison"]
  g = policies[gate]
  lines = [f"Gate: {100 * g['accuracy']['mean']:.1f}% at {g['calls']['mean']:.2f} calls per "
           f"problem, {g['exposed']['mean']:.2f} private tokens sent to the LLM. Strongest "
           "rival of each family at equal or fewer calls (paired gain of the gate, 95% CI; "
           "the rival's private tokens sent):", ""]
  for family in RIVAL_FAMILIES:
    rivals = [(s["accuracy"]["mean"], name) for name, s in policies.items()
              if s["family"] == family and s["calls"]["mean"] <= g["calls"]["mean"] + 1e-9]
    if not rivals:
      cheapest = min((s["calls"]["mean"], name) for name, s in policies.items()
                     if s["family"] == family) if any(
                         s["family"] == family for s in policies.values()) else None
      if cheapest:
        lines.append(f"- {family}: every point spends more calls than the gate (the cheapest, "
                     f"{cheapest[1]}, {cheapest[0]:.2f})")
      continue
    _, name = max(rivals)
    s, gain = policies[name], comparison[name]["accuracy_gain"]
    verdict = ("gate better" if gain["ci_low"] > 0 else "gate worse" if gain["ci_high"] < 0
               else "tie")
    lines.append(f"- {family}: {name}, {100 * s['accuracy']['mean']:.1f}% at "
                 f"{s['calls']['mean']:.2f} calls; gain {100 * gain['mean']:+.1f} "
                 f"[{100 * gain['ci_low']:+.1f}, {100 * gain['ci_high']:+.1f}] points: {verdict}; "
                 f"{s['exposed']['mean']:.2f} private tokens")
  return "\n".join(lines)
