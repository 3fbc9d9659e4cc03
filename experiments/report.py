"""Rebuilds REPORT.md from results/<study>/: the verdict table, then every study's section
(collab/studies/report.py, collab/studies/verdicts.py)."""
from absl import flags

from collab import errors
from collab.studies import analysis
from collab.studies import report

_RESULTS = flags.DEFINE_string("results_dir", "results", "Where the studies wrote.")
_OUT = flags.DEFINE_string("out", "REPORT.md", "The report file.")


def main(argv):
  del argv
  # The pair-level frontier merges the gates of several studies.
  analysis.analyze_frontier(_RESULTS.value, f"{_RESULTS.value}/frontier")
  report.write_run_info(f"{_RESULTS.value}/frontier", "python -m experiments.report", 0.0)
  report.build_report(_RESULTS.value, _OUT.value)
  print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
  errors.run(main)
