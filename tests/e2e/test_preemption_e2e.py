"""Pretraining killed (SIGKILL) and preempted (SIGTERM) mid-run resumes to the parameters of
an uninterrupted run: the pretraining case of tests/test_preemption.py, whose 600-step runs
are too long for the fast suite (gate training, through the same loop, runs there)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/

from test_preemption import dirs, sigkill_and_sigterm_resume  # noqa: E402,F401,F811  (a fixture)


def test_pretraining_killed_and_preempted_resumes_to_the_same_parameters(dirs, tmp_path):  # noqa: F811
  sigkill_and_sigterm_resume(dirs, "pretrain", tmp_path)
