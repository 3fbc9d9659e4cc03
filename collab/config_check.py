"""Range checks of every number in the gate, pretraining, pair and study configs, run before
anything is written.

Each numeric field has a `Range` (collab/config_ranges.py) in a table (`GATE`, `PRETRAIN`,
`TASK`, `MESH`, `STUDY`); an out-of-range value raises `errors.ConfigError` naming the key,
the value and the valid range, e.g.

  config.rl.num_steps=-3 is out of range: expected an integer >= 1

The entry points call these through the trainers (`check_gate_training`, `check_pretraining`
at the top of `gate.train` and `pretrain.train`) and `check_study` (experiments/study.py), so a
bad config stops before its workdir is created or its config.json is written, and a corrected
rerun into the same workdir is not taken for another run.

A gate run also needs its rollouts to split over the devices: each device takes whole problems
(all `group_size` rollouts of a problem, so their group baseline is computed in one place), so
rl.problems_per_step must be a multiple of the data-parallel device count. A batch that does
not split is refused, with the values that would, rather than padded: padding rows would cost a
full rollout each and take no part in the update, and the update would no longer match the
problems_per_step the config names.
"""
from __future__ import annotations

import os

import jax
import ml_collections

from collab import config_args
from collab.config_ranges import (FINITE, NON_NEGATIVE, POSITIVE, PROBABILITY, SEED, Range,
                                  check_ranges, count)
from collab import errors
from collab import gating
from collab import hf_pair
from collab import pair as pair_lib
from collab import rollout as rollout_lib
from collab.data import task as task_lib
from collab.data import tfds_gsm8k
from collab.data import tokenizer as tokenizer_lib
from collab.data import word_problems
from collab.models import presets
from collab.train import loop
from collab.train import recipes



TASK = {
    "world_seed": SEED,
    "num_entities": count(1),
    "price_max": count(1),
    "min_items": count(1),
    "max_items": count(1),
    "qty_max": count(1),
    "balance_digits": count(1),
    "private_prob": PROBABILITY,
    "arith_width": count(0),
    "num_train": count(1),
    "num_validation": count(1),
    "num_test": count(1),
    "heldout_entities": Range(low=0, high=1, high_open=True,
                              why="the share of entities only test problems buy"),
}

_LOOP = {
    "log_every": count(1),
    "ckpt_every": count(1),
    "max_to_keep": count(1),
}

PRETRAIN = {
    "seed": SEED,
    "vocab_size": count(1),
    "seq_len": count(1),
    "fact_coverage": PROBABILITY,
    "coverage_seed": SEED,
    "redact_prob": PROBABILITY,
    "fact_overlap": Range(low=-1, high=1, why="-1: off"),
    "overlap_coverage": PROBABILITY,
    "arith_weight": POSITIVE,
    "num_steps": count(1),
    "batch_size": count(1),
    "learning_rate": POSITIVE,
    "warmup_steps": count(0),
    "weight_decay": NON_NEGATIVE,
    "grad_clip": POSITIVE,
    "eval.num_problems": count(1),
    "eval.batch_size": count(1),
    "eval.max_new_tokens": count(1),
    "eval.step_max_new_tokens": count(1),
    **_LOOP,
    **{f"task.{k}": r for k, r in TASK.items()},
}

GATE = {
    "seed": SEED,
    "vocab_size": count(1),
    "prompt_len": count(1),
    "rollout.num_steps": count(1),
    "rollout.step_tokens": count(1),
    "rollout.budget": count(0),
    "rollout.llm_capacity": count(0, "0: every row"),
    "rollout.llm_sizes": count(1),
    "rollout.kv_buckets": count(1),
    "rollout.slm_temperature": NON_NEGATIVE,
    "rollout.llm_temperature": NON_NEGATIVE,
    "gate.hidden_dim": count(1),
    "gate.feature_layers": count(1),
    "gate.explore": PROBABILITY,
    "gate.price_scale_init": FINITE,
    "gate.draft_scale_init": FINITE,
    "gate.draft_center_logp": Range(high=0, why="a log-probability"),
    "costs.per_call": NON_NEGATIVE,
    "costs.per_llm_token": NON_NEGATIVE,
    "costs.per_private_token": NON_NEGATIVE,
    "costs.per_call_range": Range(low=0, each=True),
    "budget_target.calls": NON_NEGATIVE,
    "budget_target.calls_lr": NON_NEGATIVE,
    "budget_target.llm_tokens": NON_NEGATIVE,
    "budget_target.llm_tokens_lr": NON_NEGATIVE,
    "rl.num_steps": count(1),
    "rl.problems_per_step": count(1),
    "rl.group_size": count(2, "advantages are rewards minus their group's mean: a group of "
                              "1 has none"),
    "rl.learning_rate": POSITIVE,
    "rl.entropy_coef": NON_NEGATIVE,
    "rl.ppo_epochs": count(0, "0: REINFORCE"),
    "rl.clip_eps": POSITIVE,
    "rl.grad_clip": POSITIVE,
    "rl.num_train_problems": count(1),
    "rl.llm_capacity": count(0, "0: every row"),
    "rl.cost_warmup_steps": count(0),
    "rl.select_problems": count(0, "0: keep the last checkpoint"),
    "rl.select_from": PROBABILITY,
    "rl.select_prices": count(1),
    "eval.num_problems": count(1),
    "eval.batch_size": count(1),
    "eval.random_rates": Range(low=0, high=1, each=True),
    "eval.thresholds": Range(each=True),
    "eval.every_k": Range(low=1, integer=True, each=True),
    "eval.fixed_steps": Range(low=0, integer=True, each=True),
    "eval.call_prices": Range(low=0, each=True),
    "eval.fine_thresholds": count(0),
    "eval.line_kinds.problems": count(0, "0: off"),
    "eval.skip": count(0),
    "eval.router.problems": count(0, "0: off"),
    "eval.router.steps": count(1),
    "eval.router.lr": POSITIVE,
    "eval.router.thresholds": Range(low=0, high=1, each=True),
    "eval.router.ask_shares": Range(low=0, high=1, each=True),
    **_LOOP,
    **{f"task.{k}": r for k, r in TASK.items()},
}

# Imported pairs (configs/pairs/): the device mesh. (config.models holds published
# architectures, checked against each checkpoint's config.json when it loads.)
MESH = {
    "mesh.num_devices": count(1),
    "mesh.hbm_gib": POSITIVE,
    "mesh.data": count(1),
    "mesh.model": count(1),
    "mesh.slm_model_axis": count(1),
    "mesh.llm_model_axis": count(1),
    # Worked examples before the question in a few-shot prompt (0: none).
    "prompt.shots": count(0),
}
GATE.update(MESH)

STUDY = {
    "seeds": Range(low=0, integer=True, each=True),
}


def _config_errors(fn, *args):
  """fn(*args), its ValueError / TypeError turned into ConfigError (the trainers' own config
  checks raise plain ValueError)."""
  try:
    return fn(*args)
  except errors.UserError:
    raise
  except (ValueError, TypeError, KeyError) as err:
    raise errors.ConfigError(str(err)) from err


def _check_task(config) -> None:
  task = config.get("task")
  if task is not None and task.get("min_items", 1) > task.get("max_items", 1):
    raise errors.ConfigError(
        f"config.task.min_items={task.min_items} is above config.task.max_items="
        f"{task.max_items}: expected min_items <= max_items")


def check_workdir(path: str, flag: str = "--workdir") -> None:
  """A path that exists must be a directory (os.makedirs would say only 'File exists')."""
  if path and os.path.exists(path) and not os.path.isdir(path):
    raise errors.ConfigError(f"{flag}={path} is a file, not a directory: give a directory "
                             "(it is created when missing)")


def check_gate_consistency(config: ml_collections.ConfigDict) -> None:
  """Settings of a gate config that contradict each other, or names it cannot resolve."""
  pair_lib.task_config(config)
  loop.nonfinite_policy(config)
  config_args.to_dataclass(gating.GateConfig, config.gate, "config.gate")
  config_args.to_dataclass(rollout_lib.RolloutConfig, config.rollout, "config.rollout")
  prices = pair_lib.price_range(config)
  if prices is not None:
    if not 0 < prices[0] <= prices[1]:
      raise errors.ConfigError(f"config.costs.per_call_range must be 0 < low <= high, got {prices}")
    if not config.gate.get("price_input", False):
      raise errors.ConfigError("A call price range needs config.gate.price_input=True: the gate must "
                       "be told the price it is charged")
    if config.get("budget_target", {}).get("calls"):
      raise errors.ConfigError("A call price range and a calls budget target both set the call "
                       "price; choose one")
  elif config.gate.get("price_input", False):
    raise errors.ConfigError("config.gate.price_input=True needs config.costs.per_call_range")
  if config.gate.get("price_offset", False) and not config.gate.get("price_input", False):
    raise errors.ConfigError("config.gate.price_offset=True needs a price-conditioned gate "
                     "(price_max > 0): the offset is -scale * the price the gate is told")
  router = config.get("eval", {}).get("router")
  if router is not None and router.get("collect", "oracle") not in ("oracle", "slm_alone"):
    raise errors.ConfigError("config.eval.router.collect must be 'oracle' or 'slm_alone', got "
                             f"{router.collect!r}")
  if config.rl.get("init", "scratch") not in ("scratch", "router"):
    raise errors.ConfigError(f"config.rl.init must be 'scratch' or 'router', got "
                             f"{config.rl.init!r}")
  if config.rl.get("init") == "router" and not (router and router.problems > 0):
    raise errors.ConfigError("config.rl.init='router' fits the router of config.eval.router: "
                             "set eval.router.problems > 0")
  credit = config.rl.get("credit", "episode")
  if credit not in ("episode", "causal"):
    raise errors.ConfigError(f"config.rl.credit must be 'episode' or 'causal', got {credit!r}")
  mode = config.get("budget_target", {}).get("mode", "dual")
  if mode not in ("dual", "mixture"):
    raise errors.ConfigError(f"config.budget_target.mode must be 'dual' or 'mixture', got {mode!r}")
  held_out = config.rl.get("select_problems", 0)
  if held_out:
    if held_out < 0 or held_out >= config.rl.num_train_problems:
      raise errors.ConfigError(f"config.rl.select_problems must be in [0, num_train_problems="
                       f"{config.rl.num_train_problems}), got {held_out}")
    target = config.get("budget_target")
    if target is not None and (target.calls > 0 or target.llm_tokens > 0):
      raise errors.ConfigError("Checkpoint selection scores rewards at fixed prices; a budget target "
                       "moves the price in training: choose one")
  extra_llms = tuple(config.rl.get("extra_llms", ()))
  if extra_llms:
    if hf_pair.uses_hf_models(config) or (config.get("mesh") and config.mesh.get("model", 1) > 1):
      raise errors.ConfigError("config.rl.extra_llms (a gate trained with several LLMs) needs "
                               "a pair pretrained here and data-parallel training")
    if len(set((config.llm,) + extra_llms)) < 1 + len(extra_llms):
      raise errors.ConfigError(f"config.rl.extra_llms={extra_llms} must name other LLMs than "
                               f"config.llm={config.llm!r}, each once")
  presets = () if hf_pair.uses_hf_models(config) else (config.slm, config.llm) + extra_llms
  for preset in presets:  # imported pairs are not pretrained here
    if not os.path.exists(os.path.join(config.pretrain_dir, preset, "model")):
      recipes.get_recipe(preset)  # it would be pretrained now: the name must be a recipe


# ---------------------------------------------------------------------------- gate


def check_gate(config: ml_collections.ConfigDict) -> None:
  """Ranges, then the settings' consistency (check_gate_consistency)."""
  check_ranges(config, GATE)
  _check_task(config)
  _config_errors(tokenizer_lib.check_type, pair_lib.tokenizer_type(config))
  rl = config.rl
  split = config.eval.get("split", "test")
  valid = (word_problems.SPLITS if config.get("data_dir")
           else task_lib.SPLITS + (task_lib.SEALED,))
  if split not in valid:
    raise errors.ConfigError(f"config.eval.split={split!r}; valid: {', '.join(valid)}")
  if rl.select_problems:
    available = rl.num_train_problems
    if not config.get("data_dir") and config.get("task") is not None:
      split = config.task.get(f"num_{rl.split}")
      available = min(available, split) if split else available
    if rl.select_problems >= available:
      raise errors.ConfigError(
          f"config.rl.select_problems={rl.select_problems} is out of range: expected an "
          f"integer in [0, {available}) (it holds out that many of the {available} training "
          "problems)")
  _config_errors(check_gate_consistency, config)


def data_devices(config: ml_collections.ConfigDict) -> tuple[int, str]:
  """(data-parallel device count, what it is) for a gate config on this machine."""
  mesh = config.get("mesh")
  model = int(mesh.get("model", 1)) if mesh else 1
  n = jax.device_count()
  if model > 1:
    if n % model:
      raise errors.ConfigError(f"config.mesh.model={model} must divide the {n} devices; "
                               f"divisors of {n}: {_divisors(n)}")
    return n // model, f"{n // model} data shards ({n} devices / mesh.model={model})"
  return n, f"{n} device{'s' if n > 1 else ''}"


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def _join(values: list[int]) -> str:
  values = [str(v) for v in values]
  return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def check_device_split(config: ml_collections.ConfigDict) -> None:
  """Each device takes whole problems: rl.problems_per_step must be a multiple of the
  data-parallel device count; with a mesh, eval.batch_size too."""
  n, what = data_devices(config)
  problems, group = config.rl.problems_per_step, config.rl.group_size
  if problems % n:
    below, above = problems // n * n, (problems // n + 1) * n
    options = [v for v in (below, above) if v > 0]
    fits = _divisors(problems)
    raise errors.ConfigError(
        f"config.rl.problems_per_step={problems} ({problems * group} rollouts) does not split "
        f"over {what}: each device takes whole problems (all group_size={group} rollouts of "
        f"one), so problems_per_step must be a multiple of {n}: set "
        f"config.rl.problems_per_step={_join(options)}; or run on a device count that divides "
        f"{problems}: {_join(fits)}")
  if config.get("mesh") and config.mesh.get("model", 1) > 1 and config.eval.batch_size % n:
    raise errors.ConfigError(
        f"config.eval.batch_size={config.eval.batch_size} does not split over {what}: set it "
        f"to a multiple of {n}")


def check_data(config: ml_collections.ConfigDict) -> None:
  """An imported pair's checkpoint and data directories exist, and its JSONL files parse."""
  if hf_pair.uses_hf_models(config):
    for key in ("slm_hf_dir", "llm_hf_dir"):
      path = config.get(key)
      if not path:
        raise errors.ConfigError(f"config.{key} is unset: an imported pair needs both "
                                 "slm_hf_dir and llm_hf_dir")
      if not (os.path.isdir(path) or (path.endswith(".gguf") and os.path.isfile(path))):
        raise errors.ConfigError(f"config.{key}={path}: no such directory or GGUF file (a "
                                 "Hugging Face checkpoint directory: config.json, "
                                 "safetensors, tokenizer; or a .gguf file)")
    if not config.get("data_dir"):
      raise errors.ConfigError("config.data_dir is unset: imported models need GSM8K-style "
                               "JSONL data (the generated task comes with its own tokenizer)")
  data_dir = config.get("data_dir")
  if data_dir:
    tfds_gsm8k.check_source_dir(data_dir)


def check_gate_training(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
  """Everything a gate training run can check before it writes: ranges, consistency, the
  device split, an imported pair's directories and data, and the workdir."""
  if workdir is not None:
    check_workdir(workdir)
  check_gate(config)
  check_device_split(config)
  check_data(config)


# ---------------------------------------------------------------------------- pretraining


def check_pretraining(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
  """Ranges, then the pretraining trainer's own checks (task keys, preset, NaN policy)."""
  if workdir is not None:
    check_workdir(workdir)
  check_ranges(config, PRETRAIN)
  _check_task(config)
  if config.get("data_dir"):  # word problems: the JSONL must be there before any work
    train = os.path.join(config.data_dir, "train.jsonl")
    if not os.path.exists(train):
      raise errors.DataError(f"config.data_dir={config.data_dir}: {train} does not exist; "
                             "write the word problems first: `make word-problems` "
                             "(docs/word_problems.md)")
    if config.eval.split not in ("train", "validation", "test"):
      raise errors.ConfigError(f"config.eval.split={config.eval.split!r}; valid for word "
                               "problems: train, validation, test")
  _config_errors(tokenizer_lib.check_type, pair_lib.tokenizer_type(config))
  task_cfg = _config_errors(pair_lib.task_config, config)
  # The facts it trains on: coverage and overlap must fit the world.
  _config_errors(lambda: recipes.known_mask(config, task_lib.World(task_cfg)))
  _config_errors(presets.get_model_config, config.get("preset", config.model),
                 config.vocab_size)
  _config_errors(loop.nonfinite_policy, config)
  if workdir is not None:
    check_workdir(workdir)
