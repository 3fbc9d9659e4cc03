"""Multi-process start-up: `jax.distributed.initialize()` when a launcher asks for it.

A multi-host job (a TPU pod slice, see launch_tpu.sh; or several CPU processes in a test) runs
the same command on every host; each process must join the others before it touches a device.
The launcher says so through the environment, so single-process runs need no flag at all:

  COLLAB_DISTRIBUTED=1        join: on a TPU VM (and under Slurm/Open MPI) JAX finds the
                              coordinator and this process's id by itself;
  COLLAB_COORDINATOR=host:port, COLLAB_NUM_PROCESSES=n, COLLAB_PROCESS_ID=i
                              join an explicit group (localhost tests, other clusters).
"""
from __future__ import annotations

import os

import jax

_ENV_FLAG, _ENV_COORD, _ENV_N, _ENV_ID = (
    "COLLAB_DISTRIBUTED", "COLLAB_COORDINATOR", "COLLAB_NUM_PROCESSES", "COLLAB_PROCESS_ID")


def requested(environ=os.environ) -> bool:
  return environ.get(_ENV_FLAG, "") not in ("", "0") or _ENV_COORD in environ


def initialize_from_env(environ=os.environ) -> bool:
  """Joins the process group the environment describes; returns whether it did. Call it
  before any other JAX call (it must precede backend initialisation)."""
  if not requested(environ):
    return False
  if _ENV_COORD in environ:
    missing = [k for k in (_ENV_N, _ENV_ID) if k not in environ]
    if missing:
      raise ValueError(f"{_ENV_COORD} is set but {missing} are not")
    jax.distributed.initialize(coordinator_address=environ[_ENV_COORD],
                               num_processes=int(environ[_ENV_N]),
                               process_id=int(environ[_ENV_ID]))
  else:
    jax.distributed.initialize()
  print(f"Process {jax.process_index()} of {jax.process_count()}: "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices", flush=True)
  return True


def is_primary() -> bool:
  """Process 0: the one that writes logs, exports and reports."""
  return jax.process_index() == 0
