"""Evaluates a learned gate against every baseline: see collab/evaluate.py.

  python -m experiments.evaluate --config=configs/gate.py:runlocal --workdir=GATE_WORKDIR
  python -m experiments.evaluate --export_dir=EXPORT [--out_dir=DIR]

--workdir: the gate's training workdir (models from config.pretrain_dir, gate from
workdir/gate); results go into the workdir. --export_dir: a checkpoint export (config, models
and gate together); results go to --out_dir, by default EXPORT_eval beside the export. Never
inside it: an export is verified file by file against its manifest before it is read, so a
results file there would make the next evaluation refuse it.
Exit status 2: an expected error (bad config, export, checkpoint or data), printed as one
message; --verbose adds its traceback.
Several processes (COLLAB_COORDINATOR... or COLLAB_DISTRIBUTED, collab/distributed.py) split
the problems between them; process 0 writes the results.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import config_check
from collab import distributed
from collab import errors
from collab import evaluate
from collab.data import tokenizer as tokenizer_lib
from collab import pair as pair_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (with --workdir).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Gate training workdir; results go here.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Checkpoint export to evaluate instead.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "With --export_dir: where results go; default "
                                "EXPORT_eval beside the export (never inside it).")
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
  config_check.check_gate(config)
  config_check.check_workdir(workdir)
  if not os.path.isdir(os.path.join(workdir, "gate")):
    raise FileNotFoundError(f"No trained gate in --workdir={workdir} (it has no gate/): train "
                            "one there with experiments.train_gate first")
  pair = pair_lib.load_pair(config)
  gate_params, metadata = pair_lib.load_gate(workdir)
  tokenizer_lib.check_fingerprint(metadata["tokenizer_fingerprint"], pair.tokenizer,
                                  where=os.path.join(workdir, "gate"))
  return pair_lib.resolve_assets_dir(config, workdir), pair, gate_params, workdir


def _from_export():
  if _CONFIG.value is not None:
    raise app.UsageError("--export_dir carries its own config: drop --config.")
  from collab import export  # pylint: disable=g-import-not-at-top
  out_dir = results_dir(_EXPORT_DIR.value, _OUT_DIR.value)
  config, pair, gate_params = export.load_export(_EXPORT_DIR.value)
  if _DATA_DIR.value:
    if not config.get("data_dir"):
      raise app.UsageError("--data_dir is for exports of imported pairs (GSM8K-style data); "
                           "this export evaluates on the generated task.")
    config.data_dir = _DATA_DIR.value
  if config.get("data_dir"):  # malformed lines, all of them, before any evaluation
    from collab.data import tfds_gsm8k  # pylint: disable=g-import-not-at-top
    tfds_gsm8k.check_source_dir(config.data_dir)
    # The data are prepared under the results, not under the training run's directory.
    config.assets_dir = os.path.join(out_dir, "assets")
  return config, pair, gate_params, out_dir


def results_dir(export_dir: str, out_dir: str | None) -> str:
  """--out_dir, or EXPORT_eval beside the export; never a path inside the export."""
  export_dir = os.path.abspath(export_dir)
  out = os.path.abspath(out_dir) if out_dir else export_dir.rstrip(os.sep) + "_eval"
  if os.path.commonpath([out, export_dir]) == export_dir:
    raise errors.ConfigError(
        f"--out_dir={out_dir} is inside the export {export_dir}: the export is verified "
        "against its manifest before every evaluation, so results there would make the next "
        "one refuse it. Give an --out_dir outside the export.")
  config_check.check_workdir(out, "--out_dir")
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (_WORKDIR.value is None) == (_EXPORT_DIR.value is None):
    raise app.UsageError("Give exactly one of --workdir (a gate training workdir, with "
                         "--config) or --export_dir (a checkpoint export).")
  distributed.initialize_from_env()
  config, pair, gate_params, out_dir = (_from_workdir() if _WORKDIR.value else _from_export())
  evaluate.evaluate(config, pair, gate_params, out_dir)
  print(f"Results in {out_dir}", flush=True)


if __name__ == "__main__":
  errors.run(main)
