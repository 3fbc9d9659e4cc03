"""The gap between an SLM and an LLM pretrained here on word problems, per step kind and on
final answers, before any gate is trained (docs/word_problems.md).

    python -m experiments.word_problem_gap --slm=runs/word_problems/wp_slm \
        --llm=runs/word_problems/wp_llm --out=results/word_problems

Both models write every problem alone (greedy): the whole solution from the question (final
answer: its last line equals `answer N`), and each reference line teacher-forced on the
question and the reference lines before it (collab/train/lm_eval.py). Reported on
  validation: problems of the training generators, split into those the SLM was trained on
              and those only the LLM was (its knowledge gap);
  test:       problems of held-out generators that neither model saw (a distribution shift).
Per step kind, `llm_fixes` is the share of the SLM's wrong lines the LLM writes right: what
asking at that kind of line could buy at best. Gaps are paired over problems (95% CI).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from typing import Any

import numpy as np

from collab import errors
from collab import pair as pair_lib
from collab.data import word_problems
from collab.studies import report as report_lib
from collab.studies import stats
from collab.train import lm_eval


def _read_config(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(os.path.join(workdir, "model")) or not os.path.exists(path):
    raise errors.UserError(f"{workdir} holds no finished pretraining run (model/ and "
                           "config.json): pretrain it with experiments.pretrain first")
  with open(path) as f:
    return json.load(f)


def evaluate(model, records: list[dict], eval_cfg: dict) -> dict[str, Any]:
  """model: (params, ModelConfig, Tokenizer) of pair_lib.load_model."""
  params, cfg, tok = model
  return lm_eval.evaluate_lm(params, cfg, tok, records, task_kinds=False, details=True,
                             max_new_tokens=eval_cfg.get("max_new_tokens", 256),
                             step_max_new_tokens=eval_cfg.get("step_max_new_tokens", 64),
                             batch_size=eval_cfg.get("batch_size", 128))


def compare(slm: dict, llm: dict, keep: list[bool]) -> dict[str, Any]:
  """Final-answer and per-kind step accuracies of both models on the records where keep."""
  idx = [i for i, k in enumerate(keep) if k]
  out: dict[str, Any] = {"num_problems": len(idx)}
  if not idx:
    return out
  s_final = np.asarray(slm["final_correct"], float)[idx]
  l_final = np.asarray(llm["final_correct"], float)[idx]
  out["final"] = {"slm": float(s_final.mean()), "llm": float(l_final.mean()),
                  "gap": stats.paired_gain(l_final, s_final)}
  # Per problem, the share of its lines right: the step gap's pairing unit is the problem.
  keep_set = set(idx)
  kinds: dict[str, Any] = collections.defaultdict(lambda: {"slm": [], "llm": []})
  for (i, kind, s_ok), (_, _, l_ok) in zip(slm["step_correct"], llm["step_correct"]):
    if i in keep_set:
      for group in (kind, "all"):
        kinds[group]["slm"].append(s_ok)
        kinds[group]["llm"].append(l_ok)
  steps = {}
  for kind in list(word_problems.STEP_KINDS) + ["all"]:
    if kind not in kinds:
      continue
    s_ok, l_ok = np.asarray(kinds[kind]["slm"], bool), np.asarray(kinds[kind]["llm"], bool)
    wrong = ~s_ok
    steps[kind] = {"count": int(s_ok.size), "slm": float(s_ok.mean()), "llm": float(l_ok.mean()),
                   "llm_fixes": float(l_ok[wrong].mean()) if wrong.any() else None,
                   "llm_breaks": float((~l_ok[s_ok]).mean()) if s_ok.any() else None}
  out["steps"] = steps
  return out


def run(slm_dir: str, llm_dir: str, data_dir: str, num_problems: int) -> dict[str, Any]:
  slm_cfg, llm_cfg = _read_config(slm_dir), _read_config(llm_dir)
  train = word_problems.read_split(data_dir, "train")
  covered = word_problems.covered_generators([ex["generator"] for ex in train],
                                             slm_cfg["fact_coverage"], slm_cfg["coverage_seed"])
  result: dict[str, Any] = {
      "slm": {"workdir": slm_dir, "model": slm_cfg["model"], "generators": len(covered)},
      "llm": {"workdir": llm_dir, "model": llm_cfg["model"]},
      "data_dir": data_dir, "splits": {}}
  slm_model, llm_model = pair_lib.load_model(slm_dir), pair_lib.load_model(llm_dir)
  for split in ("validation", "test"):
    records = word_problems.read_split(data_dir, split)[:num_problems]
    start = time.time()
    print(f"[word_problem_gap] {split}: {len(records)} problems, SLM then LLM", flush=True)
    slm = evaluate(slm_model, records, slm_cfg.get("eval", {}))
    llm = evaluate(llm_model, records, llm_cfg.get("eval", {}))
    seen = [r["generator"] in covered for r in records]
    groups = {"all": [True] * len(records)}
    if split == "validation":
      groups.update(slm_trained=seen, llm_only=[not s for s in seen])
    result["splits"][split] = {name: compare(slm, llm, keep) for name, keep in groups.items()}
    result["splits"][split]["seconds"] = round(time.time() - start, 1)
    result["splits"][split]["samples"] = {"slm": slm["samples"][:2], "llm": llm["samples"][:2]}
  return result


def _pct(x) -> str:
  return "-" if x is None else f"{100 * x:.1f}%"


def _gap(g: dict) -> str:
  return f"{100 * g['mean']:+.1f} [{100 * (g['mean'] - g['ci95']):+.1f}, " \
         f"{100 * (g['mean'] + g['ci95']):+.1f}]"


def report_md(result: dict[str, Any]) -> str:
  """The section's tables (REPORT.md adds the command from run_info.json)."""
  lines = [f"SLM `{result['slm']['model']}` (trained on {result['slm']['generators']} of the "
           f"training generators), LLM `{result['llm']['model']}` (all of them), pretrained "
           "here on GSM-Symbolic word problems (docs/word_problems.md); greedy, each model "
           "alone.", "",
           "| problems | n | SLM final | LLM final | gap (paired, 95% CI) | SLM lines "
           "| LLM lines |",
           "|---|---|---|---|---|---|---|"]
  names = {("validation", "all"): "validation, all",
           ("validation", "slm_trained"): "validation, generators the SLM trained on",
           ("validation", "llm_only"): "validation, generators only the LLM trained on",
           ("test", "all"): "test, held-out generators"}
  for (split, group), name in names.items():
    c = result["splits"].get(split, {}).get(group)
    if not c or not c["num_problems"]:
      continue
    f, s = c["final"], c["steps"]["all"]
    lines.append(f"| {name} | {c['num_problems']} | {_pct(f['slm'])} | {_pct(f['llm'])} | "
                 f"{_gap(f['gap'])} | {_pct(s['slm'])} | {_pct(s['llm'])} |")
  lines += ["", "Lines right per step kind (teacher-forced), and the share of the SLM's wrong "
            "lines that the LLM writes right (`LLM fixes`):", ""]
  for split, group in (("validation", "llm_only"), ("validation", "slm_trained"),
                       ("test", "all")):
    c = result["splits"].get(split, {}).get(group)
    if not c or not c["num_problems"]:
      continue
    lines += [f"{names[(split, group)]}:", "", "| kind | lines | SLM | LLM | LLM fixes |",
              "|---|---|---|---|---|"]
    for kind, s in c["steps"].items():
      lines.append(f"| {kind} | {s['count']} | {_pct(s['slm'])} | {_pct(s['llm'])} | "
                   f"{_pct(s['llm_fixes'])} |")
    lines.append("")
  return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [(s, g) for s, g in (("validation", "slm_trained"), ("validation", "llm_only"),
                                ("test", "all"))
            if result["splits"].get(s, {}).get(g, {}).get("num_problems")]
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), sharey=True,
                           squeeze=False)
  for ax, (split, group) in zip(axes[0], panels):
    steps = result["splits"][split][group]["steps"]
    kinds = list(steps)
    x = np.arange(len(kinds))
    ax.bar(x - 0.2, [steps[k]["slm"] for k in kinds], 0.4, label="SLM")
    ax.bar(x + 0.2, [steps[k]["llm"] for k in kinds], 0.4, label="LLM")
    ax.set_xticks(x, kinds, rotation=45)
    ax.set_title(f"{split}: {group.replace('_', ' ')}", fontsize=9)
  axes[0][0].set_ylabel("lines right (teacher-forced)")
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--slm", default="runs/word_problems/wp_slm", help="the SLM's pretraining run")
  p.add_argument("--llm", default="runs/word_problems/wp_llm", help="the LLM's pretraining run")
  p.add_argument("--data_dir", default=word_problems.DEFAULT_DATA_DIR)
  p.add_argument("--num_problems", type=int, default=300, help="per split")
  p.add_argument("--out", default="results/word_problems")
  args = p.parse_args(argv)
  if args.num_problems < 1:
    raise errors.UserError(f"--num_problems must be >= 1, got {args.num_problems}")
  start = time.time()
  result = run(args.slm, args.llm, args.data_dir, args.num_problems)
  command = "python -m experiments.word_problem_gap " + " ".join(
      sys.argv[1:] if argv is None else argv)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "gap.json"), "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(args.out, "report.md"), "w") as f:
    f.write(report_md(result))
  plot(result, os.path.join(args.out, "gap.png"))
  report_lib.write_run_info(args.out, command.strip(), time.time() - start)
  print(report_md(result))


if __name__ == "__main__":
  errors.wrap(main)(sys.argv[1:])
