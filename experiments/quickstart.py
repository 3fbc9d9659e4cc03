"""`make quickstart`: the whole pipeline on its built-in default config."""
from absl import flags

from collab import errors
from collab.train import quickstart
from configs import gate as gate_configs

# The quickstart's pair and gate training: configs/gate.py with these arguments. The gate's
# settings are the best of those tried on test problems 500-999, apart from the 300 it reports
# (docs/quickstart.md).
QUICKSTART_ARG = "slm=slm_s,llm=llm_s,steps=120,eval_problems=300"
# Sparser baseline sweeps than configs/gate.py's (each point is a rollout of every problem).
EVAL = {"fine_thresholds": 8, "batch_size": 150}
LINE_KIND_PROBLEMS, ROUTER = 100, {"problems": 200, "thresholds": (0.1, 0.3, 0.5, 0.7, 0.9),
                                 "ask_shares": ()}

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where everything is written.")


def main(argv):
  del argv
  config = gate_configs.get_config(QUICKSTART_ARG)
  config.eval.update(**EVAL)
  config.eval.line_kinds.problems = LINE_KIND_PROBLEMS
  config.eval.router.update(**ROUTER)
  quickstart.run(_WORKDIR.value, config)


if __name__ == "__main__":
  errors.run(main)
