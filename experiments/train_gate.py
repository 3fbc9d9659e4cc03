"""Trains the help-seeking gate of an SLM x LLM pair: see configs/gate.py."""
from absl import app
from absl import flags
from ml_collections import config_flags

from collab.train import gate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics and the gate go here.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  gate.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
