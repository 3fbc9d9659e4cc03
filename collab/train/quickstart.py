"""The quickstart: the whole loop on its default config.

data + tokenizer -> pretrain one SLM and one LLM (held-out accuracy per step type) -> train
the help-seeking gate -> evaluate it against every baseline -> tables in WORKDIR/results.md.
"""
from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import time
from typing import Any

import jax
import ml_collections

from collab import evaluate
from collab import pair as pair_lib
from collab.data import assets as assets_lib
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


def _pretrain_one(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  return pretrain.train(config, workdir)


def pretrain_pair(gate_config: ml_collections.ConfigDict, parallel: bool = True
                  ) -> dict[str, dict]:
  """Pretrains gate_config.slm and gate_config.llm with their recipes into its pretrain_dir;
  returns each one's held-out evaluation. The data and tokenizer are built first; then, with
  `parallel`, the two models train at once in two processes: a small model's training step
  keeps about one core busy, so on a 2-core machine both finish in about the time of the
  longer one."""
  presets = (gate_config.slm, gate_config.llm)
  configs = {}
  for name in presets:
    config = recipes.pretrain_config(name, runlocal=gate_config.runlocal)
    config.assets_dir = gate_config.assets_dir
    config.task = gate_config.task
    configs[name] = config
  for config in configs.values():  # each tokenizer once, before two processes need it
    assets_lib.prepare_assets(pair_lib.task_config(config), config.assets_dir,
                              config.vocab_size, pair_lib.tokenizer_type(config))
  dirs = {name: pair_lib.model_dir(gate_config, name) for name in presets}
  if not parallel:
    return {name: _pretrain_one(configs[name], dirs[name]) for name in presets}
  print(f"=== pretraining {' and '.join(presets)} in two processes ===", flush=True)
  # 'spawn': a fresh interpreter per model (JAX's runtime does not survive a fork).
  with concurrent.futures.ProcessPoolExecutor(
      len(presets), mp_context=multiprocessing.get_context("spawn")) as pool:
    futures = {name: pool.submit(_pretrain_one, configs[name], dirs[name]) for name in presets}
    return {name: f.result() for name, f in futures.items()}


def _run_baselines(gate_config: ml_collections.ConfigDict) -> evaluate.BaselineRuns:
  return evaluate.run_baselines(gate_config, pair_lib.load_pair(gate_config))


def run(workdir: str, gate_config: ml_collections.ConfigDict, parallel: bool = True
        ) -> dict[str, Any]:
  """Pretrains gate_config.slm and gate_config.llm (their recipes), trains the gate of
  `gate_config` and evaluates it, everything under `workdir`. With `parallel`, the two models
  pretrain in two processes, and the baselines that do not depend on the gate are evaluated in
  a second process while the gate trains: each job keeps about one core busy, so on a 2-core
  machine a pair of them takes about the time of the longer one. Compiled programs are cached
  in workdir/jax_cache, so the gate's evaluation reuses the rollout the baselines compiled."""
  os.makedirs(workdir, exist_ok=True)
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.abspath(os.path.join(workdir, "jax_cache")))
  # The spawned processes read it from the environment.
  os.environ["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
  gate_config = ml_collections.ConfigDict(gate_config.to_dict())
  gate_config.assets_dir = os.path.join(workdir, "assets")
  gate_config.pretrain_dir = workdir
  t0, timings = time.time(), {}
  results = pretrain_pair(gate_config, parallel=parallel)
  timings["pretrain_seconds"] = time.time() - t0
  pretrain_table = results_table(results)
  print(pretrain_table, flush=True)

  t1 = time.time()
  gate_dir = os.path.join(workdir, "gate")
  if parallel:
    print("=== training the gate; evaluating the baselines in a second process ===", flush=True)
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")) as pool:
      future = pool.submit(_run_baselines, gate_config)
      gate.train(gate_config, gate_dir)
      t2 = time.time()
      baseline_runs = future.result()
  else:
    print("=== training the gate ===", flush=True)
    gate.train(gate_config, gate_dir)
    t2, baseline_runs = time.time(), None
  # Evaluation: from the end of gate training (waiting for the baselines' process, if any).
  timings["gate_seconds"] = t2 - t1
  print("=== evaluating the gate (and the baselines left) ===", flush=True)
  pair = pair_lib.load_pair(gate_config)
  gate_params, _ = pair_lib.load_gate(gate_dir)
  metrics = evaluate.evaluate(gate_config, pair, gate_params, gate_dir, baselines=baseline_runs)
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
