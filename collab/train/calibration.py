"""Budget targets met by the price a price-conditioned gate is told, found on held-out problems.

Dual ascent (config.budget_target, mode 'dual') trains one gate per target, and where the
frontier of accuracy against calls is not concave between SLM alone and the gate no price
makes a spend in between optimal: the price overshoots and the gate collapses to never asking.
A gate trained over a range of prices and told its price (config.costs.per_call_range) already
holds a whole curve: the higher the price it is told, the fewer calls it makes. For a target
of T calls (or LLM tokens) per problem, bisection on log-price finds the lowest price in the
training range at which the greedy gate spends at most T per problem (or, for `call_rate`,
asks at most a share T of its steps) on held-out training
problems (checkpoint selection's: the last config.rl.select_problems, never trained on, never
the evaluation split). One trained gate then serves every target:

  price(T) = min { p in [low, high] : spend(p) <= T }   (spend assumed non-increasing in p)

A target the gate meets even at the lowest price gets that price; one it misses at the highest
gets the highest, flagged `met: False`.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import ml_collections
import numpy as np

from collab import pair as pair_lib
from collab.train import selection

# Spends per problem, and call_rate: calls per decision (the share of steps asked).
KEYS = ("calls", "llm_tokens", "call_rate")


def bisect_price(spend_at: Callable[[float], dict[str, float]], key: str, target: float,
                 low: float, high: float, iters: int = 8) -> dict[str, Any]:
  """The lowest price in [low, high] (to a factor (high/low)**(1/2**iters)) whose spend[key]
  is <= target. spend_at(price) -> {'calls', 'llm_tokens', 'call_rate', 'accuracy'}."""
  if key not in KEYS:
    raise ValueError(f"A price target is on one of {KEYS}, got {key!r}")
  if not 0 < low < high:
    raise ValueError(f"Calibration needs a price range 0 < low < high, got ({low}, {high})")
  seen: dict[float, dict[str, float]] = {}

  def spend(price: float) -> float:
    if price not in seen:
      seen[price] = spend_at(price)
      print(f"Calibration: told {price:.4g}, the gate spends {seen[price][key]:.3f} {key} "
            f"per problem (target {target:g}), accuracy {seen[price]['accuracy']:.3f}",
            flush=True)
    return seen[price][key]

  if spend(low) <= target:
    price = low
  elif spend(high) > target:
    price = high
  else:  # spend(lo) > target >= spend(hi) throughout; halving on a log scale
    lo, hi = low, high
    for _ in range(iters):
      mid = math.sqrt(lo * hi)
      lo, hi = (lo, mid) if spend(mid) <= target else (mid, hi)
    price = hi
  return {"key": key, "target": target, "price": price, "met": seen[price][key] <= target,
          "spend": seen[price], "evaluations": [dict(v, price=p) for p, v in sorted(seen.items())]}


def calibrate(config: ml_collections.ConfigDict, pair: pair_lib.Pair, gate_params, key: str,
              target: float, iters: int = 8) -> dict[str, Any]:
  """bisect_price for a gate trained with `config` (a price range and held-out problems)."""
  price_range = pair_lib.price_range(config)
  if price_range is None:
    raise ValueError("A price target needs a gate told its price: set costs.per_call_range "
                     "(configs/gate.py price_min / price_max)")
  if not config.rl.get("select_problems", 0):
    raise ValueError("A price target is calibrated on held-out training problems: set "
                     "config.rl.select_problems (configs/gate.py select=N)")
  _, held = selection.split_held_out(config, pair_lib.load_records(
      config, pair, config.rl.split, config.rl.num_train_problems))
  episodes = pair_lib.make_episodes(config, pair, held)
  run = selection.greedy_runner(config, pair, pair_lib.make_setup(config, pair), episodes)

  def spend_at(price):
    per = run(gate_params, price)
    return {k: float(np.mean(per[k])) for k in ("calls", "llm_tokens")} | {
        "call_rate": float(np.sum(per["calls"]) / max(1, np.sum(per["decisions"]))),
        "accuracy": float(np.mean(per["correct"]))}

  out = bisect_price(spend_at, key, target, *price_range, iters=iters)
  return dict(out, problems=len(held), split=config.rl.split)
