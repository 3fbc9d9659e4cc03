"""Trains the help-seeking gate of an SLM x LLM pair: see configs/gate.py.

--resume / --overwrite: what to do when --workdir holds a run of another config (refused
otherwise). Exit status 143: preempted by SIGTERM after checkpointing; run it again to resume.
COLLAB_DISTRIBUTED / COLLAB_COORDINATOR...: multi-process start-up (collab/distributed.py).
"""
from absl import app
from absl import flags
from ml_collections import config_flags

from collab import distributed
from collab.train import gate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics and the gate go here.")
_RESUME = flags.DEFINE_bool("resume", False,
                            "Go on with the run in --workdir even if its config differs.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "Delete the run in --workdir and start over.")
flags.mark_flags_as_required(["config", "workdir"])
flags.mark_bool_flags_as_mutual_exclusive(["resume", "overwrite"])


def main(argv):
  del argv
  distributed.initialize_from_env()
  mode = "resume" if _RESUME.value else "overwrite" if _OVERWRITE.value else "refuse"
  gate.train(_CONFIG.value, _WORKDIR.value, workdir_mode=mode)


if __name__ == "__main__":
  app.run(main)
