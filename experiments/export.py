"""Exports a trained gate with its SLM x LLM pair for evaluation (collab/export.py).

  python -m experiments.export --workdir=runs/gate --export_dir=exports/gate
  python -m experiments.export --workdir=DIR --export_dir=OUT --config=configs/gate.py:ARGS

Without --config, the config the gate training wrote to WORKDIR/config.json names the pair.
Exit status 2: an expected error (no trained gate, an export in the way), printed as one
message; --verbose adds its traceback.
"""
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import config_check
from collab import errors
from collab import export

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Gate config; default: WORKDIR/config.json.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Gate training workdir (holds gate/).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Directory to write the export to.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing export.")
flags.mark_flags_as_required(["workdir", "export_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config_check.check_workdir(_WORKDIR.value)
  config_check.check_workdir(_EXPORT_DIR.value, "--export_dir")
  config = _CONFIG.value
  if config is None:
    path = os.path.join(_WORKDIR.value, "config.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"No {path}: --workdir must be a gate training workdir (or pass "
                              "--config, the config the gate was trained with)")
    with open(path) as f:
      config = export.config_from_json(f.read())
  path = export.write_export(config, _WORKDIR.value, _EXPORT_DIR.value,
                             overwrite=_OVERWRITE.value)
  print(f"Exported to {path}", flush=True)


if __name__ == "__main__":
  errors.run(main)
