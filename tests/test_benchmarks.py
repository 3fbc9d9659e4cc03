"""The benchmarks compare honest baselines: the Python-loop rollout writes exactly what the
jitted rollout writes (or its speedup would compare different work), and the work counted for
the LLM follows its calls. Tiny models, seconds. The benchmarks' --quick runs (timing rounds,
a matmul peak) are in tests/e2e/test_benchmarks_e2e.py.
"""

import jax
import numpy as np
import pytest

from benchmarks import common
from benchmarks import python_loop
from collab import rollout as rollout_lib


@pytest.fixture(scope="module")
def env():
  return common.make_env(slm="test_tiny", llm="gpt2_tiny", batch_size=8, num_steps=4,
                         step_tokens=6)


# The learned gate's case runs in test_rollout_quick (outputs_equal).
def test_python_loop_writes_what_the_jitted_rollout_writes(env):
  # Redacted asks at random steps; capacity 3: some asks overflow.
  policy, value, capacity = rollout_lib.Policy(kind="random", ask_kind="ask_redacted"), 0.4, 3
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
