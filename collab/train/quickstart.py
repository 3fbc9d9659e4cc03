"""The quickstart: builds data and tokenizer, pretrains one SLM and one LLM, reports the gap."""
from __future__ import annotations

import json
import os
import time

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


def run(workdir: str, presets=QUICKSTART_PRESETS, arg_suffix: str = "") -> dict[str, dict]:
  from configs import pretrain as pretrain_configs  # configs/ is a top-level package
  os.makedirs(workdir, exist_ok=True)
  results, t0 = {}, time.time()
  for name in presets:
    print(f"=== pretraining {name} ===", flush=True)
    config = pretrain_configs.get_config(f"model={name}{arg_suffix}")
    config.assets_dir = os.path.join(workdir, "assets")
    results[name] = pretrain.train(config, os.path.join(workdir, name))
  table = results_table(results)
  summary = {"presets": {n: {k: v for k, v in r.items() if k != "samples"}
                         for n, r in results.items()},
             "wall_seconds": time.time() - t0}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(table + "\n")
  print(table, flush=True)
  print(f"Wrote {workdir}/results.md and results.json ({summary['wall_seconds']:.0f} s)")
  return results
