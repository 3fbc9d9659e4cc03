"""The baselines a learned gate is compared with: one list, for evaluation and the studies.

Standalone models (SLM alone, LLM alone), static schedules (ask every k steps, ask at fixed
steps), random asking at several rates (and at the gate's own call rate), the confidence
threshold on the SLM's draft (BiLD-style), and the hindsight oracle. Each is a
`rollout.Policy` plus its traced value, so all of them run through one compiled rollout.
"""
from __future__ import annotations

from typing import NamedTuple

import ml_collections

from collab import rollout as rollout_lib

# Families whose asks do not depend on the problem: a learned gate must beat these.
STATIC_FAMILIES = ("slm_alone", "llm_alone", "every_k", "fixed")


class Baseline(NamedTuple):
  name: str
  family: str
  policy: rollout_lib.Policy
  value: float = 0.0


def baselines(eval_cfg: ml_collections.ConfigDict, gate_call_rate: float | None = None
              ) -> list[Baseline]:
  """Every baseline config.eval asks for: eval.every_k, eval.fixed_steps, eval.random_rates
  and eval.thresholds (sweeps), plus random asking at `gate_call_rate` when given."""
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
  out += [Baseline(f"threshold_{t:g}", "threshold", P(kind="threshold"), float(t))
          for t in eval_cfg.thresholds]
  out.append(Baseline("oracle", "oracle", P(kind="oracle")))
  return out
