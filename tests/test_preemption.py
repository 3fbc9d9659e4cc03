"""Preemption: pretraining and gate training killed mid-run resume to the same parameters.

Each training runs as a subprocess (the experiments' command lines) on tiny runlocal configs:
once uninterrupted, and once killed with SIGKILL after a periodic checkpoint, restarted, sent
SIGTERM (which must checkpoint the step in progress and exit with status 143), and restarted
again to the end. Data order is a pure function of the step and CPU runs are deterministic, so
the final parameters must equal the uninterrupted run's exactly.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import fake_models
import xla_env
from collab import checkpoint as ckpt_lib
from collab import pair as pair_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu",
           XLA_FLAGS=xla_env.flags(2))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  """Shared data and tokenizer, and a random-init SLM x LLM pair exported for the gate."""
  root = tmp_path_factory.mktemp("preempt")
  config = fake_models.gate_config(root)
  fake_models.export_random_pair(config)
  return root, config


def _command(kind, root, config, workdir):
  common = [f"--workdir={workdir}", f"--config.assets_dir={config.assets_dir}",
            "--config.task.num_train=300"]
  if kind == "pretrain":
    return [sys.executable, "-m", "experiments.pretrain",
            "--config=configs/pretrain.py:runlocal,steps=600", "--config.ckpt_every=20",
            "--config.log_every=100", "--config.eval.num_problems=4", *common]
  return [sys.executable, "-m", "experiments.train_gate",
          "--config=configs/gate.py:runlocal,steps=40", "--config.ckpt_every=4",
          "--config.log_every=20", f"--config.pretrain_dir={config.pretrain_dir}",
          "--config.rl.num_train_problems=16", *common]


def _start(cmd, log):
  return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def _steps(workdir):
  ckpt = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt):
    return []
  return sorted(int(n) for n in os.listdir(ckpt) if n.isdigit())


def _run_until_checkpoint(cmd, workdir, log, after, sig):
  """Starts cmd, sends `sig` as soon as a checkpoint later than `after` is on disk."""
  proc = _start(cmd, log)
  deadline = time.time() + 300
  while not [s for s in _steps(workdir) if s > after]:
    assert proc.poll() is None, f"exited early ({proc.returncode}): {open(log.name).read()}"
    assert time.time() < deadline, "no checkpoint within 300 s"
    time.sleep(0.02)
  proc.send_signal(sig)
  return proc.wait(timeout=300)


def _params(kind, workdir):
  return pair_lib.load_model(workdir)[0] if kind == "pretrain" else pair_lib.load_gate(workdir)[0]


def sigkill_and_sigterm_resume(dirs, kind, tmp_path):
  root, config = dirs
  logs = {n: open(tmp_path / f"{n}.log", "w") for n in ("full", "kill", "term", "end")}
  full_dir, split_dir = str(tmp_path / "full"), str(tmp_path / "split")

  # Killed without warning after its first checkpoint: nothing but checkpoints survives.
  cmd = _command(kind, root, config, split_dir)
  rc = _run_until_checkpoint(cmd, split_dir, logs["kill"], 0, signal.SIGKILL)
  assert rc == -signal.SIGKILL
  killed_at = _steps(split_dir)[-1]
  total = 600 if kind == "pretrain" else 40
  assert 0 < killed_at < total

  # Restarted, then asked to stop: it saves the step in progress and exits with 143.
  rc = _run_until_checkpoint(cmd, split_dir, logs["term"], killed_at, signal.SIGTERM)
  out = open(logs["term"].name).read()
  assert rc == 143, out
  assert re.search(r"Resumed (gate training at|from) step " + str(killed_at), out), out
  saved = int(re.search(r"SIGTERM: saved step (\d+), leaving", out).group(1))
  assert killed_at < saved < total and _steps(split_dir)[-1] == saved
  with ckpt_lib.Checkpointer(os.path.join(split_dir, "checkpoints")) as ckpt:
    assert ckpt.latest_step() == saved

  # Restarted once more, it finishes; an uninterrupted run ends with the same parameters.
  subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=logs["end"], stderr=subprocess.STDOUT,
                 check=True, timeout=600)
  subprocess.run(_command(kind, root, config, full_dir), cwd=ROOT, env=ENV,
                 stdout=logs["full"], stderr=subprocess.STDOUT, check=True, timeout=600)
  full, split = _params(kind, full_dir), _params(kind, split_dir)
  assert jax.tree.structure(full) == jax.tree.structure(split)
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(split)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_gate_training_killed_and_preempted_resumes_to_the_same_parameters(dirs, tmp_path):
  """Gate training (pretraining shares its loop, collab/train/loop.py; its own run is in
  tests/e2e/test_preemption_e2e.py)."""
  sigkill_and_sigterm_resume(dirs, "gate", tmp_path)
