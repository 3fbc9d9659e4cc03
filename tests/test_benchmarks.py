"""The benchmarks run (--quick), print one JSON object last, and compare honest baselines.

The Python-loop baseline must write exactly what the jitted rollout writes, or its speedup would
compare different work; these checks run on tiny models in seconds, the --quick runs in about a
minute each (they compile the rollout).
"""
import json

import jax
import numpy as np
import pytest

from benchmarks import call_rate
from benchmarks import common
from benchmarks import python_loop
from benchmarks import roofline
from benchmarks import rollout as rollout_bench
from benchmarks import torch_rollout
from collab import rollout as rollout_lib


@pytest.fixture(scope="module")
def env():
  return common.make_env(slm="test_tiny", llm="gpt2_tiny", batch_size=8, num_steps=4,
                         step_tokens=6)


# The learned gate's case runs in test_rollout_quick (outputs_equal).
@pytest.mark.parametrize("policy,value,capacity", [
    (rollout_lib.Policy(kind="every_k", k=2, ask_kind="ask_redacted"), 0.0, 0),
    (rollout_lib.Policy(kind="random"), 0.4, 3),  # capacity 3: some asks overflow
])
def test_python_loop_writes_what_the_jitted_rollout_writes(env, policy, value, capacity):
  e = common.with_setup(env, policy=policy, llm_capacity=capacity, llm_sizes=2)
  steps, final = jax.device_get(common.jitted_rollout(e, value))
  out = python_loop.python_loop_rollout(e.slm, e.llm, e.gate, e.batch, jax.random.PRNGKey(0),
                                        value, setup=e.setup, policy=e.policy)
  for field in final._fields:
    np.testing.assert_array_equal(out[field], np.asarray(getattr(final, field)), err_msg=field)
  np.testing.assert_array_equal(out["actions_SxB"], steps.action)
  assert 0 < int(final.calls_B.sum()) and (capacity == 0 or int(final.overflow_B.sum()) > 0)


def test_rollout_work_counts_llm_flops_only_for_calls(env):
  # The setup of the random case above: its compiled rollout is reused.
  e = common.with_setup(env, policy=rollout_lib.Policy(kind="random"), llm_capacity=3,
                        llm_sizes=2)
  works = []
  for rate in (0.0, 0.5):
    steps, _ = jax.device_get(common.jitted_rollout(e, rate))
    works.append(common.rollout_work(e.setup, e.batch, steps))
  assert works[0]["llm_flops"] == 0 and works[1]["llm_flops"] > works[1]["llm_flops_useful"] > 0
  assert works[1]["slm_flops"] > works[0]["slm_flops"] > 0  # absorbing LLM steps costs the SLM


def _last_json(capsys):
  lines = capsys.readouterr().out.strip().splitlines()
  return json.loads(lines[-1])


def test_rollout_quick(capsys, tmp_path):
  out = tmp_path / "rollout.json"
  rollout_bench.main(["--quick", "--out", str(out)])
  result = _last_json(capsys)
  assert result == json.loads(out.read_text())
  for key in ("tokens_per_s", "speedup_vs_python_loop", "speedup_vs_torch", "batch", "slm",
              "llm", "device"):
    assert key in result
  assert result["tokens_per_s"] > 0 and result["speedup_vs_python_loop"] > 0
  assert result["python_loop"]["outputs_equal"]
  # Bucketed attention (the default) writes what attention over the whole cache writes.
  assert result["kv_buckets"] > 1 and result["speedup_vs_whole_cache"] > 0
  assert result["jitted_whole_cache"]["rows_identical"] == 1.0
  if torch_rollout.IMPORT_ERROR:
    assert result["speedup_vs_torch"] is None and result["torch"]["skipped"]
  else:
    assert result["speedup_vs_torch"] > 0 and result["torch"]["calls_equal"]
    assert result["torch"]["rows_identical"] >= 0.75  # float rounding may flip a rare token


def test_call_rate_quick(capsys):
  call_rate.main(["--quick"])
  result = _last_json(capsys)
  rates = [row["rate"] for row in result["rates"]]
  assert rates == list(call_rate.RATES)
  assert result["llm_cost_ratio_at_1_8"] > 0
  assert all(row["overflow"] == 0 for row in result["rates"])
  assert result["rates"][0]["llm_flops"] == 0 and result["rates"][0]["calls"] == 0


def test_roofline_quick(capsys):
  roofline.main(["--quick"])
  result = _last_json(capsys)
  assert 0 < result["rollout_fraction_of_peak"] and 0 < result["train_fraction_of_peak"]
  assert result["rollout_peak_memory_bytes"] > 0 and result["train_peak_memory_bytes"] > 0
  assert len(result["scaling"]) == 3
