"""Pretraining (supervised next-token training) of a model preset on the task text, or on
word problems (config.data_dir, collab/data/word_problems.py).

Data order is a pure function of the step (`dataset[step]` on a grain MapDataset), so resuming
from a checkpoint at step k replays exactly what an uninterrupted run would have seen.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from collab import checkpoint as ckpt_lib
from collab import hf_pair
from collab import pair as pair_lib
from collab import config_check
from collab import errors
from collab.data import assets as assets_lib
from collab.data import pipeline
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.data import word_problems
from collab.models import presets
from collab.models import transformer
from collab.train import lm_eval
from collab.train import loop
from collab.train import metrics as metrics_lib
from collab.train import recipes


WORKDIR_MODES = ("refuse", "resume", "overwrite")
# What a run writes into its workdir: all that `workdir_mode="overwrite"` deletes.
RUN_FILES = ("checkpoints", "model", "gate", "tb", "config.json", "tokenizer.model",
             "metrics.jsonl", "eval.json")


def keep_if_finite(finite, new_tree, old_tree):
  """new_tree where `finite` (a scalar bool), else old_tree: a non-finite step changes nothing."""
  return jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_tree, old_tree)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(config.num_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * 0.1)
  return optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      optax.adamw(schedule, b2=0.98, weight_decay=config.weight_decay))


def lm_loss(params, cfg, tokens_BxT, loss_mask_BxT):
  """Next-token cross-entropy over the solution tokens, averaged with the predicted tokens'
  loss weights (the mask: 0 off, 1 by default, more on lines trained harder)."""
  inputs_BxT = tokens_BxT[:, :-1]
  targets_BxT = tokens_BxT[:, 1:]
  mask_BxT = loss_mask_BxT[:, 1:]
  positions_BxT = jnp.broadcast_to(jnp.arange(inputs_BxT.shape[1]), inputs_BxT.shape)
  logits_BxTxV, _, _ = transformer.apply(params, cfg, inputs_BxT, positions_BxT)
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32))
  nll_BxT = -jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
  denom = jnp.maximum(mask_BxT.sum(), 1.0)
  loss = (nll_BxT * mask_BxT).sum() / denom
  correct_BxT = (jnp.argmax(logits_BxTxV, -1) == targets_BxT).astype(jnp.float32)
  on_BxT = (mask_BxT > 0).astype(jnp.float32)
  token_accuracy = (correct_BxT * on_BxT).sum() / jnp.maximum(on_BxT.sum(), 1.0)
  return loss, {"loss": loss, "token_accuracy": token_accuracy}


def make_train_step(cfg, tx):
  def train_step(state, batch):
    grad_fn = jax.value_and_grad(lm_loss, has_aux=True)
    (_, metrics), grads = grad_fn(state["params"], cfg, batch["tokens_BxT"],
                                  batch["loss_mask_BxT"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    # NaN/inf anywhere: keep the old params and optimizer state (the loop skips or stops).
    metrics["finite"] = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
    params, opt_state = keep_if_finite(metrics["finite"], (params, opt_state),
                                       (state["params"], state["opt_state"]))
    return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics
  return jax.jit(train_step, donate_argnums=0)


def check_workdir_config(workdir: str, config: ml_collections.ConfigDict,
                         mode: str = "refuse"):
  """Refuses a workdir written by a different config (it would mix two runs' checkpoints).

  mode: 'refuse' (default), 'resume' (go on with the run there under this config: the user
  says the difference is harmless), 'overwrite' (delete the run there, RUN_FILES only, and
  start over). Nothing is written or deleted before the decision."""
  if mode not in WORKDIR_MODES:
    raise ValueError(f"workdir mode must be one of {WORKDIR_MODES}, got {mode!r}")
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  if mode == "overwrite":
    removed = [n for n in RUN_FILES if os.path.exists(os.path.join(workdir, n))]
    for name in removed:
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      else:
        os.remove(target)
    if removed:
      print(f"Overwrite: deleted the previous run's {removed} in {workdir}", flush=True)
  elif os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    # May change on resume: lengths and cadences, and the NaN policy.
    ignore = {"num_steps", "rl.num_steps", "log_every", "eval_every", "ckpt_every",
              "on_nonfinite"}
    previous, flat = _flatten(previous), _flatten(current)
    diff = sorted(k for k in set(previous) | set(flat)
                  if k not in ignore and previous.get(k) != flat.get(k))
    if diff and mode == "refuse":
      raise errors.ConfigError(
          f"Workdir {workdir} holds a run with another config (differs in {diff}); "
          "use a fresh --workdir, or pass --resume to go on with that run under "
          "this config, or --overwrite to delete it and start over.")
    if diff:
      print(f"Resuming the run in {workdir} under a config that differs in {diff}", flush=True)
  with open(path, "w") as f:
    json.dump(current, f, indent=2, sort_keys=True)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{"rl": {"num_steps": 4}} -> {"rl.num_steps": 4}: differences named by their full key."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def export_model(workdir: str, params, metadata: dict, tok) -> str:
  """Params-only export that collaboration reads: `workdir/model/` (params + metadata)."""
  path = os.path.join(workdir, "model")
  # Written beside the old export and swapped in when complete: a crash keeps the old one.
  with ckpt_lib.staging_dir(path) as tmp:
    # Host arrays: an export saved from device 0 must load on any process and device count.
    ckpt_lib.save_params(tmp, jax.device_get(params), metadata=metadata)
    shutil.copyfile(os.path.join(workdir, "tokenizer.model"), os.path.join(tmp, "tokenizer.model"))
  return path


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """What a pretraining run reads: its tokenizer, training examples, the facts it may learn
  (None: no world of facts), and the problems it is evaluated on."""
  tokenizer: tokenizer_lib.Tokenizer
  tokenizer_path: str
  train: Any  # random-access examples (pipeline.make_lm_dataset's source)
  known_mask: np.ndarray | None
  records: Callable[[str, int], list]  # (split, limit) -> evaluation records
  describe: str


def _task_data(config, task_cfg) -> TrainingData:
  """The generated task's shared assets, and the facts of the recipe's coverage."""
  assets = assets_lib.prepare_assets(task_cfg, config.assets_dir, config.vocab_size,
                                     pair_lib.tokenizer_type(config))
  known_mask = recipes.known_mask(config, task_lib.World(task_cfg))
  return TrainingData(assets.tokenizer, assets.tokenizer_path, assets.source("train"),
                      known_mask, functools.partial(assets_lib.load_records, assets),
                      f"fact coverage {config.fact_coverage} ({int(known_mask.sum())} facts)")


def _word_problem_data(config) -> TrainingData:
  """Word problems of config.data_dir (collab/data/word_problems.py): the problems of a seeded
  share (config.fact_coverage) of the training generators that fit config.seq_len."""
  tok, tok_path = word_problems.prepare_tokenizer(config.data_dir, config.assets_dir,
                                                  config.vocab_size)
  train = word_problems.read_split(config.data_dir, "train")
  covered = word_problems.covered_generators([ex["generator"] for ex in train],
                                             config.fact_coverage, config.coverage_seed)
  kept = word_problems.fits([ex for ex in train if ex["generator"] in covered], tok,
                            config.seq_len)

  def records(split, limit):
    return word_problems.read_split(config.data_dir, split)[:limit]

  return TrainingData(tok, tok_path, kept, None, records,
                      f"{len(covered)} training generators, {len(kept)} of {len(train)} "
                      f"problems (those of its generators within {config.seq_len} tokens)")


def ensure_pretrained(config: ml_collections.ConfigDict) -> None:
  """Pretrains the presets a gate config names (config.slm, config.llm) that are missing
  under config.pretrain_dir, with their recipes (collab/train/recipes.py) on the config's task
  and assets. Imported pairs are not pretrained here."""
  if hf_pair.uses_hf_models(config):
    return
  for preset in dict.fromkeys((config.slm, config.llm)):
    workdir = pair_lib.model_dir(config, preset)
    if os.path.exists(os.path.join(workdir, "model")):
      continue
    print(f"No pretrained {preset} in {workdir}: pretraining it now", flush=True)
    pre_config = recipes.pretrain_config(preset, runlocal=config.get("runlocal", False))
    pre_config.assets_dir = config.assets_dir
    pre_config.task = config.task
    if pre_config.get("data_dir") and config.get("data_dir"):  # word problems: the gate's JSONL
      pre_config.data_dir = config.data_dir
    train(pre_config, workdir)


def train(config: ml_collections.ConfigDict, workdir: str, *,
          stop_after_steps: int | None = None,
          workdir_mode: str = "refuse") -> dict[str, Any] | None:
  """Trains config.model on the task, resuming from workdir's checkpoints; returns eval metrics.

  stop_after_steps: leave after this many steps of this run (checkpointed, no evaluation), as a
  preempted job would; the next call resumes. Returns None then.
  workdir_mode: for a workdir that holds a run of another config (`check_workdir_config`).
  SIGTERM: the step in progress is checkpointed, then `preemption.Preempted` is raised.
  A non-finite loss stops the run or skips the step (`loop.nonfinite_policy`).
  """
  # Check the config before touching the workdir: a typo must leave nothing behind.
  config_check.check_pretraining(config, workdir)
  task_cfg = pair_lib.task_config(config)
  presets.get_model_config(config.get("preset", config.model), config.vocab_size)
  on_nonfinite = loop.nonfinite_policy(config)
  os.makedirs(workdir, exist_ok=True)
  check_workdir_config(workdir, config, workdir_mode)
  data = _word_problem_data(config) if config.get("data_dir") else _task_data(config, task_cfg)
  tok, known_mask = data.tokenizer, data.known_mask
  run_tok_path = os.path.join(workdir, "tokenizer.model")
  if os.path.exists(run_tok_path):  # a run to resume: its checkpoints use this tokenizer
    tokenizer_lib.check_fingerprint(tokenizer_lib.Tokenizer.load(run_tok_path).fingerprint, tok,
                                    where=os.path.join(workdir, "checkpoints"))
  else:
    shutil.copyfile(data.tokenizer_path, run_tok_path)
  cfg = presets.get_model_config(config.get("preset", config.model), tok.vocab_size)

  dataset = pipeline.make_lm_dataset(
      data.train, tok, seq_len=config.seq_len, batch_size=config.batch_size,
      seed=config.seed, known_mask=known_mask, unknown_facts=config.unknown_facts,
      redact_prob=config.redact_prob, arith_weight=config.get("arith_weight", 1.0))
  tx = make_optimizer(config)
  params = transformer.init_params(cfg, jax.random.PRNGKey(config.seed))
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
  print(f"Model {config.model}: {transformer.num_params(cfg):,} params, {data.describe}",
        flush=True)

  # The tokenizer travels inside every checkpoint and export (base64 of the sentencepiece
  # model), and its fingerprint is checked whenever one is loaded.
  metadata = {"tokenizer_fingerprint": tok.fingerprint,
              "tokenizer_model_b64": base64.b64encode(tok.model_bytes).decode("ascii"),
              "model": config.model, "model_config": dataclasses.asdict(cfg)}
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                       max_to_keep=config.max_to_keep)
  if checkpointer.latest_step() is not None:
    state, extra = checkpointer.restore(target=state)
    tokenizer_lib.check_fingerprint(extra["tokenizer_fingerprint"], tok,
                                    where=os.path.join(workdir, "checkpoints"))
    print(f"Resumed from step {int(state['step'])}", flush=True)

  train_step = make_train_step(cfg, tx)
  writer = metrics_lib.MetricsWriter(workdir)
  try:
    state, train_seconds = _train_loop(config, workdir, train_step, state, dataset, checkpointer,
                                       writer, metadata, on_nonfinite, stop_after_steps)
    if int(state["step"]) < config.num_steps:
      return None  # stop_after_steps
    results = _export_and_evaluate(config, workdir, state, cfg, tok, data, metadata, writer,
                                   train_seconds)
  finally:  # also on errors: pending saves finish, files close
    checkpointer.close()
    writer.close()
  return results


def _train_loop(config, workdir, train_step, state, dataset, checkpointer, writer, metadata,
                on_nonfinite, stop_after_steps):
  """Steps from state["step"] to config.num_steps (or a stop) through the shared loop
  (collab/train/loop.py); returns (state, seconds)."""
  holder = {"state": state, "tokens": 0}
  start_step = int(state["step"])

  def step_fn(step):
    batch = dataset[step]
    holder["state"], metrics = train_step(holder["state"], batch)
    holder["tokens"] += batch["tokens_BxT"].size
    return metrics

  outcome = loop.run(
      loop.Cadence(config.num_steps, config.log_every, config.ckpt_every, on_nonfinite),
      start_step, step_fn, save=lambda done: checkpointer.save(done, holder["state"],
                                                               extra=metadata),
      checkpointer=checkpointer, writer=writer, workdir=workdir,
      extra_metrics=lambda done, seconds: {"tokens_per_s": holder["tokens"] / max(seconds,
                                                                                   1e-9)},
      stop_after_steps=stop_after_steps)
  return holder["state"], outcome.seconds


def _export_and_evaluate(config, workdir, state, cfg, tok, data, metadata, writer,
                         train_seconds):
  """The params export (model/) and the held-out evaluation (eval.json) of a finished run."""
  export_model(workdir, state["params"], metadata, tok)
  records = data.records(config.eval.split, config.eval.num_problems)
  t_eval = time.time()
  lengths = {k: config.eval[k] for k in ("max_new_tokens", "step_max_new_tokens")
             if k in config.eval}
  results = lm_eval.evaluate_lm(state["params"], cfg, tok, records, known_mask=data.known_mask,
                                batch_size=config.eval.batch_size,
                                task_kinds=data.known_mask is not None, **lengths)
  results.update(model=config.model, fact_coverage=config.fact_coverage,
                 num_params=transformer.num_params(cfg), steps=config.num_steps,
                 train_seconds_this_run=train_seconds, eval_seconds=time.time() - t_eval,
                 split=config.eval.split)
  writer.write(config.num_steps, {k: v for k, v in results.items()
                                  if isinstance(v, (int, float)) and k.startswith(("final", "step_"))})
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=1), flush=True)
  return results
