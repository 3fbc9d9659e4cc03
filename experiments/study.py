"""Runs one study of configs/studies/ (resumable) and writes its results and report section.

  python -m experiments.study --config=configs/studies/scaling.py --workdir=runs/studies/scaling
  python -m experiments.study --config=configs/studies/scaling.py:runlocal --workdir=/tmp/s

Results (summary.json, figures, report.md, run_info.json) go to --results_dir, by default
results/<study> (results_local/<study> with runlocal); then `python -m experiments.report`
rebuilds REPORT.md.
Every run's config is checked before the first one starts (collab/config_check.py). Exit
status 2: an expected error, printed as one message; --verbose adds its traceback.
"""
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from collab import errors
from collab.studies import analysis
from collab.studies import report
from collab.studies import runner

_CONFIG = config_flags.DEFINE_config_file("config", None, "A configs/studies/*.py file.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Gates, evaluations and baselines go here.")
_RESULTS = flags.DEFINE_string("results_dir", None, "Default: results/<study>.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  # Gates of one pair share their rollout and train-step programs: compile each once.
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", "runs/jax_cache")
  config = _CONFIG.value
  if config.study not in analysis.ANALYSES:
    raise app.UsageError(f"Unknown study {config.study!r}; valid: {sorted(analysis.ANALYSES)}")
  runner.check_study(config, _WORKDIR.value)
  resumed = any(os.path.exists(runner.run_dir_of(_WORKDIR.value, r))
                for r in runner.runs_of(config))
  t0 = time.time()
  result = runner.run_study(config, _WORKDIR.value)
  out_dir = _RESULTS.value or (f"results_local/{config.study}" if config.runlocal
                               else f"results/{config.study}")
  analysis.ANALYSES[config.study](result, out_dir)
  report.write_run_info(out_dir, "python -m " + " ".join(["experiments.study"] + sys.argv[1:]),
                        time.time() - t0, resumed=resumed)
  with open(f"{out_dir}/report.md") as f:
    print(f.read(), flush=True)


if __name__ == "__main__":
  errors.run(main)
