"""The baselines a learned gate is compared with: one list, for evaluation and the studies.

Standalone models (SLM alone, LLM alone), static schedules (ask every k steps, ask at fixed
steps), random asking at several rates (and at the gate's own call rate), the confidence
threshold on the SLM's draft (BiLD-style, a listed sweep plus a fine one), the line-kind rule
and the supervised router (both fitted on training problems, collab/fitted_baselines.py), and
the hindsight oracle. Each is a `rollout.Policy` plus its traced value(s), so all of them run
through one compiled rollout. The convex hull of a sweep (two of its points mixed per problem)
is added by evaluation at the gate's call rate (collab/hull.py).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import ml_collections
import numpy as np

from collab import rollout as rollout_lib

# Families whose asks do not depend on the problem: a learned gate must beat these.
STATIC_FAMILIES = ("slm_alone", "llm_alone", "every_k", "fixed")


class Baseline(NamedTuple):
  name: str
  family: str
  policy: rollout_lib.Policy
  value: float = 0.0
  value2: float | None = None  # with `mix`: a row uses value2 with probability mix (a hull)
  mix: float = 0.0
  params: Any = None           # the head's params the rollout runs with (None: the gate's)


def fine_thresholds(n: int) -> tuple[float, ...]:
  """n cut-offs on the draft's min token log-prob, log-spaced from -0.001 to -8: from asking
  at nearly every step to nearly none."""
  return tuple(float(f"{-t:.3g}") for t in np.geomspace(1e-3, 8.0, n)) if n > 0 else ()


def baselines(eval_cfg: ml_collections.ConfigDict, gate_call_rate: float | None = None,
              fitted=None) -> list[Baseline]:
  """Every baseline config.eval asks for: eval.every_k, eval.fixed_steps, eval.random_rates
  and eval.thresholds (sweeps) plus eval.fine_thresholds more cut-offs, random asking at
  `gate_call_rate` when given, and from `fitted` (fitted_baselines.Fitted) each line-kind set
  and the router at each of eval.router.thresholds."""
  P = rollout_lib.Policy
  out = [Baseline("slm_alone", "slm_alone", P(kind="self")),
         Baseline("llm_alone", "llm_alone", P(kind="always", ask_kind="ask"))]
  out += [Baseline(f"every_{int(k)}", "every_k", P(kind="every_k", k=int(k)))
          for k in eval_cfg.every_k]
  out += [Baseline("fixed_" + "_".join(str(int(s)) for s in steps), "fixed",
                   P(kind="fixed", steps=tuple(int(s) for s in steps)))
          for steps in eval_cfg.fixed_steps]
  if gate_call_rate is not None:
    out.append(Baseline("random_at_gate_rate", "random", P(kind="random"),
                        float(gate_call_rate)))
  out += [Baseline(f"random_{r:g}", "random", P(kind="random"), float(r))
          for r in eval_cfg.random_rates]
  cutoffs = sorted(set(float(t) for t in eval_cfg.thresholds) | set(
      fine_thresholds(int(eval_cfg.get("fine_thresholds", 0)))), reverse=True)
  out += [Baseline(f"threshold_{t:g}", "threshold", P(kind="threshold"), t) for t in cutoffs]
  if fitted is not None:
    out += [Baseline("kinds_" + "+".join(kinds), "line_kind",
                     P(kind=fitted.line_kind_policy, line_kinds=kinds))
            for kinds in fitted.line_kind_sets]
    if fitted.router_params is not None:
      out += [Baseline(f"router_{p:g}", "router", P(kind="router"), float(p),
                       params=fitted.router_params) for p in eval_cfg.router.thresholds]
      out += [Baseline(f"router_q{c['share']:g}", "router", P(kind="router"), c["p"],
                       params=fitted.router_params)
              for c in fitted.info.get("router", {}).get("cutoffs", ())]
  out.append(Baseline("oracle", "oracle", P(kind="oracle")))
  return out
