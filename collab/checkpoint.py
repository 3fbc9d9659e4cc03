"""Checkpoints: the one module that imports orbax.

Two kinds, as in maxtext/nanodo:

* `Checkpointer` -- training state (params, optax state, counters, rng keys) under
  `directory/<step>/`, kept by an `ocp.CheckpointManager` to resume after preemption.
  Each step holds two items: `state` (the pytree, orbax StandardSave) and `extra`
  (a JSON dict saved next to it: tokenizer fingerprint, config, ...).
* `save_params` / `load_params` -- a params-only export (no optimizer state) for
  evaluation: `path/params` (orbax) and `path/metadata/metadata` (plain JSON).

Saves are atomic: orbax writes `<step>.orbax-checkpoint-tmp-<ts>` and renames it when
complete (on GCS it writes `commit_success.txt` instead), and step discovery ignores
tmp directories, so an interrupted save is never taken as the latest step.

PRNG keys: orbax 0.12.8 saves and restores new-style typed keys (`jax.random.key`)
directly; raw uint32 keys (`jax.random.PRNGKey` or `jax.random.key_data`) work too.
Arrays replicated by `jax.pmap` save as well, but restore sharded over the devices;
unreplicate (`x[0]`) before saving to keep checkpoints independent of the device count.

Several processes (jax.distributed): every process calls `Checkpointer.save` / `restore` for
the same steps (orbax coordinates them; host numpy leaves are written by process 0 alone), while
a params export is written or read by whichever single process calls `save_params` /
`load_params`.
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_policies

from collab import errors

PyTree = Any

_STATE, _EXTRA = "state", "extra"
_PARAMS, _METADATA = "params", "metadata"


class CheckpointRestoreError(errors.UserError, RuntimeError):
  """A checkpoint exists but cannot be read (corrupt, partial, or wrong target)."""


class _DropOrbaxInfo(logging.Filter):
  """Orbax logs several INFO lines per save through the shared `absl` logger; under an
  absl app (INFO on) they drown the training log. Keep its warnings and errors."""

  def filter(self, record: logging.LogRecord) -> bool:
    from_orbax = f"{os.sep}orbax{os.sep}" in record.pathname
    return record.levelno >= logging.WARNING or not from_orbax


def _quiet_orbax_logging() -> None:
  absl_logger = logging.getLogger("absl")
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


_quiet_orbax_logging()


def _json_ready(obj: dict | None, what: str) -> dict:
  """Returns `obj` as builtin JSON types (numpy/jax scalars and arrays converted).

  Checked here, eagerly: orbax would fail later, in its async save thread."""
  if obj is None:
    return {}
  if not isinstance(obj, dict):
    raise TypeError(f"{what} must be a dict, got {type(obj).__name__}")

  def to_builtin(x):
    if isinstance(x, (np.generic, np.ndarray, jax.Array)):
      return np.asarray(x).tolist()
    raise TypeError(f"{what} is not JSON-serialisable: {type(x).__name__} value {x!r}")

  return json.loads(json.dumps(obj, default=to_builtin))


def _restore_error(what: str, path: str, err: Exception) -> CheckpointRestoreError:
  first_line = (str(err).strip().splitlines() or [""])[0][:500]
  return CheckpointRestoreError(
      f"Could not restore {what} at {path}: it is corrupt or "
      f"incomplete, or `target` does not match the saved structure. "
      f"Cause: {type(err).__name__}: {first_line}")


class Checkpointer:
  """Training-state checkpoints in `directory`, one sub-directory per step.

  Example::

    with Checkpointer(workdir / "ckpt", max_to_keep=3) as ckpt:
      if ckpt.latest_step() is not None:
        state, extra = ckpt.restore(target=jax.eval_shape(lambda: state))
      ...
      ckpt.save(step, state, extra={"tokenizer": fingerprint})

  Saves are asynchronous (the arrays are copied to host first, so the caller may
  donate or overwrite them); `wait()` blocks until the last one is on disk.
  """

  def __init__(self, directory: os.PathLike | str, *, max_to_keep: int | None = 3,
               save_interval_steps: int = 1, metadata: dict | None = None):
    """`max_to_keep=None` keeps every step; `metadata` is saved once per directory
    (orbax root metadata) and read back by `.metadata`."""
    self.directory = os.path.abspath(os.fspath(directory))
    # 0.12.8 marks CheckpointManagerOptions.max_to_keep deprecated and prefers policy
    # objects; these are what max_to_keep/save_interval_steps expanded to internally.
    save_policy = ocp_policies.AnySavePolicy([
        ocp_policies.FixedIntervalPolicy(save_interval_steps),
        ocp_policies.PreemptionCheckpointingPolicy(),
        ocp_policies.InitialSavePolicy(),
    ])
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=save_policy,
        preservation_policy=ocp_policies.LatestN(n=max_to_keep),
        create=True)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=(_STATE, _EXTRA),
        metadata=_json_ready(metadata, "metadata") or None)

  @property
  def metadata(self) -> dict:
    """The directory-level metadata given when the directory was first created."""
    root = self._manager.metadata()
    return dict(getattr(root, "custom_metadata", None) or {})

  def save(self, step: int, state: PyTree, *, extra: dict | None = None,
           force: bool = False) -> bool:
    """Saves `state` and the JSON dict `extra` as `step`; returns whether it saved.

    Steps off `save_interval_steps` are skipped unless `force`. A step already on
    disk raises orbax's StepAlreadyExistsError."""
    args = ocp.args.Composite(**{
        _STATE: ocp.args.StandardSave(state),
        _EXTRA: ocp.args.JsonSave(_json_ready(extra, "extra")),
    })
    return self._manager.save(int(step), args=args, force=force)

  def all_steps(self) -> list[int]:
    """Saved steps, ascending (as known to this process; see `reload`)."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def reload(self) -> None:
    """Re-reads the step list from disk, for a reader watching another process's saves."""
    self._manager.reload()

  def restore(self, step: int | None = None, *, target: PyTree) -> tuple[PyTree, dict]:
    """Returns `(state, extra)` for `step` (latest if None).

    `target` is a pytree with the saved structure: abstract leaves
    (`jax.ShapeDtypeStruct`, e.g. from `jax.eval_shape`) or concrete arrays. Restored
    leaves take its dtypes and, where given, shardings (single device otherwise);
    numpy leaves come back as numpy, Python scalars as Python scalars.
    `target=None` restores the layout recorded at save time.

    Raises FileNotFoundError when there is no such step, CheckpointRestoreError when
    it cannot be read.
    """
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise FileNotFoundError(f"No checkpoint found in {self.directory}")
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(
          f"No checkpoint for step {step} in {self.directory} (saved steps: {steps})")
    args = ocp.args.Composite(**{
        _STATE: ocp.args.StandardRestore(target),
        _EXTRA: ocp.args.JsonRestore(),
    })
    try:
      restored = self._manager.restore(step, args=args)
    except (ValueError, KeyError, OSError, TypeError) as err:
      # orbax/tensorstore report damage as ValueError (with tensorstore status text),
      # JSONDecodeError or KeyError (missing item); turn it into one clear message.
      step_dir = os.path.join(self.directory, str(step))
      error = _restore_error(f"checkpoint step {step}", step_dir, err)
      older = [s for s in steps if s < step]
      # Nothing is deleted here: the user decides whether the step is lost or recoverable.
      hint = (f" Older saved steps: {older}; move {step_dir} aside to resume from step "
              f"{older[-1]}." if older else " No older step is saved.")
      raise CheckpointRestoreError(str(error) + hint) from err
    return restored[_STATE], dict(restored[_EXTRA] or {})

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases orbax's threads."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def save_params(path: os.PathLike | str, params: PyTree, *, metadata: dict,
              overwrite: bool = False) -> None:
  """Exports `params` alone (no optimizer state) with a JSON `metadata` dict (model
  preset, tokenizer fingerprint, training step, ...) to the directory `path`.

  Blocks until written; the directory appears atomically. An existing `path` raises
  FileExistsError unless `overwrite`; then the new export is written beside it and swapped in
  only once complete, so a failed save leaves the old export intact."""
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"Params export {path} exists; pass overwrite=True")
  args = ocp.args.Composite(**{
      _PARAMS: ocp.args.StandardSave(params),
      _METADATA: ocp.args.JsonSave(_json_ready(metadata, "metadata")),
  })
  # Synchronous Checkpointer: an export is written once, and the caller may exit
  # right after.
  with staging_dir(path) as tmp:
    with _single_process_checkpointer() as checkpointer:
      checkpointer.save(tmp, args=args)


def _single_process_checkpointer() -> ocp.Checkpointer:
  """A synchronous orbax Checkpointer for params exports. They are written (and read) by the
  one process that calls for it, not by all processes together as training checkpoints are:
  with several processes, no barrier may wait for the others."""
  options = ocp.options.MultiprocessingOptions()
  if jax.process_count() > 1:
    i = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=i, active_processes={i},
                                                 barrier_sync_key_prefix=f"params_export_{i}")
  handler = ocp.CompositeCheckpointHandler(
      composite_options=ocp.CompositeOptions(multiprocessing_options=options))
  return ocp.Checkpointer(handler, multiprocessing_options=options)


@contextlib.contextmanager
def staging_dir(path: os.PathLike | str) -> Iterator[str]:
  """`with staging_dir(path) as tmp:` write a directory at `tmp`; on success it replaces
  `path` (renames on one filesystem), on an exception `path` is left untouched.

  Between the two renames of a replacement the old directory sits beside `path` as
  `.NAME.old-*`: a crash there loses nothing. Staging leftovers of earlier failed writes
  (`.NAME.tmp-*`: a killed process, or orbax threads that outlive a failed save) are removed
  first; one writer per path is assumed."""
  path = os.path.abspath(os.fspath(path))
  parent, name = os.path.split(path)
  os.makedirs(parent, exist_ok=True)
  for stale in glob.glob(os.path.join(parent, glob.escape(f".{name}.tmp-") + "*")):
    shutil.rmtree(stale, ignore_errors=True)
  root = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  try:
    yield os.path.join(root, name)
    replace_dir(os.path.join(root, name), path)
  finally:
    shutil.rmtree(root, ignore_errors=True)


def replace_dir(src: str, dst: str) -> None:
  """Moves directory `src` to `dst`. An existing `dst` is moved aside first and deleted only
  once `src` is in its place."""
  if not os.path.exists(dst):
    os.rename(src, dst)
    return
  old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old-", dir=os.path.dirname(dst))
  os.rename(dst, os.path.join(old, "old"))
  os.rename(src, dst)
  shutil.rmtree(old)


def load_params(path: os.PathLike | str, *, target: PyTree = None) -> tuple[PyTree, dict]:
  """Reads a `save_params` export: returns `(params, metadata)`.

  `target` (abstract or concrete pytree) fixes structure, dtypes and shardings;
  None restores as saved."""
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(os.path.join(path, _PARAMS)):
    raise FileNotFoundError(f"No params export found at {path}")
  args = ocp.args.Composite(**{
      _PARAMS: ocp.args.StandardRestore(target),
      _METADATA: ocp.args.JsonRestore(),
  })
  try:
    with _single_process_checkpointer() as checkpointer:
      restored = checkpointer.restore(path, args=args)
  except (ValueError, KeyError, OSError, TypeError) as err:
    raise _restore_error("params export", path, err) from err
  return restored[_PARAMS], dict(restored[_METADATA] or {})
