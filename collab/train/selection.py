"""Checkpoint selection on held-out problems: which saved gate to keep, not just the last.

Policy-gradient gates of different seeds end at different points, and a gate's last iterate is
one noisy draw near where its training ended. With `config.rl.select_problems = N > 0`, the
last N of the gate's training problems are held out of training; every checkpoint from step
`select_from * num_steps` on is run greedily on them, and the one with the highest mean
reward is kept:

  score(ckpt) = mean over prices p, problems n of
                correct_n - p * calls_n - c_tok * llm_tokens_n - c_priv * exposed_n

with p the gate's fixed call price, or, for a price-conditioned gate, `select_prices` prices
spaced geometrically over its training range (the log-uniform draw it trained on). The held-out
problems are never trained on and never the evaluation split, so the test numbers stay clean.
Ties go to the later step.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import ml_collections
import numpy as np

from collab import checkpoint as ckpt_lib
from collab import evaluate
from collab import pair as pair_lib
from collab import rl


def split_held_out(config: ml_collections.ConfigDict, records):
  """(problems to train on, held-out problems): the last config.rl.select_problems of the
  training problems are held out (checkpoint selection, price calibration)."""
  held_out = config.rl.get("select_problems", 0)
  if not held_out:
    return records, records[:0]
  if held_out >= len(records):
    raise ValueError(f"config.rl.select_problems={held_out} leaves no training problems "
                     f"of the {len(records)} in split {config.rl.split!r}")
  return records[:-held_out], records[-held_out:]


def prices(config: ml_collections.ConfigDict, price_range) -> tuple[float, ...]:
  """Call prices the score averages over (price_range: a price-conditioned gate's range)."""
  if price_range is None:
    return (float(config.costs.per_call),)
  low, high = price_range
  return tuple(float(p) for p in np.geomspace(low, high, config.rl.get("select_prices", 5)))


def reward_N(per_problem: dict[str, np.ndarray], price: float,
             config: ml_collections.ConfigDict) -> np.ndarray:
  """Each problem's episode reward (`rl.episode_reward`, the training reward) at call price
  `price`."""
  cfg = dataclasses.replace(pair_lib.reward_config(config), cost_per_call=price)
  return np.asarray(rl.episode_reward(per_problem["correct"], per_problem["calls"],
                                      per_problem["llm_tokens"], per_problem["exposed"], cfg))


def candidate_steps(all_steps: list[int], config: ml_collections.ConfigDict) -> list[int]:
  start = config.rl.get("select_from", 0.5) * config.rl.num_steps
  steps = [s for s in all_steps if s >= start]
  if not steps:
    raise ValueError(f"No checkpoint at or after step {start:g} to select from (saved: "
                     f"{all_steps}); lower config.rl.select_from or config.ckpt_every")
  return steps


def select(config: ml_collections.ConfigDict, steps: list[int],
           gate_params_at: Callable[[int], Any],
           run_greedy: Callable[[Any, float | None], dict[str, np.ndarray]],
           price_range) -> dict[str, Any]:
  """Scores the gate of every step; returns {'step': best, 'scores': {step: score}, ...}.

  gate_params_at(step): that checkpoint's gate params. run_greedy(params, call_price): the
  per-problem arrays of the greedy gate on the held-out problems (call_price None for a gate
  that is not told a price)."""
  ps = prices(config, price_range)
  scores, accuracy, calls = {}, {}, {}
  for step in steps:
    params = gate_params_at(step)
    runs = [(p, run_greedy(params, p if price_range is not None else None)) for p in ps]
    scores[step] = float(np.mean([reward_N(per, p, config).mean() for p, per in runs]))
    accuracy[step] = [float(per["correct"].mean()) for _, per in runs]
    calls[step] = [float(per["calls"].mean()) for _, per in runs]
    print(f"Selection: step {step} scores {scores[step]:.4f} (accuracy "
          f"{', '.join(f'{a:.3f}' for a in accuracy[step])}; calls "
          f"{', '.join(f'{c:.2f}' for c in calls[step])} at prices "
          f"{', '.join(f'{p:g}' for p in ps)})", flush=True)
  best = max(steps, key=lambda s: (scores[s], s))
  return {"step": best, "last_step": steps[-1], "prices": list(ps), "scores": scores,
          "accuracy": accuracy, "calls": calls,
          "problems": int(config.rl.select_problems)}


def greedy_runner(config, pair, setup, episodes) -> Callable:
  """run_greedy for `select`: the greedy gate on `episodes` through collab.evaluate."""

  def run(params, call_price):
    return evaluate.run_policy(pair, setup, params, episodes,
                               evaluate.GREEDY_GATE,
                               batch_size=config.eval.batch_size, rng_seed=config.seed,
                               call_price=call_price)
  return run


def select_checkpoint(config, pair, setup, state, workdir: str, episodes, primary: bool):
  """The gate params of workdir's checkpoint that scores best on the held-out `episodes`
  (`state`: the train state's structure, to restore into); the scores go to
  workdir/selection.json."""
  with ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None) as ckpt:
    params_at = lambda step: ckpt.restore(step, target=state)[0]["params"]["gate"]
    result = select(
        config, candidate_steps(ckpt.all_steps(), config), params_at,
        greedy_runner(config, pair, setup, episodes), pair_lib.price_range(config))
    params = params_at(result["step"])
  print(f"Selection: kept step {result['step']} of {result['last_step']}", flush=True)
  if primary:
    with open(os.path.join(workdir, "selection.json"), "w") as f:
      json.dump(result, f, indent=1)
  return params
