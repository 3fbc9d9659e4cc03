"""`make quickstart`: the whole pipeline on its built-in default config."""
from absl import flags

from collab import errors
from collab.train import quickstart
from configs import gate as gate_configs

# The quickstart's pair and gate training: configs/gate.py with these arguments.
QUICKSTART_ARG = "slm=slm_s,llm=llm_s,steps=120,eval_problems=300"

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where everything is written.")


def main(argv):
  del argv
  quickstart.run(_WORKDIR.value, gate_configs.get_config(QUICKSTART_ARG))


if __name__ == "__main__":
  errors.run(main)
