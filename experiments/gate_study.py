"""Seeds, a call-cost sweep and a privacy cost for one pair: see collab/train/study.py.

  python -m experiments.gate_study --arg=slm=slm_s,llm=llm_s --workdir=results/gate_study
"""
from absl import app
from absl import flags

from collab.train import study

_ARG = flags.DEFINE_string("arg", "slm=slm_s,llm=llm_s", "configs/gate.py argument string.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/gate_study", "One folder per setting.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Gate seeds.")
_CALL_COSTS = flags.DEFINE_list("call_costs", ["0.02"], "Call costs trained for every seed.")
_SWEEP_COSTS = flags.DEFINE_list("sweep_costs", ["0", "0.05", "0.1"],
                                 "Extra call costs (first seed): the Pareto sweep.")
_PRIVACY_COSTS = flags.DEFINE_list("privacy_costs", ["0.02"], "Per private token exposed.")
_PRETRAIN_DIR = flags.DEFINE_string("pretrain_dir", None, "Pretrained models (default: config).")
_ASSETS_DIR = flags.DEFINE_string("assets_dir", None, "Data and tokenizer (default: config).")
_STEPS = flags.DEFINE_integer("steps", 0, "Gate train steps (0: the config's).")


def main(argv):
  del argv
  floats = lambda xs: tuple(float(x) for x in xs)  # noqa: E731
  study.run_study(_ARG.value, _WORKDIR.value, seeds=tuple(int(s) for s in _SEEDS.value),
                  call_costs=floats(_CALL_COSTS.value), sweep_costs=floats(_SWEEP_COSTS.value),
                  privacy_costs=floats(_PRIVACY_COSTS.value), pretrain_dir=_PRETRAIN_DIR.value,
                  assets_dir=_ASSETS_DIR.value, steps=_STEPS.value)


if __name__ == "__main__":
  app.run(main)
