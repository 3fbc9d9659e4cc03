"""The one training loop, shared by pretraining and gate training.

  for each step from the restored one to num_steps:
    metrics = step_fn(step)            # the update; the trainer keeps its own state
    non-finite loss or gradients -> stop (raise, last checkpoint kept) or skip (count it)
    every log_every steps: metrics to the host -> metrics.jsonl / TensorBoard, a progress line
    (and one line after the run's first step, which holds the compile)
    every ckpt_every steps, at the end, on SIGTERM or at stop_after_steps: save(step)
    SIGTERM: save, then raise preemption.Preempted (exit 143: run again to resume)

The trainer says how to read a metric on the host (`to_host`: a pmapped one is replicated)
and how to save; the loop owns the cadence, NaN handling, preemption and progress output.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

from collab.train import metrics as metrics_lib
from collab.train import preemption

NONFINITE_POLICIES = ("stop", "skip")


def nonfinite_policy(config) -> str:
  """config.on_nonfinite: what a step whose loss or gradients are NaN/inf does. 'stop' (the
  default): raise, keeping the last checkpoint; 'skip': drop that step's update and go on."""
  policy = config.get("on_nonfinite", "stop")
  if policy not in NONFINITE_POLICIES:
    raise ValueError(f"config.on_nonfinite must be one of {NONFINITE_POLICIES}, got {policy!r}")
  return policy


def nonfinite_error(step: int, workdir: str, last_saved: int | None) -> FloatingPointError:
  kept = (f"the last checkpoint (step {last_saved}) is kept" if last_saved is not None
          else "no checkpoint was saved")
  return FloatingPointError(
      f"Non-finite loss or gradients at step {step} in {workdir}: stopped, {kept} and nothing "
      "after it was saved. Lower the learning rate, check the data, or set "
      "config.on_nonfinite='skip' to drop such steps' updates.")


@dataclasses.dataclass(frozen=True)
class Cadence:
  num_steps: int
  log_every: int
  ckpt_every: int
  on_nonfinite: str = "stop"   # NONFINITE_POLICIES


@dataclasses.dataclass
class Outcome:
  step: int          # the last step done
  seconds: float     # wall time of this run's steps
  skipped: int       # steps whose update was dropped as non-finite


def run(cadence: Cadence, start_step: int, step_fn: Callable[[int], Mapping[str, Any]], *,
        save: Callable[[int], None], checkpointer, writer: metrics_lib.MetricsWriter,
        workdir: str, to_host: Callable[[Any], float] = float,
        extra_metrics: Callable[[int, float], Mapping[str, float]] | None = None,
        progress_keys: tuple[str, ...] | None = None, show_progress: bool = True,
        stop_after_steps: int | None = None) -> Outcome:
  """Runs steps start_step .. cadence.num_steps - 1 (or stops early, see module doc).

  step_fn(step) -> metrics (device values, with a boolean 'finite'); save(done) checkpoints
  the trainer's state after `done` steps; extra_metrics(done, seconds) adds logged values
  (e.g. tokens/s); progress_keys: the metrics the progress line shows (default: all)."""
  progress = metrics_lib.Progress(cadence.num_steps, every=cadence.log_every)
  t0, skipped, done = time.time(), 0, start_step
  with preemption.Guard() as guard:
    for step in range(start_step, cadence.num_steps):
      metrics = step_fn(step)
      done = step + 1
      if not to_host(metrics["finite"]):  # one scalar to the host per step
        if cadence.on_nonfinite == "stop":
          raise nonfinite_error(done, workdir, checkpointer.latest_step())
        skipped += 1
        print(f"Step {done}: non-finite loss or gradients, update skipped", flush=True)
      if show_progress and step == start_step and done % cadence.log_every \
          and done != cadence.num_steps:
        # A run with slow steps (real weights on a CPU) would otherwise be silent until
        # log_every steps: say at once that the first step, compile included, is done.
        print(f"step {done}/{cadence.num_steps} done in {time.time() - t0:.1f} s, compile "
              f"included (a progress line every {cadence.log_every} steps)", flush=True)
      if done % cadence.log_every == 0 or done == cadence.num_steps:
        logged = {k: to_host(v) for k, v in metrics.items()}
        logged.update(extra_metrics(done, time.time() - t0) if extra_metrics else {})
        logged["skipped_steps"] = skipped
        writer.write(done, logged)
        if show_progress:
          progress.update(done, {k: logged[k] for k in progress_keys if k in logged}
                          if progress_keys else logged)
      preempted = guard.should_stop(done)
      stopping = preempted or (stop_after_steps is not None
                               and done - start_step >= stop_after_steps)
      if done % cadence.ckpt_every == 0 or done == cadence.num_steps or stopping:
        save(done)
      if preempted:
        checkpointer.wait()
        print(f"SIGTERM: saved step {done}, leaving", flush=True)
        raise preemption.Preempted(done, checkpointer.directory)
      if stopping:
        break
  checkpointer.wait()
  return Outcome(done, time.time() - t0, skipped)
