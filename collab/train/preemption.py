"""Preemption: SIGTERM asks a training loop to checkpoint the step it is on and leave.

Schedulers (spot / preemptible TPU VMs, Kubernetes, Slurm) send SIGTERM some seconds before
they kill a job. `Guard` turns the signal into a flag that the loop reads after each step; the
loop then saves a checkpoint of that step and raises `Preempted`, a SystemExit with the
conventional status 143 (128 + SIGTERM): an absl entry point exits without a traceback, an
in-process pipeline (the quickstart) stops instead of going on to its next stage, and the
restarted job resumes from that checkpoint. SIGKILL cannot be caught: a killed run resumes from
its last periodic checkpoint, and exact resume makes the result the same either way.

With several processes every one must stop at the same step (checkpoint saves are
collective): there JAX's preemption service (started by jax.distributed.initialize, it catches
SIGTERM itself) picks the step, through the coordination service rather than a device
collective.
"""
from __future__ import annotations

import signal
import threading

import jax

EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(SystemExit):
  """Raised after the checkpoint of `step` is on disk; exits with status 143."""

  def __init__(self, step: int, directory: str):
    super().__init__(EXIT_STATUS)
    self.step, self.directory = step, directory

  def __str__(self) -> str:
    return f"Preempted (SIGTERM): checkpoint of step {self.step} saved in {self.directory}"


class Guard:
  """`with Guard() as guard: ... if guard.should_stop(step): save; raise Preempted(...)`.

  Installs a SIGTERM handler for the duration (main thread only: Python delivers signals
  there; elsewhere the guard never fires) and restores the previous one on exit."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __enter__(self) -> Guard:
    # With several processes JAX's preemption service owns SIGTERM: leave its handler be.
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def should_stop(self, step: int) -> bool:
    """Whether to checkpoint `step` and leave: SIGTERM came (the same answer on every process;
    call it at every step)."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.reached_preemption_sync_point(step)
