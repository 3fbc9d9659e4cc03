"""The convex hull of a swept baseline: mixing two of its points per problem.

A problem uses point b with probability p and point a otherwise (one draw per row id,
`rollout.value_mix_draws`), so the mix spends (1 - p) calls_a + p calls_b in expectation and
every call rate between two sweep points is reachable; the upper concave envelope of the sweep
is what mixing attains. The draws are a function of (seed, row id), so the host knows which
problems use b, and the mix that spends at most a target on these problems is found exactly
(`mix_at`) before it is run through the rollout.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from collab import rollout as rollout_lib


def upper_hull(points: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
  """The vertices of the upper concave envelope of (calls, accuracy, name) points, in order
  of calls, up to the most accurate one (past it, more calls buy nothing)."""
  pts = sorted(points, key=lambda p: (p[0], -p[1]))
  hull: list[tuple[float, float, str]] = []
  for p in pts:
    if hull and p[0] == hull[-1][0]:
      continue  # same calls, less accurate (sorted)
    while len(hull) >= 2:
      (x1, y1, _), (x2, y2, _) = hull[-2], hull[-1]
      if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # hull[-1] on or below
        hull.pop()
      else:
        break
    hull.append(p)
  best = max(range(len(hull)), key=lambda i: (hull[i][1], -i)) if hull else -1
  return hull[:best + 1]


def draws(seed: int, row_id_N) -> np.ndarray:
  """The per-row draws the rollout compares with PolicyArgs.mix (rollout_lib.rollout is
  called with PRNGKey(seed) by policy_runs.run_policy)."""
  return np.asarray(rollout_lib.value_mix_draws(jax.random.PRNGKey(seed),
                                                np.asarray(row_id_N, np.int32)))


def mix_at(calls_a_N, calls_b_N, draws_N, target: float) -> float:
  """The largest mix probability p whose rows (draw < p use b, the others a) spend at most
  `target` calls per problem on these rows; 0 when even p = 0 spends more."""
  calls_a_N, calls_b_N = np.asarray(calls_a_N, float), np.asarray(calls_b_N, float)
  order = np.argsort(draws_N, kind="stable")
  n = len(order)
  # spend[k]: mean calls when the k rows of smallest draw use b.
  spend = (calls_a_N.sum() + np.concatenate(
      [[0.0], np.cumsum((calls_b_N - calls_a_N)[order])])) / n
  ok = np.nonzero(spend <= target + 1e-9)[0]
  if not len(ok):
    return 0.0
  k = int(ok.max())
  u = np.sort(draws_N)
  if k == n:
    return 1.0
  return float(u[k]) if k == 0 else float((u[k - 1] + u[k]) / 2)


def mixed(per_a: dict, per_b: dict, draws_N, p: float) -> dict[str, np.ndarray]:
  """The per-problem arrays the mix at p gives, from its two points' (rows independent)."""
  use_b = np.asarray(draws_N) < p
  return {k: np.where(use_b, per_b[k], per_a[k]) for k in per_a if k in per_b}
