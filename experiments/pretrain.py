"""Pretrains one SLM or LLM preset: see configs/pretrain.py."""
from absl import app
from absl import flags
from ml_collections import config_flags

from collab.train import pretrain

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and eval go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  pretrain.train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
