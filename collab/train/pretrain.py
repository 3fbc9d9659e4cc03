"""Pretraining (supervised next-token training) of a model preset on the task text.

Data order is a pure function of the step (`dataset[step]` on a grain MapDataset), so resuming
from a checkpoint at step k replays exactly what an uninterrupted run would have seen.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from collab import checkpoint as ckpt_lib
from collab.data import assets as assets_lib
from collab.data import pipeline
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import config as model_config
from collab.models import presets
from collab.models import transformer
from collab.train import lm_eval
from collab.train import metrics as metrics_lib


def task_config(config: ml_collections.ConfigDict) -> task_lib.TaskConfig:
  return task_lib.TaskConfig(**config.task.to_dict())


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(config.num_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * 0.1)
  return optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      optax.adamw(schedule, b2=0.98, weight_decay=config.weight_decay))


def lm_loss(params, cfg, tokens_BxT, loss_mask_BxT):
  """Mean next-token cross-entropy over the solution tokens (mask of the predicted token)."""
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
  return loss, {"loss": loss, "token_accuracy": (correct_BxT * mask_BxT).sum() / denom}


def make_train_step(cfg, tx):
  def train_step(state, batch):
    grad_fn = jax.value_and_grad(lm_loss, has_aux=True)
    (_, metrics), grads = grad_fn(state["params"], cfg, batch["tokens_BxT"],
                                  batch["loss_mask_BxT"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics
  return jax.jit(train_step, donate_argnums=0)


def check_workdir_config(workdir: str, config: ml_collections.ConfigDict):
  """Refuses a workdir written by a different config (it would mix two runs' checkpoints)."""
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    ignore = {"num_steps", "log_every", "eval_every", "ckpt_every"}  # may grow on resume
    diff = sorted(k for k in set(previous) | set(current)
                  if k not in ignore and previous.get(k) != current.get(k))
    if diff:
      raise ValueError(f"Workdir {workdir} holds a run with another config (differs in {diff}); "
                       "use a fresh --workdir.")
  with open(path, "w") as f:
    json.dump(current, f, indent=2, sort_keys=True)


def export_model(workdir: str, params, metadata: dict, tok) -> str:
  """Params-only export that collaboration reads: `workdir/model/` (params + metadata)."""
  path = os.path.join(workdir, "model")
  if os.path.exists(path):
    shutil.rmtree(path)
  ckpt_lib.save_params(path, params, metadata=metadata)
  shutil.copyfile(os.path.join(workdir, "tokenizer.model"), os.path.join(path, "tokenizer.model"))
  return path


def load_model(workdir: str):
  """(params, ModelConfig, Tokenizer) of a pretrained model, tokenizer checked against it."""
  path = os.path.join(workdir, "model")
  params, metadata = ckpt_lib.load_params(path)
  tok = tokenizer_lib.Tokenizer.load(os.path.join(path, "tokenizer.model"))
  tokenizer_lib.check_fingerprint(metadata["tokenizer_fingerprint"], tok, where=path)
  cfg = model_config.ModelConfig(**metadata["model_config"])
  return params, cfg, tok


def train(config: ml_collections.ConfigDict, workdir: str, *,
          stop_after_steps: int | None = None) -> dict[str, Any] | None:
  """Trains config.model on the task, resuming from workdir's checkpoints; returns eval metrics.

  stop_after_steps: leave after this many steps of this run (checkpointed, no evaluation), as a
  preempted job would; the next call resumes. Returns None then.
  """
  os.makedirs(workdir, exist_ok=True)
  check_workdir_config(workdir, config)
  task_cfg = task_config(config)
  assets = assets_lib.prepare_assets(task_cfg, config.assets_dir, config.vocab_size)
  tok = assets.tokenizer
  run_tok_path = os.path.join(workdir, "tokenizer.model")
  if os.path.exists(run_tok_path):  # a run to resume: its checkpoints use this tokenizer
    tokenizer_lib.check_fingerprint(tokenizer_lib.Tokenizer.load(run_tok_path).fingerprint, tok,
                                    where=os.path.join(workdir, "checkpoints"))
  else:
    shutil.copyfile(assets.tokenizer_path, run_tok_path)
  cfg = presets.get_model_config(config.get("preset", config.model), tok.vocab_size)
  world = task_lib.World(task_cfg)
  known_mask = world.known_mask(config.fact_coverage, config.coverage_seed)

  dataset = pipeline.make_lm_dataset(
      assets.source("train"), tok, seq_len=config.seq_len, batch_size=config.batch_size,
      seed=config.seed, known_mask=known_mask, unknown_facts=config.unknown_facts,
      redact_prob=config.redact_prob)
  tx = make_optimizer(config)
  params = transformer.init_params(cfg, jax.random.PRNGKey(config.seed))
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
  print(f"Model {config.model}: {model_config.num_params(cfg):,} params, "
        f"fact coverage {config.fact_coverage}", flush=True)

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
  progress = metrics_lib.Progress(config.num_steps, every=config.log_every)
  start_step = int(state["step"])
  t0, tokens_seen = time.time(), 0
  for step in range(start_step, config.num_steps):
    batch = dataset[step]
    state, metrics = train_step(state, batch)
    tokens_seen += batch["tokens_BxT"].size
    done = step + 1
    if done % config.log_every == 0 or done == config.num_steps:
      metrics = {k: float(v) for k, v in metrics.items()}
      metrics["tokens_per_s"] = tokens_seen / max(time.time() - t0, 1e-9)
      writer.write(done, metrics)
      progress.update(done, metrics)
    stopping = stop_after_steps is not None and done - start_step >= stop_after_steps
    if done % config.ckpt_every == 0 or done == config.num_steps or stopping:
      checkpointer.save(done, state, extra=metadata)
    if stopping and done < config.num_steps:
      checkpointer.close()
      writer.close()
      return None
  checkpointer.wait()
  train_seconds = time.time() - t0
  export_model(workdir, state["params"], metadata, tok)

  records = assets_lib.load_records(assets, config.eval.split, config.eval.num_problems)
  t_eval = time.time()
  results = lm_eval.evaluate_lm(state["params"], cfg, tok, records, known_mask=known_mask,
                                batch_size=config.eval.batch_size)
  results.update(model=config.model, fact_coverage=config.fact_coverage,
                 num_params=model_config.num_params(cfg), steps=config.num_steps,
                 train_seconds_this_run=train_seconds, eval_seconds=time.time() - t_eval,
                 split=config.eval.split)
  writer.write(config.num_steps, {k: v for k, v in results.items()
                                  if isinstance(v, (int, float)) and k.startswith(("final", "step_"))})
  writer.close()
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=1), flush=True)
  checkpointer.close()
  return results
