"""The command line shared by the training entry points (experiments.pretrain, .train_gate).

--resume / --overwrite: what to do when --workdir holds a run of another config (refused
otherwise). Exit status 143: preempted by SIGTERM after checkpointing; run it again to resume.
COLLAB_DISTRIBUTED / COLLAB_COORDINATOR...: multi-process start-up (collab/distributed.py).
"""
from typing import Callable

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import distributed


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

  app.run(main)
