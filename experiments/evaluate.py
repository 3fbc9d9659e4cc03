"""Evaluates a learned gate against every baseline: see collab/evaluate.py.

  python -m experiments.evaluate --config=configs/gate.py:runlocal --workdir=GATE_WORKDIR
  python -m experiments.evaluate --export_dir=EXPORT [--out_dir=DIR]

--workdir: the gate's training workdir (models from config.pretrain_dir, gate from
workdir/gate); results go into the workdir. --export_dir: a checkpoint export (config, models
and gate together); results go to --out_dir, by default export_dir/eval.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import evaluate
from collab.data import tokenizer as tokenizer_lib
from collab.train import gate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (with --workdir).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Gate training workdir; results go here.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Checkpoint export to evaluate instead.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "With --export_dir: default export_dir/eval.")


def _from_workdir():
  if _CONFIG.value is None:
    raise app.UsageError("--workdir needs --config (the config the gate was trained with).")
  if _OUT_DIR.value:
    raise app.UsageError("--out_dir goes with --export_dir; with --workdir results go there.")
  config, workdir = _CONFIG.value, _WORKDIR.value
  pair = gate.load_pair(config)
  gate_params, metadata = gate.load_gate(workdir)
  tokenizer_lib.check_fingerprint(metadata["tokenizer_fingerprint"], pair.tokenizer,
                                  where=os.path.join(workdir, "gate"))
  return config, pair, gate_params, workdir


def _from_export():
  if _CONFIG.value is not None:
    raise app.UsageError("--export_dir carries its own config: drop --config.")
  from collab import export  # pylint: disable=g-import-not-at-top
  config, pair, gate_params = export.load_export(_EXPORT_DIR.value)
  return config, pair, gate_params, _OUT_DIR.value or os.path.join(_EXPORT_DIR.value, "eval")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (_WORKDIR.value is None) == (_EXPORT_DIR.value is None):
    raise app.UsageError("Give exactly one of --workdir (a gate training workdir, with "
                         "--config) or --export_dir (a checkpoint export).")
  config, pair, gate_params, out_dir = (_from_workdir() if _WORKDIR.value else _from_export())
  evaluate.evaluate(config, pair, gate_params, out_dir)


if __name__ == "__main__":
  app.run(main)
