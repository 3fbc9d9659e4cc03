"""Choosing a gate's price and checkpoint on held-out training problems, by hand: price
bisection for a budget target (collab/train/calibration.py) and checkpoint scores
(collab/train/selection.py). The runs through a real gate are in tests/test_evaluate.py."""
import numpy as np
import pytest

from collab.train import calibration
from collab.train import selection
from configs import gate as gate_configs


def test_price_bisection_finds_the_lowest_price_that_meets_the_target():
  told = []

  def spend_at(price):  # 3 calls up to 0.2, 1.5 up to 0.6, then none
    told.append(price)
    calls = 3.0 if price < 0.2 else 1.5 if price < 0.6 else 0.0
    return {"calls": calls, "llm_tokens": 10 * calls, "accuracy": calls / 3}

  out = calibration.bisect_price(spend_at, "calls", 2.0, 0.01, 1.0, iters=10)
  step = 100 ** (1 / 2 ** 10)  # the bracket's final width, as a factor
  assert 0.2 <= out["price"] <= 0.2 * step and out["met"]
  assert out["spend"] == {"calls": 1.5, "llm_tokens": 15.0, "accuracy": 0.5}
  assert len(told) == len(set(told)) == 12  # both ends, then one price per halving, no repeats
  assert [e["price"] for e in out["evaluations"]] == sorted(told)
  tokens = calibration.bisect_price(spend_at, "llm_tokens", 0.0, 0.01, 1.0)
  assert 0.6 <= tokens["price"] <= 0.6 * 100 ** (1 / 2 ** 8) and tokens["met"]
  ends = [calibration.bisect_price(spend_at, "calls", t, 0.01, 1.0) for t in (5.0, -1.0)]
  assert (ends[0]["price"], ends[0]["met"]) == (0.01, True)   # met at the lowest price
  assert (ends[1]["price"], ends[1]["met"]) == (1.0, False)   # missed at the highest
  with pytest.raises(ValueError, match="one of"):
    calibration.bisect_price(spend_at, "exposed", 1.0, 0.01, 1.0)


def test_price_bisection_on_a_share_of_steps_asked():

  def spend_at(price):  # 6 decisions per problem; 3, 1.5, 0 calls as the price rises
    calls = 3.0 if price < 0.2 else 1.5 if price < 0.6 else 0.0
    return {"calls": calls, "llm_tokens": 10 * calls, "call_rate": calls / 6,
            "accuracy": calls / 3}

  out = calibration.bisect_price(spend_at, "call_rate", 0.25, 0.01, 1.0)
  assert out["met"] and out["spend"]["call_rate"] == 0.25 and 0.2 <= out["price"] < 0.21


def test_selection_scores_rewards_by_hand_and_breaks_ties_late():
  """score = mean over prices and problems of correct - p * calls - token and privacy costs."""
  config = gate_configs.get_config("runlocal,select=4,token_cost=0.01")
  per = {  # step -> (correct, calls, llm_tokens) on 2 problems, the same at every price
      2: ([1, 0], [2, 0], [10, 0]),
      3: ([1, 1], [4, 4], [0, 0]),
      4: ([1, 1], [4, 4], [0, 0])}
  told = []

  def run_greedy(step, price):
    told.append(price)
    c, k, t = (np.asarray(x, np.float64) for x in per[step])
    return {"correct": c, "calls": k, "llm_tokens": t, "exposed": np.zeros(2)}

  fixed = selection.select(config, [2, 3, 4], lambda s: s, run_greedy, None)
  # Fixed call cost 0.02: step 2 scores (1 - 0.04 - 0.1 + 0) / 2 = 0.43; steps 3 and 4:
  # (2 - 8 * 0.02) / 2 = 0.92, a tie that goes to the later step.
  assert fixed["scores"] == pytest.approx({2: 0.43, 3: 0.92, 4: 0.92})
  assert fixed["step"] == 4 and told == [None] * 3
  told.clear()
  ranged = selection.select(config, [2, 4], lambda s: s, run_greedy, (0.01, 1.0))
  ps = np.geomspace(0.01, 1.0, 5)
  assert told == pytest.approx(list(ps) * 2) and ranged["prices"] == pytest.approx(ps)
  # Prices averaging 0.29: step 2 scores 0.5 - 0.05 - mean(p), steps 3-4 1 - 4 mean(p).
  assert ranged["scores"][2] == pytest.approx(0.45 - ps.mean())
  assert ranged["scores"][4] == pytest.approx(1 - 4 * ps.mean())
  assert ranged["step"] == 2
  with pytest.raises(ValueError, match="No checkpoint at or after step 2"):
    selection.candidate_steps([1], config)  # runlocal: 4 steps, the second half from 2
