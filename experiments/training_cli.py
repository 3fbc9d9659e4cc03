"""The command line shared by the training entry points (experiments.pretrain, .train_gate).

--resume / --overwrite: what to do when --workdir holds a run of another config (refused
otherwise). Exit status 143: preempted by SIGTERM after checkpointing; run it again to resume.
COLLAB_DISTRIBUTED / COLLAB_COORDINATOR...: multi-process start-up (collab/distributed.py).
Exit status 2: an expected error (a config value out of range, a workdir of another run, a
missing checkpoint, bad data), printed as one message; --verbose adds its traceback
(collab/errors.py). The config is checked before anything is written (collab/config_check.py).
"""
from typing import Callable

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import distributed
from collab import errors


_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics and exports go here.")
_RESUME = flags.DEFINE_bool("resume", False,
                            "Go on with the run in --workdir even if its config differs.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete the run in --workdir and start over.")
flags.mark_flags_as_required(["config", "workdir"])
flags.mark_bool_flags_as_mutual_exclusive(["resume", "overwrite"])


def run(train: Callable[..., object]) -> None:
  """Runs `train(config, workdir, workdir_mode=...)` from the command line."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distributed.initialize_from_env()
    mode = "resume" if _RESUME.value else "overwrite" if _OVERWRITE.value else "refuse"
    train(_CONFIG.value, _WORKDIR.value, workdir_mode=mode)

  errors.run(main)
