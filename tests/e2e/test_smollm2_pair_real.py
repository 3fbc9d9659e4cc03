"""configs/pairs/smollm2.py end to end on the real files: SmolLM2-135M-Instruct (GGUF) as SLM
and LLM on GSM-Symbolic JSONL, a gate trained for 2 steps by experiments.train_gate, then
experiments.evaluate with every baseline on 4 problems, both as a user runs them. Skips, saying
why, without the model (`make real-models`) or the wheel (`make gsm-symbolic`). Minutes on two
cores (the 30-layer rollout compiles in each process), hence tests/e2e/."""
import json
import os

from collab.data import gsm_symbolic
from collab.data import reasoning_gym_wheel
from collab.models import real_models

import real_runs  # tests/real_runs.py

MODEL, WHEEL = real_models.find("smollm2"), reasoning_gym_wheel.find()
pytestmark = real_runs.skip_without("smollm2")


def test_train_two_steps_and_evaluate_every_baseline(tmp_path):
  data = tmp_path / "gsm"
  gsm_symbolic.build(str(data), gsm_symbolic.Spec(train=64, validation=0, test=8, heldout=4),
                     reasoning_gym_wheel.load_generators(WHEEL))
  config = f"--config={real_runs.ROOT}/configs/pairs/smollm2.py:runlocal,data_dir={data}"
  workdir = str(tmp_path / "run")
  real_runs.run_entry_point("experiments.train_gate", config, f"--workdir={workdir}")
  assert os.path.isdir(os.path.join(workdir, "gate"))
  real_runs.run_entry_point("experiments.evaluate", config, f"--workdir={workdir}")
  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["num_problems"] == 4
  policies = metrics["policies"]
  assert {"gate", "slm_alone", "llm_alone", "oracle"} <= set(policies), sorted(policies)
  assert policies["slm_alone"]["calls"]["mean"] == 0
  assert policies["llm_alone"]["calls"]["mean"] >= 1  # every step of every problem asks
  assert all(0 <= p["accuracy"]["mean"] <= 1 for p in policies.values())
