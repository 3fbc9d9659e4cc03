"""Baselines fitted before evaluation, on the gate's training problems (config.rl.split, never
the test split): the line kinds the line-kind rule asks at, and the supervised router.

Line kinds: greedy forward selection. From asking nowhere, each round adds the kind whose
asks buy the most accuracy per extra call on the selection problems (each candidate set is one
rollout), so the rule becomes a nested sequence of sets, a curve from few calls to many; every
set of the sequence is a baseline (`baselines.baselines(..., fitted=)`). The kinds are planned
from the question on the generated task (policy 'line_kind'), and read from the SLM's draft on
word problems (policy 'draft_kind', when the Setup has a token table: collab/draft_kinds.py).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import ml_collections
import numpy as np

from collab import draft_kinds
from collab import pair as pair_lib
from collab import policy_runs
from collab import rollout as rollout_lib
from collab import router as router_lib
from collab.data import task as task_lib


class Fitted(NamedTuple):
  line_kind_sets: tuple[tuple[str, ...], ...] = ()  # nested, in the order they were chosen
  router_params: Any = None
  info: dict = {}
  line_kind_policy: str = "line_kind"  # or 'draft_kind': the policy that runs the sets


def line_kind_policy(setup: rollout_lib.Setup) -> str:
  """'draft_kind' when the rollout can read a draft's kind, else 'line_kind' (planned)."""
  return "line_kind" if setup.draft_kinds is None else "draft_kind"


def choose_line_kinds(pair: pair_lib.Pair, setup: rollout_lib.Setup, params, episodes, *,
                      batch_size: int, seed: int = 0) -> tuple[tuple[tuple[str, ...], ...],
                                                              list[dict[str, Any]]]:
  """Greedy forward selection of line kinds on `episodes`: returns the nested sets (the i-th
  holds the first i + 1 kinds chosen) and one record per round (each candidate's accuracy and
  calls). Kinds that no step of the episodes has are never candidates; with none (imported
  problems, whose lines have no kinds), nothing runs."""
  S, policy = setup.rollout.num_steps, line_kind_policy(setup)
  if policy == "draft_kind":  # any kind a draft may be read as (look-ups are generated only)
    order = draft_kinds.LINE_KINDS
    remaining = [k for k in order if k != "lookup"]
  else:
    order = task_lib.STEP_KINDS
    present = set(np.unique(episodes["kind_BxS"][:, :S]).tolist()) - {-1}
    remaining = [k for i, k in enumerate(order) if i in present]
  if not remaining:
    return (), []

  def run(kinds):
    per = policy_runs.run_policy(
        pair, setup, params, episodes,
        rollout_lib.Policy(kind=policy, line_kinds=tuple(kinds)), batch_size=batch_size,
        rng_seed=seed, name="line kinds " + "+".join(kinds), progress_every_s=1e9)
    return float(per["correct"].mean()), float(per["calls"].mean())

  chosen, rounds = [], []
  acc, calls = run(())
  while remaining:
    tried = {k: run(chosen + [k]) for k in remaining}
    # Accuracy gained per extra call; a candidate that adds no call gains nothing to rank by.
    score = {k: (a - acc) / max(c - calls, 1e-9) for k, (a, c) in tried.items()}
    best = max(remaining, key=lambda k: (score[k], -remaining.index(k)))
    rounds.append({"candidates": {k: {"accuracy": a, "calls": c} for k, (a, c) in tried.items()},
                   "chosen": best})
    chosen.append(best)
    remaining.remove(best)
    acc, calls = tried[best]
    print(f"  line kinds: + {best:>6}: accuracy {100 * acc:5.1f}%  calls {calls:.2f}",
          flush=True)
  sets = tuple(tuple(k for k in order if k in chosen[:i + 1]) for i in range(len(chosen)))
  return sets, rounds


def fit(config: ml_collections.ConfigDict, pair: pair_lib.Pair, setup: rollout_lib.Setup
        ) -> Fitted:
  """What config.eval.line_kinds and config.eval.router ask for (problems=0: off)."""
  sets, router_params, info = (), None, {}
  lk = config.eval.get("line_kinds")
  if lk is not None and lk.problems > 0:
    records = pair_lib.load_records(config, pair, config.rl.split, int(lk.problems))
    episodes = pair_lib.make_episodes(config, pair, records)
    print(f"  line kinds: greedy selection on {len(records)} {config.rl.split} problems",
          flush=True)
    sets, rounds = choose_line_kinds(pair, setup, pair_lib.init_gate(config, pair), episodes,
                                     batch_size=config.eval.batch_size, seed=config.seed)
    info["line_kinds"] = {"problems": len(records), "split": config.rl.split,
                          "policy": line_kind_policy(setup),
                          "sets": [list(s) for s in sets], "rounds": rounds}
  rc = config.eval.get("router")
  if rc is not None and rc.problems > 0:
    router_params, info["router"] = router_lib.fit(config, pair, setup)
  return Fitted(sets, router_params, info, line_kind_policy(setup))
