"""Multi-host gate training: 2 CPU processes (jax.distributed on localhost, 2 devices each)
train the gate to the parameters one process with 4 devices reaches on the same global batch.

Each process feeds its local devices its slice of the global batch; pmap's collectives cross
the processes (gloo); process 0 alone writes metrics and the gate export; orbax writes the
training checkpoints together.
"""
from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import portpicker
import pytest

import fake_models
from collab import checkpoint as ckpt_lib
from collab.train import gate
from collab.train import metrics as metrics_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  """Shared data and tokenizer, and a random-init SLM x LLM pair exported for the gate (built
  here once: processes that prepared them together would race)."""
  config = fake_models.gate_config(tmp_path_factory.mktemp("multihost"))
  fake_models.export_random_pair(config)
  return config


def _train_gate(config, workdir, num_processes, devices_per_process, log_dir):
  cmd = [sys.executable, "-m", "experiments.train_gate",
         f"--config=configs/gate.py:runlocal,steps={STEPS}", f"--workdir={workdir}",
         f"--config.assets_dir={config.assets_dir}", "--config.task.num_train=300",
         f"--config.pretrain_dir={config.pretrain_dir}", "--config.rl.num_train_problems=16",
         "--config.log_every=1", "--config.ckpt_every=2"]
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
  if num_processes > 1:
    env.update(COLLAB_COORDINATOR=f"localhost:{portpicker.pick_unused_port()}",
               COLLAB_NUM_PROCESSES=str(num_processes))
  procs = []
  for i in range(num_processes):
    log = open(os.path.join(log_dir, f"{os.path.basename(workdir)}_{i}.log"), "w")
    procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(env, COLLAB_PROCESS_ID=str(i))), log))
  for proc, log in procs:
    assert proc.wait(timeout=600) == 0, open(log.name).read()[-3000:]
  return [open(log.name).read() for _, log in procs]


def test_two_processes_train_the_gate_like_one(config, tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  _train_gate(config, one, 1, 4, tmp_path)
  logs = _train_gate(config, two, 2, 2, tmp_path)
  assert "Process 1 of 2: 2 local / 4 global devices" in logs[1]

  single, multi = gate.load_gate(one)[0], gate.load_gate(two)[0]
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(multi)):
    # Cross-process all-reduces (gloo) sum in another order than one process's: float32
    # rounding, as in the 1-vs-8-device test (test_gate_train.py), not a different update.
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  # Process 0 alone logged (one row per step), and the checkpoints are complete.
  rows = metrics_lib.read_metrics(two)
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  for got, want in zip(rows, metrics_lib.read_metrics(one)):
    got.pop("seconds"), want.pop("seconds")
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)  # all-reduce order may differ
  with ckpt_lib.Checkpointer(os.path.join(two, "checkpoints")) as ckpt:
    assert ckpt.all_steps() == [2, STEPS]
