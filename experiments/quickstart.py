"""`make quickstart`: the whole pipeline on its built-in default config."""
from absl import flags

from collab import errors
from collab.train import quickstart

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where everything is written.")


def main(argv):
  del argv
  quickstart.run(_WORKDIR.value)


if __name__ == "__main__":
  errors.run(main)
