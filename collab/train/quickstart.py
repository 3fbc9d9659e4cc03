"""The quickstart: the whole loop on its default config.

data + tokenizer -> pretrain one SLM and one LLM (held-out accuracy per step type) -> train
the help-seeking gate -> evaluate it against every baseline -> tables in WORKDIR/results.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from collab.train import pretrain

QUICKSTART_PRESETS = ("slm_s", "llm_s")
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


# Gate steps and evaluation size that keep `make quickstart` within ~20 minutes on 2 cores.
QUICKSTART_GATE_ARG = "steps=120,eval_problems=300"


def run(workdir: str, presets=QUICKSTART_PRESETS, arg_suffix: str = "",
        gate_arg: str = QUICKSTART_GATE_ARG) -> dict[str, Any]:
  from configs import gate as gate_configs  # configs/ is a top-level package
  from configs import pretrain as pretrain_configs
  from collab import evaluate
  from collab.train import gate
  os.makedirs(workdir, exist_ok=True)
  results, t0, timings = {}, time.time(), {}
  for name in presets:
    print(f"=== pretraining {name} ===", flush=True)
    config = pretrain_configs.get_config(f"model={name}{arg_suffix}")
    config.assets_dir = os.path.join(workdir, "assets")
    results[name] = pretrain.train(config, os.path.join(workdir, name))
  timings["pretrain_seconds"] = time.time() - t0
  pretrain_table = results_table(results)
  print(pretrain_table, flush=True)

  print("=== training the gate ===", flush=True)
  t1 = time.time()
  slm, llm = presets
  gate_config = gate_configs.get_config(",".join(filter(None, [f"slm={slm},llm={llm}", gate_arg])))
  gate_config.assets_dir = os.path.join(workdir, "assets")
  gate_config.pretrain_dir = workdir
  gate_dir = os.path.join(workdir, "gate")
  gate.train(gate_config, gate_dir)
  timings["gate_seconds"] = time.time() - t1
  print("=== evaluating the gate and the baselines ===", flush=True)
  t2 = time.time()
  pair = gate.load_pair(gate_config)
  gate_params, _ = gate.load_gate(gate_dir)
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
            "## Collaboration (test problems)\n\n" + evaluate.results_table(metrics) + "\n")
  print(f"Wrote {workdir}/results.md and results.json "
        f"({timings['wall_seconds']:.0f} s: pretraining {timings['pretrain_seconds']:.0f}, "
        f"gate {timings['gate_seconds']:.0f}, evaluation {timings['eval_seconds']:.0f})")
  return summary
