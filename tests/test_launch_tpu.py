"""launch_tpu.sh: dry run, a fake `gcloud` that records its calls, bad flags, shellcheck."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "launch_tpu.sh")
FLAGS = ["--name=collab-v4", "--zone=us-central2-b", "--accelerator-type=v4-16",
         "--config=configs/gate.py:slm=slm_s,llm=llm_s", "--workdir=gs://bucket/runs/gate"]

FAKE_GCLOUD = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
if "describe" in sys.argv:
  sys.exit(int(os.environ.get("FAKE_TPU_EXISTS", "0")) == 0)  # 1: not found
"""


@pytest.fixture
def fake_gcloud(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "gcloud").write_text(FAKE_GCLOUD.replace("python3", sys.executable, 1))
  (bin_dir / "gcloud").chmod(0o755)
  log = tmp_path / "gcloud.log"

  def launch(*args, exists=False):
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               FAKE_GCLOUD_LOG=str(log), FAKE_TPU_EXISTS="1" if exists else "0")
    result = subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True,
                            timeout=120)
    calls = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return result, calls

  return launch


def _sub(calls, verb):
  return [c for c in calls if c[:4] == ["compute", "tpus", "tpu-vm", verb]]


def test_creates_copies_installs_and_runs_on_every_worker(fake_gcloud):
  result, calls = fake_gcloud(*FLAGS, "--spot", "--", "--resume")
  assert result.returncode == 0, result.stderr
  verbs = [c[3] for c in calls]
  assert verbs == ["describe", "create", "scp", "ssh", "ssh"]
  (create,) = _sub(calls, "create")
  assert create[4] == "collab-v4" and "--spot" in create and "--preemptible" not in create
  assert "--accelerator-type=v4-16" in create and "--zone=us-central2-b" in create
  scp = _sub(calls, "scp")[0]
  assert scp[4].endswith("collab.tar.gz") and "--worker=all" in scp
  install, train = _sub(calls, "ssh")
  assert all("--worker=all" in c for c in (install, train))
  install_cmd = install[-1].split("=", 1)[1]
  assert "pip install" in install_cmd and "requirements.lock" in install_cmd
  assert "'jax[tpu]==0.10.2'" in install_cmd
  assert "command -v gcsfuse" in install_cmd and "apt-get install -y -q gcsfuse" in install_cmd
  run_cmd = train[-1].split("=", 1)[1]
  assert "COLLAB_DISTRIBUTED=1" in run_cmd and "-m experiments.train_gate" in run_cmd
  assert "--config=configs/gate.py:slm=slm_s\\,llm=llm_s" in run_cmd  # shell-quoted
  # The bucket is mounted before the run, and the experiment writes to the mount.
  mount = "gcsfuse --implicit-dirs bucket /tmp/collab-gcs/bucket"
  assert mount in run_cmd and run_cmd.index(mount) < run_cmd.index("experiments.train_gate")
  assert "--workdir=/tmp/collab-gcs/bucket/runs/gate" in run_cmd and run_cmd.endswith("--resume")


def test_reuses_an_existing_slice(fake_gcloud):
  result, calls = fake_gcloud(*FLAGS, "--preemptible", "--experiment=pretrain", exists=True)
  assert result.returncode == 0, result.stderr
  assert [c[3] for c in calls] == ["describe", "scp", "ssh", "ssh"]
  assert "Reusing TPU VM collab-v4" in result.stdout
  assert "-m experiments.pretrain" in _sub(calls, "ssh")[-1][-1]


def test_dry_run_prints_every_command_and_runs_none(fake_gcloud):
  result, calls = fake_gcloud(*FLAGS, "--preemptible", "--dry-run")
  assert result.returncode == 0, result.stderr
  assert calls == []  # gcloud never ran
  lines = result.stdout.splitlines()
  assert [l.split()[5] for l in lines if l.startswith("+ gcloud")] == [
      "describe", "create", "scp", "ssh", "ssh"]
  assert any(l.startswith("+ tar ") for l in lines)
  assert "--preemptible" in lines[1]
  assert "experiments.train_gate" in lines[-1]


@pytest.mark.parametrize("args,message", [
    (FLAGS[1:], "missing --name"),
    ([f for f in FLAGS if "accelerator" not in f], "missing --accelerator-type"),
    (FLAGS[:-1] + ["--workdir=/tmp/run"], "must be a GCS path"),
    (FLAGS[:-1] + ["--workdir=gs://Bad Bucket/x"], "names no valid bucket"),
    (FLAGS + ["--spot", "--preemptible"], "exclude each other"),
    (FLAGS + ["--experiment=bogus"], "unknown --experiment"),
    (FLAGS + ["--zonee=x"], "unknown argument: --zonee=x"),
])
def test_bad_flags_are_refused_before_any_gcloud_call(fake_gcloud, args, message):
  result, calls = fake_gcloud(*args)
  assert result.returncode == 2 and message in result.stderr and "Usage:" in result.stderr
  assert calls == []


def test_shellcheck_clean():
  shellcheck = shutil.which("shellcheck", path=os.path.dirname(sys.executable)) or shutil.which(
      "shellcheck")
  assert shellcheck, "shellcheck missing: install the test extra (pip install -e '.[test]')"
  result = subprocess.run([shellcheck, "--severity=style", SCRIPT], capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stdout
