"""Runs a study: gates trained per setting (resumable) and evaluated, baselines once per pair.

A study config (configs/studies/*.py) lists `runs`, each a configs/gate.py argument string
added to the study's `base_arg`, with optional `eval_llms`: other LLMs the same trained gate is
evaluated with, unchanged (transfer). Everything lands under the study's workdir:

  workdir/<run name>/              gate training (checkpoints, metrics, gate export)
  workdir/<run name>/eval_<llm>.json   the greedy gate on the held-out problems with that LLM
  workdir/baselines/<key>.json     every baseline policy of one (SLM, LLM, rollout) setting

Each file is written once and reused, so an interrupted study resumes where it stopped. The
JSON keeps per-problem correctness and calls, so analyses can pair policies on the same
problems.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import ml_collections

from collab import baselines as baselines_lib
from collab import config_args
from collab import config_check
from collab import config_ranges
from collab import errors
from collab import evaluate
from collab import fitted_baselines
from collab import pair as pair_lib
from collab.data import task as task_lib
from collab.train import calibration
from collab.train import gate as gate_lib
from collab.train import pretrain

# Baseline policy sweeps: dense enough that a gate can be compared with the best static or
# random policy at equal or fewer calls per problem.
RANDOM_RATES = (0.0625, 0.125, 0.25, 0.5, 0.75)
THRESHOLDS = (-0.02, -0.05, -0.1, -0.2, -0.5, -1.0, -2.0)
DEFAULT_GATE_CONFIG = "configs/gate.py"


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  arg: str                        # configs/gate.py argument string (after the study's base_arg)
  setting: str = ""               # runs of one setting differ only by seed
  eval_llms: tuple[str, ...] = ()  # LLMs to evaluate the trained gate with, besides its own
  train_name: str = ""            # the gate's folder, when runs share one (default: name)
  call_price: float | None = None  # the price a price-conditioned gate is told in evaluation
  gate_dir: str = "gate"          # the trained params to evaluate ('gate_last': the last step's
                                  # when training selected another checkpoint)
  price_target: tuple[str, float] | None = None  # ('calls' | 'llm_tokens' per problem, or
                                  # 'call_rate', per decision): the
                                  # price-conditioned gate is told the price that meets it on
                                  # held-out training problems (collab/train/calibration.py)


def runs_of(config: ml_collections.ConfigDict) -> list[Run]:
  return [Run(r["name"], r["arg"], r.get("setting", r["name"]), tuple(r.get("eval_llms", ())),
              r.get("train_name", ""), r.get("call_price"), r.get("gate_dir", "gate"),
              tuple(r["price_target"]) if r.get("price_target") else None)
          for r in config.runs]


def gate_config(config: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """The gate config (config.gate_config, default configs/gate.py) for `base_arg,arg`, with
  the study's model and data folders and its baseline sweeps."""
  full = ",".join(a for a in (config.base_arg, arg) if a)
  cfg = config_args.load_config_file(config.get("gate_config", DEFAULT_GATE_CONFIG), full)
  cfg.pretrain_dir = config.pretrain_dir
  cfg.assets_dir = config.assets_dir
  cfg.eval.update(random_rates=RANDOM_RATES, thresholds=THRESHOLDS)
  fitted = config.get("fitted_problems", 0)
  if fitted:  # runlocal gate configs leave the fitted baselines off; a study may need them
    cfg.eval.line_kinds.problems = fitted
    cfg.eval.router.problems = fitted
  return cfg


def check_study(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
  """The study's own numbers, and every run's gate config (built as the runner builds it)."""
  if workdir is not None:
    config_check.check_workdir(workdir)
  config_ranges.check_ranges(config, config_check.STUDY)
  for run in runs_of(config):
    where = f"study run {run.name!r} (arg {run.arg!r})"
    if run.call_price is not None and not config_ranges.NON_NEGATIVE.contains(run.call_price):
      raise errors.ConfigError(f"{where}: call_price={run.call_price!r} is out of range: "
                               f"expected {config_ranges.NON_NEGATIVE.describe()}")
    if run.price_target is not None:
      kind, target = run.price_target
      if kind not in calibration.KEYS:
        raise errors.ConfigError(f"{where}: price_target kind {kind!r}; valid: "
                                 + ", ".join(map(repr, calibration.KEYS)))
      if not config_ranges.POSITIVE.contains(target):
        raise errors.ConfigError(f"{where}: price_target={target!r} is out of range: "
                                 f"expected {config_ranges.POSITIVE.describe()}")
    try:
      cfg = gate_config(config, run.arg)
      config_check.check_gate(cfg)
      config_check.check_device_split(cfg)
    except (errors.UserError, ValueError, TypeError) as err:
      raise errors.ConfigError(f"{where}: {err}") from err


def _uncapped(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Baselines run without a hard call budget, whatever budget the gate was given."""
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.rollout.budget = max(cfg.rollout.budget, cfg.rollout.num_steps)
  return cfg


def _dump(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)  # never a half-written result to resume from


def _load(path: str) -> Any | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _run(cfg, pair, setup, gate_params, episodes, named: baselines_lib.Baseline,
         call_price=None) -> dict[str, Any]:
  """A named policy's summary, with per-problem correctness and calls kept for pairing."""
  summary, per = evaluate.run_named(cfg, pair, setup, gate_params, episodes, named,
                                    call_price=call_price)
  return dict(summary, per_problem={"correct": per["correct"].astype(int).tolist(),
                                    "calls": per["calls"].astype(int).tolist()})


def baseline_key(cfg: ml_collections.ConfigDict) -> str:
  """Names one (SLM, LLM, rollout, world) setting; a world option that is on (a held-out
  test split: other test problems) adds its value, so worlds never share baselines."""
  r = cfg.rollout
  key = f"{cfg.slm}__{cfg.llm}__{r.granularity}{r.step_tokens}x{r.num_steps}_b{r.budget}"
  if cfg.eval.split != "test":  # e.g. the sealed split: other problems
    key += f"__{cfg.eval.split}"
  task = cfg.get("task") or {}
  return key + "".join(f"__{k}{task[k]}" for k in sorted(task_lib.OFF_OPTIONS)
                       if k in task and task[k] != task_lib.OFF_OPTIONS[k])


def evaluate_baselines(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every baseline for cfg's (SLM, LLM, rollout) setting, computed once and cached; with
  the fitted ones (line kinds, router: collab/fitted_baselines.py) and what they learned."""
  path = os.path.join(workdir, "baselines", baseline_key(cfg) + ".json")
  cached = _load(path)
  if cached is not None and "fitted" in cached:  # else a file without the fitted baselines
    return cached
  print(f"=== baselines {baseline_key(cfg)} ===", flush=True)
  pretrain.ensure_pretrained(cfg)
  pair = pair_lib.load_pair(cfg)
  episodes = pair_lib.eval_episodes(cfg, pair)
  setup = pair_lib.make_setup(cfg, pair)
  gate_params = pair_lib.init_gate(cfg, pair)  # unused by baselines: the rollout's input
  fitted = fitted_baselines.fit(cfg, pair, setup)
  policies = {named.name: _run(cfg, pair, setup, gate_params, episodes, named)
              for named in baselines_lib.baselines(cfg.eval, fitted=fitted)}
  out = {"key": baseline_key(cfg), "slm": cfg.slm, "llm": cfg.llm, "policies": policies,
         "num_problems": len(episodes["row_id_B"]), "split": cfg.eval.split,
         "fitted": fitted.info}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  _dump(path, out)
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, run: Run, workdir: str
                       ) -> dict[str, Any]:
  """Trains the run's gate (or resumes it) and evaluates it with its LLM and each eval_llm."""
  cfg = gate_config(config, run.arg)
  run_dir = run_dir_of(workdir, run)
  if not os.path.exists(os.path.join(run_dir, "gate")):
    print(f"=== training gate {run.train_name or run.name} ({cfg.slm} x {cfg.llm}) ===",
          flush=True)
    gate_lib.train(cfg, run_dir)
  gate_params, _ = pair_lib.load_gate(run_dir, run.gate_dir)
  calibrated = _calibrate(cfg, run, run_dir, gate_params) if run.price_target else None
  call_price = calibrated["price"] if calibrated else run.call_price
  evals = {}
  for llm in (cfg.llm,) + tuple(l for l in run.eval_llms if l != cfg.llm):
    path = eval_path(run_dir, llm, call_price, run.gate_dir)
    result = _load(path)
    if result is None:
      print(f"=== evaluating gate {run.name} with {llm} ===", flush=True)
      ecfg = pair_lib.with_llm(cfg, llm)
      pretrain.ensure_pretrained(ecfg)
      pair = pair_lib.load_pair(ecfg)
      episodes = pair_lib.eval_episodes(ecfg, pair)
      result = _run(ecfg, pair, pair_lib.make_setup(ecfg, pair), gate_params, episodes,
                    baselines_lib.Baseline("gate", "gate", evaluate.GREEDY_GATE),
                    call_price=call_price)
      train_metrics = _last_train_metrics(run_dir)
      result.update(llm=llm, trained_with="+".join(gate_lib.train_llms(cfg)),
                    train=train_metrics)
      _dump(path, result)
    if calibrated:  # what the gate spent where its price was set, not its training batch
      result = dict(result, train={"calls": calibrated["spend"]["calls"],
                                   "cost/per_call": call_price})
    evals[llm] = result
  budget_target = cfg.budget_target.to_dict()
  if calibrated:
    budget_target.update(calls=0.0, llm_tokens=0.0, mode="price")
    budget_target[calibrated["key"]] = calibrated["target"]
  base = {llm: evaluate_baselines(_uncapped(pair_lib.with_llm(cfg, llm)), workdir) for llm in evals}
  # A gate under a hard budget is also compared with the baselines under the same budget
  # (their asks are masked the same way once the budget is spent).
  # (A study that compares only at equal calls, such as the headline, turns them off.)
  capped = ({llm: evaluate_baselines(pair_lib.with_llm(cfg, llm), workdir)["key"] for llm in evals}
            if cfg.rollout.budget < cfg.rollout.num_steps
            and config.get("capped_baselines", True) else {})
  return {"name": run.name, "setting": run.setting, "arg": run.arg, "slm": cfg.slm,
          "llm": cfg.llm, "train_llms": list(gate_lib.train_llms(cfg)), "seed": cfg.seed,
          "costs": cfg.costs.to_dict(), "budget_target": budget_target,
          "granularity": cfg.rollout.granularity, "step_tokens": cfg.rollout.step_tokens,
          "budget": cfg.rollout.budget, "evals": evals,
          "baselines": {llm: b["key"] for llm, b in base.items()}, "baselines_capped": capped}


def _calibrate(cfg, run: Run, run_dir: str, gate_params) -> dict[str, Any]:
  """The run's price target calibrated on held-out training problems (cached in run_dir)."""
  key, target = run.price_target
  path = calibration_path(run_dir, key, target, run.gate_dir)
  out = _load(path)
  if out is None:
    print(f"=== calibrating gate {run.name}: price for {target:g} {key} per problem ===",
          flush=True)
    out = calibration.calibrate(cfg, pair_lib.load_pair(cfg), gate_params, key, target)
    _dump(path, out)
  return out


def _suffix(gate_dir: str) -> str:
  return "" if gate_dir == "gate" else f"_{gate_dir}"


def run_dir_of(workdir: str, run: Run) -> str:
  """Where a run's gate trains (shared by the runs of one train_name)."""
  return os.path.join(workdir, run.train_name or run.name)


def eval_path(run_dir: str, llm: str, call_price: float | None = None,
              gate_dir: str = "gate") -> str:
  """A gate's evaluation with `llm`: eval_<llm>[_price<p>][_<gate_dir>].json."""
  price = "" if call_price is None else f"_price{call_price:g}"
  return os.path.join(run_dir, f"eval_{llm}{price}{_suffix(gate_dir)}.json")


def calibration_path(run_dir: str, key: str, target: float, gate_dir: str = "gate") -> str:
  """The price calibrated to `target` of `key`: calibration_<key><target>[_<gate_dir>].json."""
  return os.path.join(run_dir, f"calibration_{key}{target:g}{_suffix(gate_dir)}.json")


def _last_train_metrics(run_dir: str) -> dict[str, float]:
  path = os.path.join(run_dir, "metrics.jsonl")
  last = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        row = json.loads(line)
        if "calls" in row:
          last = row
  return last


def run_study(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every run of the study (resuming), then {'runs': [...], 'baselines': {key: ...}}."""
  os.makedirs(workdir, exist_ok=True)
  runs, t0 = [], time.time()
  for i, run in enumerate(runs_of(config)):
    print(f"--- study {config.study}: run {i + 1}/{len(config.runs)} {run.name} "
          f"({time.time() - t0:.0f} s) ---", flush=True)
    runs.append(train_and_evaluate(config, run, workdir))
  keys = {k for r in runs for d in ("baselines", "baselines_capped")
          for k in r.get(d, {}).values()}
  baselines = {k: _load(os.path.join(workdir, "baselines", k + ".json")) for k in sorted(keys)}
  return {"runs": runs, "baselines": baselines, "seconds": time.time() - t0,
          "base_arg": config.base_arg}
