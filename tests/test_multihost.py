"""Multi-host gate training and evaluation: 2 CPU processes (jax.distributed on localhost, 2
devices each) train the gate to the parameters one process with 4 devices reaches on the same
global batch, and evaluate it to the same metrics.

Each process feeds its local devices its slice of the global batch; pmap's collectives cross
the processes (gloo); process 0 alone writes metrics and the gate export; orbax writes the
training checkpoints together.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import portpicker
import pytest

import fake_models
import xla_env
from collab import checkpoint as ckpt_lib
from collab.train import metrics as metrics_lib
from collab import pair as pair_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  """Shared data and tokenizer, and a random-init SLM x LLM pair exported for the gate (built
  here once: processes that prepared them together would race)."""
  config = fake_models.gate_config(tmp_path_factory.mktemp("multihost"))
  fake_models.export_random_pair(config)
  return config


def _launch(config, module_args, num_processes, devices_per_process, log_path):
  """Runs `python -m <module_args>` as num_processes processes; returns their logs."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_env.flags(devices_per_process))
  if num_processes > 1:
    env.update(COLLAB_COORDINATOR=f"localhost:{portpicker.pick_unused_port()}",
               COLLAB_NUM_PROCESSES=str(num_processes))
  cmd = [sys.executable, "-m", *module_args, f"--config.assets_dir={config.assets_dir}",
         f"--config.pretrain_dir={config.pretrain_dir}", "--config.task.num_train=300",
         "--config.rl.num_train_problems=16"]
  procs = []
  for i in range(num_processes):
    log = open(f"{log_path}_{i}.log", "w")
    procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(env, COLLAB_PROCESS_ID=str(i))), log))
  for proc, log in procs:
    assert proc.wait(timeout=600) == 0, open(log.name).read()[-3000:]
  return [open(log.name).read() for _, log in procs]


def _train_gate(config, workdir, num_processes, devices_per_process, log_dir):
  args = ["experiments.train_gate", f"--config=configs/gate.py:runlocal,steps={STEPS}",
          f"--workdir={workdir}", "--config.log_every=1", "--config.ckpt_every=2"]
  return _launch(config, args, num_processes, devices_per_process,
                 os.path.join(log_dir, os.path.basename(workdir)))


@pytest.fixture(scope="module")
def one_process_gate(config, tmp_path_factory):
  """The gate one process with 4 devices trains."""
  root = tmp_path_factory.mktemp("one_process")
  _train_gate(config, str(root / "one"), 1, 4, root)
  return str(root / "one")


def test_two_processes_train_the_gate_like_one(config, one_process_gate, tmp_path):
  one, two = one_process_gate, str(tmp_path / "two")
  logs = _train_gate(config, two, 2, 2, tmp_path)
  assert "Process 1 of 2: 2 local / 4 global devices" in logs[1]

  single, multi = pair_lib.load_gate(one)[0], pair_lib.load_gate(two)[0]
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


def test_two_processes_evaluate_like_one(config, one_process_gate, tmp_path):
  """13 problems: the processes' shares (7 and 6) are padded to equal batches, gathered, and
  every policy's summary (random asking included, seeded per row) matches one process's."""
  metrics = {}
  for name, procs, devices in (("one", 1, 4), ("two", 2, 2)):
    workdir = str(tmp_path / name)
    shutil.copytree(one_process_gate, workdir)
    _launch(config, ["experiments.evaluate", "--config=configs/gate.py:runlocal",
                     f"--workdir={workdir}", "--config.eval.num_problems=13",
                     # One baseline of each kind.
                     "--config.eval.every_k=(2,)", "--config.eval.fixed_steps=((0,),)",
                     "--config.eval.thresholds=(-0.5,)", "--config.eval.random_rates=(0.25,)"],
            procs, devices, os.path.join(str(tmp_path), f"eval_{name}"))
    with open(os.path.join(workdir, "metrics.json")) as f:
      metrics[name] = json.load(f)
  one, two = metrics["one"], metrics["two"]
  assert two["num_problems"] == one["num_problems"] == 13
  assert set(two["policies"]) == set(one["policies"])
  for name, want in one["policies"].items():
    got = dict(two["policies"][name])
    got.pop("seconds"), want.pop("seconds")
    assert _flat(got) == pytest.approx(_flat(want)), name
  assert _flat(two["comparison"]) == pytest.approx(_flat(one["comparison"]))


def _flat(tree, prefix=""):
  """Nested dicts -> {'a/b': leaf} (pytest.approx compares flat dicts only)."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}
