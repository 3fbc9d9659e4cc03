"""The quickstart: the whole loop on its default config.

data + tokenizer -> pretrain one SLM and one LLM (held-out accuracy per step type) -> train
the help-seeking gate -> evaluate it against every baseline -> tables in WORKDIR/results.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections

from collab import evaluate
from collab import pair as pair_lib
from collab.train import gate
from collab.train import pretrain
from collab.train import recipes

_COLUMNS = ("final_accuracy", "step_accuracy/lookup", "step_accuracy/lookup_seen",
            "step_accuracy/lookup_unseen", "step_accuracy/arith", "step_accuracy/answer")


def results_table(results: dict[str, dict]) -> str:
  """Markdown table of held-out accuracies (percent) per preset."""
  head = "| preset | params | fact coverage | " + " | ".join(c.split("/")[-1] for c in _COLUMNS)
  lines = [head + " |", "|" + "---|" * (3 + len(_COLUMNS))]
  for name, r in results.items():
    cells = [f"{100 * r[c]:.1f}" if c in r else "-" for c in _COLUMNS]
    lines.append(f"| {name} | {r['num_params']:,} | {r['fact_coverage']} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines)


def run(workdir: str, gate_config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Pretrains gate_config.slm and gate_config.llm (their recipes), trains the gate of
  `gate_config` and evaluates it, everything under `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  gate_config = ml_collections.ConfigDict(gate_config.to_dict())
  gate_config.assets_dir = os.path.join(workdir, "assets")
  gate_config.pretrain_dir = workdir
  presets = (gate_config.slm, gate_config.llm)
  results, t0, timings = {}, time.time(), {}
  for name in presets:
    print(f"=== pretraining {name} ===", flush=True)
    config = recipes.pretrain_config(name, runlocal=gate_config.runlocal)
    config.assets_dir = gate_config.assets_dir
    config.task = gate_config.task
    results[name] = pretrain.train(config, pair_lib.model_dir(gate_config, name))
  timings["pretrain_seconds"] = time.time() - t0
  pretrain_table = results_table(results)
  print(pretrain_table, flush=True)

  print("=== training the gate ===", flush=True)
  t1 = time.time()
  gate_dir = os.path.join(workdir, "gate")
  gate.train(gate_config, gate_dir)
  timings["gate_seconds"] = time.time() - t1
  print("=== evaluating the gate and the baselines ===", flush=True)
  t2 = time.time()
  pair = pair_lib.load_pair(gate_config)
  gate_params, _ = pair_lib.load_gate(gate_dir)
  metrics = evaluate.evaluate(gate_config, pair, gate_params, gate_dir)
  timings["eval_seconds"] = time.time() - t2
  timings["wall_seconds"] = time.time() - t0

  summary = {"pretrain": {n: {k: v for k, v in r.items() if k != "samples"}
                          for n, r in results.items()},
             "collaboration": metrics["policies"], **timings}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("## Pretraining (held-out accuracy, %)\n\n" + pretrain_table + "\n\n"
            "## Collaboration (test problems)\n\n" + evaluate.results_table(metrics) + "\n\n"
            "## The gate against its rivals\n\n" + evaluate.head_to_head(metrics) + "\n")
  print(f"Wrote {workdir}/results.md and results.json "
        f"({timings['wall_seconds']:.0f} s: pretraining {timings['pretrain_seconds']:.0f}, "
        f"gate {timings['gate_seconds']:.0f}, evaluation {timings['eval_seconds']:.0f})")
  return summary
