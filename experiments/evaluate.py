"""Evaluates a learned gate against every baseline: see collab/evaluate.py.

  python -m experiments.evaluate --config=configs/gate.py:runlocal --workdir=GATE_WORKDIR
  python -m experiments.evaluate --export_dir=EXPORT [--out_dir=DIR]

--workdir: the gate's training workdir (models from config.pretrain_dir, gate from
workdir/gate); results go into the workdir. --export_dir: a checkpoint export (config, models
and gate together); results go to --out_dir, by default export_dir/eval.
Several processes (COLLAB_COORDINATOR... or COLLAB_DISTRIBUTED, collab/distributed.py) split
the problems between them; process 0 writes the results.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import distributed
from collab import evaluate
from collab.data import tokenizer as tokenizer_lib
from collab.train import gate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (with --workdir).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Gate training workdir; results go here.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Checkpoint export to evaluate instead.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "With --export_dir: default export_dir/eval.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "With --export_dir of an imported pair: the GSM8K-style JSONL directory "
    "to evaluate on, in place of the one its config names (data is not part of an export).")


def _from_workdir():
  if _CONFIG.value is None:
    raise app.UsageError("--workdir needs --config (the config the gate was trained with).")
  if _OUT_DIR.value:
    raise app.UsageError("--out_dir goes with --export_dir; with --workdir results go there.")
  if _DATA_DIR.value:
    raise app.UsageError("--data_dir goes with --export_dir; with --workdir use "
                         "--config.data_dir.")
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
  if _DATA_DIR.value:
    if not config.get("data_dir"):
      raise app.UsageError("--data_dir is for exports of imported pairs (GSM8K-style data); "
                           "this export evaluates on the generated task.")
    config.data_dir = _DATA_DIR.value
  return config, pair, gate_params, _OUT_DIR.value or os.path.join(_EXPORT_DIR.value, "eval")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (_WORKDIR.value is None) == (_EXPORT_DIR.value is None):
    raise app.UsageError("Give exactly one of --workdir (a gate training workdir, with "
                         "--config) or --export_dir (a checkpoint export).")
  distributed.initialize_from_env()
  config, pair, gate_params, out_dir = (_from_workdir() if _WORKDIR.value else _from_export())
  evaluate.evaluate(config, pair, gate_params, out_dir)


if __name__ == "__main__":
  app.run(main)
