"""What the end-to-end tests on real files share: the skip without the files, and running an
entry point as a user does."""
import os
import subprocess
import sys

import pytest

from collab.data import reasoning_gym_wheel
from collab.models import real_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def skip_without(*models: str):
  """A skip mark, with every reason, unless the GGUF files of `models` (real_models names)
  and the reasoning-gym wheel are present."""
  reasons = [real_models.missing_reason(m) for m in models if real_models.find(m) is None]
  if reasoning_gym_wheel.find() is None:
    reasons.append(reasoning_gym_wheel.missing_reason())
  return pytest.mark.skipif(bool(reasons), reason="; ".join(reasons))


def run_entry_point(module: str, *args: str) -> str:
  """`python -m module args` from the repository root on one CPU device, as a user's machine
  has (the suite's 8 fake devices would split a few problems per step over 8), with XLA's
  usual optimisation; asserts it succeeds and returns its output."""
  env = dict(os.environ, XLA_FLAGS="")
  out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=1800, env=env)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  return out.stdout + out.stderr
