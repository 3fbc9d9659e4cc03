"""Training metrics: a JSONL log plus TensorBoard scalars, and a console progress line.

`workdir/metrics.jsonl` holds one `{"step": s, name: value, ...}` object per line and is
what analysis code reads (`read_metrics`); `workdir/tb/` holds the same scalars for
TensorBoard (written with tensorboardX, so TensorFlow is not needed).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from typing import Any, Mapping

import numpy as np

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def _to_float(name: str, value: Any) -> float:
  """Python/numpy/jax scalar (or size-1 array) -> float; anything else is a caller bug."""
  array = np.asarray(value)  # also pulls a jax.Array to host
  numeric = np.issubdtype(array.dtype, np.number) or array.dtype == bool
  if array.size != 1 or not numeric:
    raise ValueError(f"Metric {name!r} must be a numeric scalar, got {type(value).__name__} "
                     f"of shape {array.shape} and dtype {array.dtype}")
  return float(array.reshape(()))


class MetricsWriter:
  """Appends metrics to `workdir/metrics.jsonl` and TensorBoard (`workdir/tb`).

  Appending (never truncating) keeps the rows of earlier runs when training resumes in
  the same workdir; steps replayed after a resume then appear twice, later rows last.
  `enabled=False` (for non-zero processes of a multi-host run) makes every call a no-op
  and creates no files.
  """

  def __init__(self, workdir: os.PathLike | str, *, enabled: bool = True):
    self.workdir = os.fspath(workdir)
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    os.makedirs(self.workdir, exist_ok=True)
    path = os.path.join(self.workdir, METRICS_FILE)
    # A crash can leave a truncated last line; start on a fresh line so the next row
    # stays readable instead of being glued to the broken one.
    needs_newline = _ends_without_newline(path)
    self._jsonl = open(path, "a", encoding="utf-8")
    if needs_newline:
      self._jsonl.write("\n")
    import tensorboardX  # here, so disabled writers and readers don't pay for the import
    self._tb = tensorboardX.SummaryWriter(os.path.join(self.workdir, TB_DIR))

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Logs scalar `metrics` at `step` (values converted to float)."""
    if not self.enabled:
      return
    step = int(step)
    if "step" in metrics:
      raise ValueError("'step' is reserved for the step number")
    row = {name: _to_float(name, value) for name, value in metrics.items()}
    # Flushed per row: rows are small and rare, and a preempted job keeps them all.
    self._jsonl.write(json.dumps({"step": step, **row}) + "\n")
    self._jsonl.flush()
    for name, value in row.items():
      self._tb.add_scalar(name, value, step)

  def write_text(self, step: int, tag: str, text: str) -> None:
    """Logs free text (a sample, a config dump) to TensorBoard's text tab."""
    if self.enabled:
      self._tb.add_text(tag, str(text), int(step))

  def flush(self) -> None:
    if self.enabled:
      self._jsonl.flush()
      self._tb.flush()

  def close(self) -> None:
    if self.enabled and self._jsonl is not None:
      self._jsonl.close()
      self._tb.close()
      self._jsonl = self._tb = None
      self.enabled = False  # later calls are no-ops instead of writing to closed files

  def __enter__(self) -> MetricsWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _ends_without_newline(path: str) -> bool:
  if not os.path.exists(path) or os.path.getsize(path) == 0:
    return False
  with open(path, "rb") as f:
    f.seek(-1, os.SEEK_END)
    return f.read(1) != b"\n"


def read_metrics(workdir: os.PathLike | str) -> list[dict[str, Any]]:
  """Rows of `workdir/metrics.jsonl` in file order; [] if there is none.

  Lines that do not parse (a row cut short by a crash) are skipped with a warning."""
  path = os.path.join(os.fspath(workdir), METRICS_FILE)
  if not os.path.exists(path):
    return []
  rows, broken = [], 0
  with open(path, encoding="utf-8") as f:
    for line in f:
      if not line.strip():
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        broken += 1
  if broken:
    warnings.warn(f"Skipped {broken} truncated line(s) in {path}", stacklevel=2)
  return rows


def _format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _format_value(value: Any) -> str:
  try:
    return f"{float(value):.4g}"
  except (TypeError, ValueError):
    return str(value)


class Progress:
  """Prints `step/total, steps/s, ETA, metrics` every `every` steps, flushed.

  The rate is measured from the first `update`, so the compile time of the first
  jitted step, and the steps done before a resume, do not distort it.
  """

  def __init__(self, total_steps: int, *, every: int = 100, file=None):
    self.total_steps = int(total_steps)
    self.every = max(1, int(every))
    self.file = file  # None: sys.stdout at print time (pytest's capsys swaps it)
    self._start: tuple[int, float] | None = None

  def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> str | None:
    """Prints (and returns) a line when `step` is a multiple of `every` or the last."""
    step, now = int(step), time.perf_counter()
    if self._start is None:
      self._start = (step, now)
    if step % self.every and step != self.total_steps:
      return None
    start_step, start_time = self._start
    elapsed = now - start_time
    rate = (step - start_step) / elapsed if elapsed > 0 and step > start_step else float("nan")
    eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
    width = len(str(self.total_steps))
    parts = [f"step {step:>{width}}/{self.total_steps}",
             f"{rate:.3g} steps/s" if math.isfinite(rate) else "- steps/s",
             f"ETA {_format_duration(eta)}"]
    if metrics:
      parts.append(" ".join(f"{name} {_format_value(v)}" for name, v in metrics.items()))
    line = " | ".join(parts)
    print(line, file=self.file or sys.stdout, flush=True)
    return line
