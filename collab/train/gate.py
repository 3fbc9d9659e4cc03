"""Gate training: policy gradient on collaborative rollouts, pmapped over devices (or, for an
LLM split over a ('data', 'model') mesh, one GSPMD-partitioned jit: collab/parallel.py).

One train step (per device, inside pmap):
  rollout (G samples per problem) -> reward_b = correct - costs -> GRPO advantages within each
  group -> loss on the gate re-run over the stored features (REINFORCE, or PPO-style clipped
  epochs) -> gradients averaged over devices, weighted by valid decisions so the update equals
  the single-device update on the same global batch -> optax update of the gate.
The SLM and LLM are frozen inputs: the loss depends only on the gate parameters, which are all
the optimizer sees (`rl.masked_optimizer` freezes sub-trees when more is put in the state).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from collab import checkpoint as ckpt_lib
from collab import config_check
from collab import gating
from collab import evaluate
from collab import pair as pair_lib
from collab import parallel
from collab import rl
from collab import rollout as rollout_lib
from collab import router as router_lib
from collab.data import episodes as episodes_lib
from collab.data import tokenizer as tokenizer_lib
from collab.train import loop
from collab.train import metrics as metrics_lib
from collab.train import pretrain
from collab.train import selection


def sample_call_prices(config: ml_collections.ConfigDict, step: int) -> np.ndarray:
  """Per-problem call prices of training step `step`, drawn log-uniformly in the config's
  range (a pure function of (seed, step), so a resumed run replays them); one per problem,
  so the G samples of a group share theirs and their advantages compare like with like."""
  low, high = pair_lib.price_range(config)
  u = np.random.default_rng([config.seed, step, 1]).random(config.rl.problems_per_step)
  prices = np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
  return np.repeat(prices, config.rl.group_size).astype(np.float32)


def _pg_loss(gate_params, setup, steps, adv_B, rl_cfg, old_logp_SxB=None):
  S, B = steps.action.shape
  logits_SBxA = gating.gate_logits(gate_params, setup.gate,
                                   steps.hidden.reshape(S * B, -1),
                                   steps.scalars.reshape(S * B, -1))
  logits_SxBxA = jnp.where(steps.mask, logits_SBxA.reshape(S, B, -1), -jnp.inf)
  # The sampled policy (with its exploration floor) is the one whose gradient is taken.
  logits_SxBxA = gating.explore_logits(logits_SxBxA, steps.mask, setup.gate.explore)
  valid_SxB = steps.valid.astype(jnp.float32)
  if old_logp_SxB is None:
    return rl.reinforce_loss(logits_SxBxA, steps.action, adv_B, valid_SxB,
                             entropy_coef=rl_cfg.entropy_coef)
  return rl.ppo_loss(logits_SxBxA, steps.action, old_logp_SxB, adv_B, valid_SxB,
                     clip_eps=rl_cfg.clip_eps, entropy_coef=rl_cfg.entropy_coef)


def budget_targets(config: ml_collections.ConfigDict) -> dict[str, dict[str, float]]:
  """{'per_call' | 'per_llm_token': {'target', 'lr'}} for the budgets config.budget sets (> 0).

  A target replaces the fixed price by a Lagrange multiplier adapted each step:
  price <- max(0, price + lr * (measured mean per problem - target)), starting at the config's
  price. The gate then learns to spend about `target` calls (or LLM tokens) per problem.
  """
  b = config.get("budget_target")
  out = {}
  if b is not None and b.get("mode", "dual") == "mixture":  # the prices stay fixed
    return out
  if b is not None and b.calls > 0:
    out["per_call"] = {"target": float(b.calls), "lr": float(b.calls_lr)}
  if b is not None and b.llm_tokens > 0:
    out["per_llm_token"] = {"target": float(b.llm_tokens), "lr": float(b.llm_tokens_lr)}
  return out


def mixture_targets(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{'calls' | 'llm_tokens': target per problem} of a budget target in 'mixture' mode.

  Why a mixture: when the frontier of accuracy against calls is not concave between SLM alone
  and the gate, no linear price makes a spend in between optimal; dual ascent then flips
  between never asking and asking at full rate. A constrained problem's optimum is in general
  randomized: the gate trains at its fixed price, and afterwards each problem is the gate's
  with probability p = min(1, target / the gate's spend on training problems), SLM alone
  otherwise (`calibrate_mixture`), which puts the pair on the line from SLM alone to the gate.
  """
  b = config.get("budget_target")
  if b is None or b.get("mode", "dual") != "mixture":
    return {}
  return {k: float(b[k]) for k in ("calls", "llm_tokens") if b[k] > 0}


def calibrate_mixture(config: ml_collections.ConfigDict, pair: pair_lib.Pair, setup,
                      gate_params,
                      episodes: dict[str, np.ndarray]) -> dict[str, Any]:
  """The mixture probability that meets every target of `mixture_targets` on average: the
  greedy gate's spend measured on training problems (never the evaluation split)."""
  n = min(len(episodes["row_id_B"]), config.eval.num_problems)
  per = evaluate.run_policy(pair, setup, gate_params, {k: v[:n] for k, v in episodes.items()},
                            rollout_lib.Policy(kind="gate", greedy=True),
                            batch_size=config.eval.batch_size, rng_seed=config.seed)
  spent = {k: float(np.mean(per[k])) for k in mixture_targets(config)}
  p = min([1.0] + [t / spent[k] for k, t in mixture_targets(config).items() if spent[k] > 0])
  return {"mix_prob": p, "targets": mixture_targets(config), "gate_spend": spent,
          "gate_accuracy": float(np.mean(per["correct"])), "problems": n,
          "split": config.rl.split}


def make_train_step(setup: rollout_lib.Setup, tx: optax.GradientTransformation,
                    rl_cfg: ml_collections.ConfigDict, reward_cfg: rl.RewardConfig,
                    devices=None, budget: dict[str, dict[str, float]] | None = None,
                    mesh: parallel.ModelMesh | None = None):
  """The pmapped step: (state, slm, llm, batch, rng) -> (state, metrics), all replicated but
  the batch. Same rng on every device (per-row keys make sampling split-invariant).
  `budget` (from `budget_targets`) turns the call / LLM-token prices into dual variables.
  With `mesh`, the same step runs model-sharded (parallel.ModelMesh.train_step)."""
  budget = budget or {}

  def grad_step(state, loss_fn, num_valid):
    (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    # Each device's loss is a mean over its own valid decisions; weighting by their count
    # makes the averaged gradient that of the mean over the global batch.
    grads = jax.tree.map(lambda g: parallel.global_mean(g, num_valid), grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    # NaN/inf on any device: every device keeps its params (the loop skips or stops).
    finite = jax.lax.pmin(jnp.isfinite(aux["loss"]).astype(jnp.int32), parallel.AXIS) > 0
    finite &= jnp.isfinite(optax.tree.norm(grads))  # averaged: the same on every device
    params, opt_state = pretrain.keep_if_finite(finite, (params, opt_state),
                                                (state["params"], state["opt_state"]))
    return dict(state, params=params, opt_state=opt_state), dict(aux, finite=finite)

  sampled = rollout_lib.Policy(kind="gate").args(setup.rollout.num_steps, setup.gate.actions)

  def train_step(state, slm_params, llm_params, batch, rng):
    steps, final = rollout_lib.rollout(slm_params, llm_params, state["params"]["gate"], batch,
                                       rng, sampled, setup=setup)
    # The call and LLM-token prices live in the state: budget targets adapt them (dual ascent).
    # A cost warm-up ramps every price in from 0: high prices from the first step collapse an
    # untrained gate to never asking (random asks rarely pay before it learns where to ask).
    warmup = rl_cfg.get("cost_warmup_steps", 0)
    ramp = (jnp.minimum(1.0, (state["step"] + 1).astype(jnp.float32) / warmup) if warmup
            else 1.0)
    # A price-conditioned gate: each row is charged the price its gate features were told.
    call_price = batch.get("call_price_B", state["costs"]["per_call"])
    step_reward_cfg = dataclasses.replace(
        reward_cfg, cost_per_call=ramp * call_price,
        cost_per_llm_token=ramp * state["costs"]["per_llm_token"],
        cost_per_private_token=ramp * reward_cfg.cost_per_private_token)
    reward_B = rl.episode_reward(final.correct_B.astype(jnp.float32), final.calls_B,
                                 final.llm_tokens_B, final.exposed_B, step_reward_cfg)
    if rl_cfg.get("credit", "episode") == "causal":  # each decision pays its costs-to-go
      cost_SxB = rl.step_costs(steps.routed, steps.llm_tokens, steps.exposed, steps.valid,
                               step_reward_cfg)
      adv_B = rl.causal_advantages(final.correct_B, cost_SxB, rl_cfg.group_size)  # SxB
    else:
      adv_B = rl.group_advantages(reward_B, rl_cfg.group_size,
                                  normalize_std=rl_cfg.get("normalize_std", False))
    num_valid = steps.valid.sum().astype(jnp.float32)
    steps = jax.lax.stop_gradient(steps)
    finite = jnp.array(True)
    if rl_cfg.ppo_epochs:
      for _ in range(rl_cfg.ppo_epochs):  # re-runs only the gate on the stored features
        loss_fn = lambda p: _pg_loss(p["gate"], setup, steps, adv_B, rl_cfg, steps.logp)
        state, aux = grad_step(state, loss_fn, num_valid)
        finite &= aux["finite"]
    else:
      loss_fn = lambda p: _pg_loss(p["gate"], setup, steps, adv_B, rl_cfg)
      state, aux = grad_step(state, loss_fn, num_valid)
      finite = aux["finite"]
    stats = rl.episode_stats(reward_B, final.correct_B.astype(jnp.float32), final.calls_B,
                             final.llm_tokens_B, final.exposed_B, steps.valid, steps.action,
                             setup.gate.actions)
    stats.update({f"loss/{k}": v for k, v in aux.items() if k != "finite"})
    stats["finite"] = finite
    stats["overflow"] = final.overflow_B.mean()
    metrics = jax.tree.map(lambda x: jax.lax.pmean(jnp.asarray(x, jnp.float32),
                                                   parallel.AXIS), stats)
    # Dual ascent on the global (pmeaned) batch means, so every device holds the same prices.
    costs = dict(state["costs"])
    for key, measured in (("per_call", "calls"), ("per_llm_token", "llm_tokens")):
      target = budget.get(key)
      if target is not None:
        costs[key] = rl.dual_update(costs[key], metrics[measured], target["target"],
                                    target["lr"])
    metrics.update({f"cost/{k}": v for k, v in costs.items()})
    return dict(state, step=state["step"] + 1, costs=costs), metrics

  if mesh:
    return mesh.train_step(train_step)
  return parallel.pmap(train_step, devices=devices, in_axes=(0, 0, 0, 0, None),
                       donate_argnums=(0,))


def train_llms(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The LLMs a gate trains with: config.llm, then config.rl.extra_llms, taken in turn one
  training step each (a gate meant to run with LLMs it was not trained with)."""
  return (config.llm,) + tuple(config.rl.get("extra_llms", ()))


def _extra_llms_metadata(config) -> dict[str, Any]:
  llms = list(train_llms(config))
  return {"train_llms": llms} if len(llms) > 1 else {}


def _training_setup(config, pair: pair_lib.Pair, mesh) -> rollout_lib.Setup:
  """The pair's setup with the training rollout's LLM capacity."""
  setup = pair_lib.make_setup(config, pair)
  return dataclasses.replace(setup, rollout=dataclasses.replace(
      setup.rollout, llm_capacity=config.rl.llm_capacity,
      # The model-sharded step runs under vmap, where a switch runs every branch.
      kv_buckets=1 if mesh else setup.rollout.kv_buckets))


def init_state(config, pair: pair_lib.Pair, tx):
  """The train state at step 0. With config.rl.init='router' the gate starts as the supervised
  router of config.eval.router (fitted on the gate's training split, collab/router.py): it
  then asks where the SLM's draft is likely wrong, and RL refines that rule."""
  gate_cfg = gating.GateConfig(**config.gate.to_dict())
  if config.rl.get("init", "scratch") == "router":
    gate, _ = router_lib.fit(config, pair, pair_lib.make_setup(config, pair))
  else:
    gate = gating.init_gate(gate_cfg, pair.slm_cfg.d_model, jax.random.PRNGKey(config.seed))
  params = {"gate": gate}
  costs = {"per_call": jnp.asarray(config.costs.per_call, jnp.float32),
           "per_llm_token": jnp.asarray(config.costs.per_llm_token, jnp.float32)}
  return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
          "costs": costs}


def make_optimizer(config) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(config.rl.grad_clip),
                     optax.adam(config.rl.learning_rate))


def train(config: ml_collections.ConfigDict, workdir: str, *,
          workdir_mode: str = "refuse") -> dict[str, Any]:
  """Trains the gate of config.slm x config.llm; resumes from workdir/checkpoints.

  workdir_mode, NaN/inf (config.on_nonfinite) and SIGTERM: as in `pretrain.train`."""
  config_check.check_gate_training(config, workdir)  # before anything is written
  config = pair_lib.resolve_assets_dir(config, workdir)  # imported pairs: WORKDIR/assets
  primary = jax.process_index() == 0  # with several processes, the one that writes files
  os.makedirs(workdir, exist_ok=True)
  if primary:
    pretrain.check_workdir_config(workdir, config, workdir_mode)
  llm_configs = [pair_lib.with_llm(config, llm) for llm in train_llms(config)]
  for llm_config in llm_configs:
    pretrain.ensure_pretrained(llm_config)
  pairs = [pair_lib.load_pair(c) for c in llm_configs]
  pair = pairs[0]  # config.llm's: checkpoint selection and calibration use it
  records, select_records = selection.split_held_out(config, pair_lib.load_records(
      config, pair, config.rl.split, config.rl.num_train_problems))
  held_out = len(select_records)
  # Several LLMs: the same problems, each pair's episodes (an LLM of another tokenizer has
  # its own prompts).
  all_episodes = [pair_lib.make_episodes(c, p, records) for c, p in zip(llm_configs, pairs)]
  episodes = all_episodes[0]
  # Several processes: each feeds its local devices its own slice of the global batch.
  # Model-sharded (config.mesh.model > 1): one program over the mesh, batch split over 'data'.
  mesh = parallel.model_mesh(config)
  setups = [_training_setup(c, p, mesh) for c, p in zip(llm_configs, pairs)]
  setup = setups[0]
  tx = make_optimizer(config)
  state = init_state(config, pair, tx)
  n_dev = mesh.data if mesh else parallel.num_devices()
  n_global = mesh.data if mesh else jax.device_count()
  rows = config.rl.problems_per_step * config.rl.group_size
  if (rows // n_global) % config.rl.group_size or rows % n_global:
    raise ValueError(f"{rows} rollouts per step must split over {n_global} devices in whole "
                     f"groups of {config.rl.group_size}")
  local_rows = slice(jax.process_index() * rows // jax.process_count(),
                     (jax.process_index() + 1) * rows // jax.process_count())

  metadata = {"tokenizer_fingerprint": pair.tokenizer.fingerprint, "slm": config.slm,
              "llm": config.llm, **_extra_llms_metadata(config)}
  # Selection reads every checkpoint of the second half: keep them all.
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                       max_to_keep=None if held_out else config.max_to_keep)
  if checkpointer.latest_step() is not None:
    state, extra = checkpointer.restore(target=state)
    tokenizer_lib.check_fingerprint(extra["tokenizer_fingerprint"], pair.tokenizer,
                                    where=checkpointer.directory)
    print(f"Resumed gate training at step {int(state['step'])}", flush=True)

  # One compiled step per LLM; they share the train state.
  train_steps = [make_train_step(s, tx, config.rl, pair_lib.reward_config(config),
                                 budget=budget_targets(config), mesh=mesh) for s in setups]
  if mesh:
    slm_r, llm_rs = mesh.replicate(pair.slm_params, True), [mesh.shard_model(pair.llm_params,
                                                                             True)]
    state_r = mesh.replicate(state, True)
  else:
    slm_r = parallel.replicate(pair.slm_params)
    llm_rs = [parallel.replicate(p.llm_params) for p in pairs]
    state_r = parallel.replicate(state)
  writer = metrics_lib.MetricsWriter(workdir, enabled=primary)
  base_rng = jax.random.PRNGKey(config.seed + 1)
  prices = pair_lib.price_range(config)  # a price-conditioned gate: per-problem call prices
  holder = {"state": state_r}

  def step_fn(step):
    # The problems of step k are a pure function of (seed, k): resuming replays them. Row
    # ids stay global (select numbers the whole batch), so samples do not depend on which
    # process or device a row lands on.
    chosen = np.random.default_rng([config.seed, step]).choice(
        len(records), config.rl.problems_per_step, replace=False)
    which = step % len(pairs)  # several LLMs: step k trains with the (k mod n)-th
    batch = episodes_lib.select(all_episodes[which], chosen, config.rl.group_size)
    if prices is not None:
      batch["call_price_B"] = sample_call_prices(config, step)
    batch = {k: v[local_rows] for k, v in batch.items()}
    batch = mesh.shard_batch(batch, True) if mesh else parallel.shard(batch, n_dev)
    holder["state"], metrics = train_steps[which](holder["state"], slm_r, llm_rs[which], batch,
                                                  jax.random.fold_in(base_rng, step))
    return metrics

  try:
    outcome = loop.run(
        loop.Cadence(config.rl.num_steps, config.log_every, config.ckpt_every,
                     loop.nonfinite_policy(config)),
        int(state["step"]), step_fn,
        save=lambda done: checkpointer.save(done, _host_state(holder["state"]), extra=metadata),
        checkpointer=checkpointer, writer=writer, workdir=workdir,
        # Equal on every device (pmean): this process's first copy.
        to_host=lambda x: float(_local_copy(x)),
        # Several LLMs: which one the logged step (done - 1) trained with.
        extra_metrics=lambda done, seconds: {"seconds": seconds, **(
            {"train_llm": (done - 1) % len(pairs)} if len(pairs) > 1 else {})},
        progress_keys=("reward", "accuracy", "calls") + tuple(
            f"cost/{c}" for c in budget_targets(config)), show_progress=primary)
  finally:  # also on errors: pending saves finish, files close
    checkpointer.close()
    writer.close()
  state_r = holder["state"]
  state = _host_state(state_r)
  gate_params = state["params"]["gate"]
  if held_out:
    if primary:
      save_gate(workdir, gate_params, config, pair, name="gate_last")
    gate_params = selection.select_checkpoint(
        config, pair, pair_lib.make_setup(config, pair), state, workdir,
        pair_lib.make_episodes(config, pair, select_records), primary)
  if mixture_targets(config):
    mix = calibrate_mixture(config, pair, setup, gate_params, episodes)
    print(f"Mixture: the gate spends {mix['gate_spend']} per problem on {mix['problems']} "
          f"training problems; each problem uses it with probability {mix['mix_prob']:.3f}",
          flush=True)
    gate_params = dict(gate_params, **{gating.MIX_KEY: np.float32(mix["mix_prob"])})
    if primary:
      with open(os.path.join(workdir, "mixture.json"), "w") as f:
        json.dump(mix, f, indent=1)
  if primary:
    save_gate(workdir, gate_params, config, pair)
  return {"gate_params": gate_params, "train_seconds": outcome.seconds}


def _local_copy(x):
  """This process's first copy of a replicated pmap output (with several processes, x[0]
  would name a device of process 0)."""
  return x.addressable_data(0)[0]  # the shard keeps the device axis (size 1)


def _host_state(state_r):
  """One copy of the replicated train state, for a checkpoint. With several processes it goes
  to the host: orbax then writes it once, from process 0, instead of once per process."""
  state = jax.tree.map(_local_copy, state_r)
  return jax.device_get(state) if jax.process_count() > 1 else state


def save_gate(workdir: str, gate_params, config, pair: pair_lib.Pair,
              name: str = "gate") -> str:
  """Params-only gate export beside the training checkpoints: workdir/<name>/ (gate/: the
  gate that is used; gate_last/: the last step's, when another checkpoint was selected)."""
  path = os.path.join(workdir, name)
  # On the host: params saved from one device layout must load under any other.
  ckpt_lib.save_params(path, jax.device_get(gate_params), metadata={
      "tokenizer_fingerprint": pair.tokenizer.fingerprint, "slm": config.slm,
      "llm": config.llm, **_extra_llms_metadata(config),
      "config": json.loads(config.to_json_best_effort())}, overwrite=True)
  return path

