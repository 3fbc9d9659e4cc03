"""configs/pairs/smollm2_gemma3.py end to end on the real files: SmolLM2-135M-Instruct (GGUF,
byte-level BPE, ChatML) as SLM and Gemma 3 270M (GGUF, SentencePiece-style, BOS, few-shot) as
LLM on GSM-Symbolic JSONL: a gate trained for 2 steps by experiments.train_gate, then
experiments.evaluate (SLM alone, LLM alone, random asking, the threshold, the oracle) on 2
problems, both as a user runs them. Skips, saying why, without the models (`make real-models`)
or the wheel (`make gsm-symbolic`). Minutes on two cores, hence tests/e2e/."""
import json
import os

from collab.data import gsm_symbolic
from collab.data import reasoning_gym_wheel
from collab.models import real_models

import real_runs  # tests/real_runs.py

SLM, LLM, WHEEL = real_models.find("smollm2"), real_models.find("gemma3"), reasoning_gym_wheel.find()
pytestmark = real_runs.skip_without("smollm2", "gemma3")


def test_train_two_steps_and_evaluate(tmp_path):
  data = tmp_path / "gsm"
  gsm_symbolic.build(str(data), gsm_symbolic.Spec(train=16, validation=0, test=4, heldout=2),
                     reasoning_gym_wheel.load_generators(WHEEL))
  config = (f"--config={real_runs.ROOT}/configs/pairs/smollm2_gemma3.py:runlocal,slm_dir={SLM},"
            f"llm_dir={LLM},data_dir={data}")
  workdir = str(tmp_path / "run")
  real_runs.run_entry_point("experiments.train_gate", config, f"--workdir={workdir}")
  assert os.path.isdir(os.path.join(workdir, "gate"))
  real_runs.run_entry_point("experiments.evaluate", config, f"--workdir={workdir}")
  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["num_problems"] == 2
  policies = metrics["policies"]
  assert {"gate", "slm_alone", "llm_alone", "random_0.5", "threshold_-1"} <= set(policies)
  assert policies["slm_alone"]["calls"]["mean"] == 0
  assert policies["llm_alone"]["calls"]["mean"] >= 1  # every step of every problem asks
  assert policies["llm_alone"]["llm_tokens"]["mean"] > 0  # Gemma tokens written
  assert all(0 <= p["accuracy"]["mean"] <= 1 for p in policies.values())
