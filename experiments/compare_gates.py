"""Two gate settings of one study workdir, problem by problem: which setting's gates solve more
of the same problems, seed with seed (e.g. a gate option against the study's default gate).

    python -m experiments.compare_gates --workdir=runs/studies/features --llm=llm_s \
        --pairs=default:default+feature_layers3,heldout:heldout+feature_layers3

Each setting's runs are `<setting>__s<seed>/eval_<llm>.json` (collab/studies/runner.py), or
one `eval_<llm>_price<p>.json` of a price-conditioned gate (--call_rate picks the one
calibrated to that share of steps); the seeds both settings have are compared. Per setting:
accuracy and calls (mean over seeds); the paired difference is B minus A on each problem,
averaged over the seeds, with a 95% CI.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

import numpy as np

from collab import errors
from collab.studies import runner
from collab.studies import stats


def _evals(workdir: str, setting: str, llm: str, call_rate: float | None = None
           ) -> dict[int, dict]:
  """Seed -> its eval: `eval_<llm>.json`, or a price-conditioned gate's evaluated price
  (`eval_<llm>_price<p>.json`, as the headline study writes): the one there is, or with
  call_rate, the price calibrated to that share of steps (`calibration_call_rate<r>.json`)."""
  out = {}
  for run_dir in glob.glob(os.path.join(workdir, f"{glob.escape(setting)}__s*")):
    seed = re.fullmatch(r".*__s(\d+)", run_dir)
    if call_rate is not None:
      calibration = runner.calibration_path(run_dir, "call_rate", call_rate)
      if not os.path.exists(calibration):
        continue
      with open(calibration) as f:
        paths = [runner.eval_path(run_dir, llm, json.load(f)["price"])]
    else:
      plain = runner.eval_path(run_dir, llm)
      paths = [plain] if os.path.exists(plain) else sorted(
          glob.glob(os.path.join(run_dir, f"eval_{glob.escape(llm)}_price*.json")))
    if not seed or not paths or not os.path.exists(paths[0]):
      continue
    if len(paths) > 1:
      raise errors.UserError(f"{run_dir} has evals at {len(paths)} prices "
                             f"({', '.join(map(os.path.basename, paths))}): say which with "
                             "--call_rate")
    with open(paths[0]) as f:
      out[int(seed.group(1))] = json.load(f)
  return out


def compare(workdir: str, setting_a: str, setting_b: str, llm: str,
            call_rate: float | None = None) -> dict:
  a = _evals(workdir, setting_a, llm, call_rate)
  b = _evals(workdir, setting_b, llm, call_rate)
  seeds = sorted(set(a) & set(b))
  if not seeds:
    raise errors.UserError(f"No seed of both {setting_a!r} ({sorted(a)}) and {setting_b!r} "
                           f"({sorted(b)}) evaluated with {llm} under {workdir}")
  def side(evals):
    return {"accuracy": float(np.mean([evals[s]["accuracy"]["mean"] for s in seeds])),
            "calls": float(np.mean([evals[s]["calls"]["mean"] for s in seeds])),
            "accuracy_per_seed": [evals[s]["accuracy"]["mean"] for s in seeds]}
  correct = lambda evals: np.mean([evals[s]["per_problem"]["correct"] for s in seeds], axis=0)
  return {"a": setting_a, "b": setting_b, "llm": llm, "seeds": seeds,
          "num_problems": int(a[seeds[0]]["num_problems"]), "stats_a": side(a),
          "stats_b": side(b), "b_minus_a": stats.paired_gain(correct(b), correct(a))}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--llm", required=True)
  parser.add_argument("--pairs", required=True,
                      help="','-separated A:B setting pairs (B is compared with A)")
  parser.add_argument("--out", default="", help="a JSON file for the comparisons")
  parser.add_argument("--call_rate", type=float, default=None,
                      help="price-conditioned gates: the eval at the price calibrated to this "
                           "share of steps (the headline study's rate)")
  args = parser.parse_args(argv)
  pairs = [p.split(":") for p in args.pairs.split(",") if p]
  if not pairs or any(len(p) != 2 for p in pairs):
    raise errors.UserError(f"--pairs must be ','-separated A:B pairs, got {args.pairs!r}")
  rows = [compare(args.workdir, a, b, args.llm, args.call_rate) for a, b in pairs]
  print("| A | B | seeds | A: accuracy at calls | B: accuracy at calls | B - A (paired 95% CI) |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    d = r["b_minus_a"]
    print(f"| {r['a']} | {r['b']} | {len(r['seeds'])} | "
          f"{100 * r['stats_a']['accuracy']:.1f}% at {r['stats_a']['calls']:.2f} | "
          f"{100 * r['stats_b']['accuracy']:.1f}% at {r['stats_b']['calls']:.2f} | "
          f"{100 * d['mean']:+.1f} [{100 * (d['mean'] - d['ci95']):+.1f}, "
          f"{100 * (d['mean'] + d['ci95']):+.1f}] points |")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  errors.wrap(main)(sys.argv[1:])
