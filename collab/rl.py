"""Rewards, group advantages, policy-gradient losses and optimizer masks for the gate.

Shapes are time-major, as the rollout's `lax.scan` emits them: S decisions (step boundaries)
per episode, B episodes, A request kinds. Batches hold G consecutive samples per problem:
B = num_problems * G and rows [g*G:(g+1)*G] belong to problem g.

Per decision the rollout records the taken `action_SxB`, its behaviour log-prob `logp_SxB` and
`valid_SxB` (1 where the episode had not ended and a decision was really made). Everything
here is pure `jnp`, so it can sit inside a jitted train step; invalid decisions are masked with
`jnp.where` (not a multiply), so garbage logits on them cannot leak NaN/inf into the loss.

Mean over valid decisions:  mean_v[x] = sum_{s,b} v_sb * x_sb / max(1, sum_{s,b} v_sb).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
Scalar = float | Array


# ------------------------------------------------------------------------------------ rewards


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RewardConfig:
  """Costs subtracted from exact-match correctness (see `episode_reward`).

  Fields may be Python floats or jnp scalars (e.g. a dual-ascent-adapted cost, traced under
  jit: `dataclasses.replace(cfg, cost_per_call=cost)`). The class is a pytree whose fields are
  leaves, so it can also be passed to a jitted function as an ordinary argument.
  """
  cost_per_call: Scalar = 0.0
  cost_per_llm_token: Scalar = 0.0
  cost_per_private_token: Scalar = 0.0


def episode_reward(correct_B: Array, calls_B: Array, llm_tokens_B: Array,
                   private_exposed_B: Array, cfg: RewardConfig = RewardConfig()) -> Array:
  """r_b = correct_b - c_call * calls_b - c_tok * llm_tokens_b - c_priv * private_exposed_b."""
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  return (f32(correct_B) - f32(cfg.cost_per_call) * f32(calls_B)
          - f32(cfg.cost_per_llm_token) * f32(llm_tokens_B)
          - f32(cfg.cost_per_private_token) * f32(private_exposed_B))


def group_advantages(reward_B: Array, group_size: int, eps: float = 1e-6,
                     normalize_std: bool = True) -> Array:
  """GRPO advantages: reward minus its group mean, over the group std when normalize_std.

  For problem g with rewards r_g1..r_gG:  adv_gi = (r_gi - mean_g) / (std_g + eps), where
  std_g is the population std (ddof=0). A group whose rewards are all equal gets exactly 0
  (it carries no signal about which action was better).
  """
  (batch,) = reward_B.shape
  if group_size < 1 or batch % group_size:
    raise ValueError(f"batch {batch} is not a multiple of group_size {group_size}")
  r_NxG = jnp.asarray(reward_B, jnp.float32).reshape(batch // group_size, group_size)
  centred_NxG = r_NxG - r_NxG.mean(axis=1, keepdims=True)
  if normalize_std:
    centred_NxG = centred_NxG / (r_NxG.std(axis=1, keepdims=True) + eps)
  all_equal_Nx1 = jnp.all(r_NxG == r_NxG[:, :1], axis=1, keepdims=True)
  return jnp.where(all_equal_Nx1, 0.0, centred_NxG).reshape(batch)


def step_costs(routed_SxB: Array, llm_tokens_SxB: Array, exposed_SxB: Array,
               valid_SxB: Array, cfg: RewardConfig = RewardConfig()) -> Array:
  """The cost each decision incurred: c_sb = v_sb * (c_call * routed_sb + c_tok * llm_tokens_sb
  + c_priv * exposed_sb). Summed over s it is the cost `episode_reward` subtracts. A cost may
  be a scalar or a per-episode B vector (a price-conditioned gate's per-problem prices)."""
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  cost_SxB = (f32(cfg.cost_per_call) * f32(routed_SxB)
              + f32(cfg.cost_per_llm_token) * f32(llm_tokens_SxB)
              + f32(cfg.cost_per_private_token) * f32(exposed_SxB))
  return jnp.where(valid_SxB.astype(bool), cost_SxB, 0.0)


def causal_advantages(correct_B: Array, cost_SxB: Array, group_size: int) -> Array:
  """Per-decision advantages that charge each decision only the costs at or after it.

  An episode's return seen from decision s is  R_sb = correct_b - sum_{t>=s} c_tb: the costs
  of earlier decisions cannot depend on the action at s, so dropping them keeps the policy
  gradient unbiased and removes their noise (REINFORCE's reward-to-go). Both terms are centred
  within the problem's group of G samples, the cost-to-go per decision index:

    adv_sb = (correct_b - mean_g correct) - (C_sb - mean_g C_s),   C_sb = sum_{t>=s} c_tb.

  With equal costs at every step of the group the cost term is 0; summing costs over s first
  (episode credit) gives `group_advantages(episode_reward)` at every s instead. Returns SxB.
  """
  S, batch = cost_SxB.shape
  if group_size < 1 or batch % group_size:
    raise ValueError(f"batch {batch} is not a multiple of group_size {group_size}")
  cost_to_go_SxB = jnp.cumsum(cost_SxB.astype(jnp.float32)[::-1], axis=0)[::-1]
  c_SxNxG = cost_to_go_SxB.reshape(S, batch // group_size, group_size)
  cost_adv_SxB = (c_SxNxG - c_SxNxG.mean(axis=2, keepdims=True)).reshape(S, batch)
  outcome_adv_B = group_advantages(correct_B, group_size, normalize_std=False)
  return outcome_adv_B[None, :] - cost_adv_SxB


# ------------------------------------------------------------------------------------- losses


def _masked_mean(x_SxB: Array, valid_SxB: Array) -> Array:
  valid_SxB = valid_SxB.astype(bool)
  total = jnp.where(valid_SxB, x_SxB, 0.0).sum()
  return total / jnp.maximum(valid_SxB.sum(), 1).astype(jnp.float32)


def action_logp_and_entropy(logits_SxBxA: Array, action_SxB: Array,
                            valid_SxB: Array | None = None) -> tuple[Array, Array]:
  """logpi(a_sb | s) and H_sb = -sum_a pi(a) log pi(a), from the gate's logits.

  Actions with logit -inf (disallowed, e.g. no budget left) contribute 0 to the entropy.
  With valid_SxB, invalid rows' logits are replaced by 0 first, so whatever they hold
  (NaN, inf) gets exactly zero gradient.
  """
  logits_SxBxA = logits_SxBxA.astype(jnp.float32)
  if valid_SxB is not None:
    logits_SxBxA = jnp.where(valid_SxB.astype(bool)[..., None], logits_SxBxA, 0.0)
  logpi_SxBxA = jax.nn.log_softmax(logits_SxBxA, axis=-1)
  pi_SxBxA = jnp.exp(logpi_SxBxA)
  entropy_SxB = -jnp.sum(pi_SxBxA * jnp.where(pi_SxBxA > 0, logpi_SxBxA, 0.0), axis=-1)
  logp_SxB = jnp.take_along_axis(logpi_SxBxA, action_SxB[..., None].astype(jnp.int32),
                                 axis=-1)[..., 0]
  return logp_SxB, entropy_SxB


def reinforce_loss(logits_SxBxA: Array, action_SxB: Array, adv_B: Array, valid_SxB: Array,
                   entropy_coef: Scalar = 0.0) -> tuple[Array, dict[str, Array]]:
  """REINFORCE with a (group) baseline and an entropy bonus.

  loss = -sum_{s,b} v_sb * logpi(a_sb|s) * adv_b / sum_{s,b} v_sb  -  entropy_coef * mean_v[H]

  The advantage is a constant (stop_gradient): only the gate's logits get gradients. It is an
  episode's (B) or a decision's (SxB, e.g. `causal_advantages`); here and in `ppo_loss`.
  """
  valid_SxB = valid_SxB.astype(bool)
  logp_SxB, entropy_SxB = action_logp_and_entropy(logits_SxBxA, action_SxB, valid_SxB)
  adv_SxB = jnp.broadcast_to(jax.lax.stop_gradient(adv_B).astype(jnp.float32), logp_SxB.shape)
  pg_loss = -_masked_mean(jnp.where(valid_SxB, logp_SxB, 0.0) * adv_SxB, valid_SxB)
  entropy = _masked_mean(entropy_SxB, valid_SxB)
  loss = pg_loss - entropy_coef * entropy
  aux = dict(loss=loss, pg_loss=pg_loss, entropy=entropy, adv_mean=jnp.mean(adv_B),
             adv_abs_mean=jnp.mean(jnp.abs(adv_B)), logp_mean=_masked_mean(logp_SxB, valid_SxB),
             num_valid=valid_SxB.sum().astype(jnp.float32))
  return loss, aux


def ppo_loss(logits_SxBxA: Array, action_SxB: Array, old_logp_SxB: Array, adv_B: Array,
             valid_SxB: Array, clip_eps: Scalar = 0.2,
             entropy_coef: Scalar = 0.0) -> tuple[Array, dict[str, Array]]:
  """PPO clipped surrogate over valid decisions, with an entropy bonus.

  ratio_sb = exp(logpi(a_sb|s) - old_logp_sb)
  obj_sb   = min(ratio_sb * adv_b, clip(ratio_sb, 1 - eps, 1 + eps) * adv_b)
  loss     = -mean_v[obj] - entropy_coef * mean_v[H]

  At ratio = 1 the gradient equals REINFORCE's. Once a ratio has moved past 1 + eps (adv > 0)
  or 1 - eps (adv < 0) the min picks the constant clipped term and that decision's gradient
  is 0. aux: clip_frac = mean_v[|ratio - 1| > eps], approx_kl = mean_v[old_logp - logp]
  (estimates KL(old || new) on samples from old), approx_kl_k3 = mean_v[(ratio - 1) - log ratio]
  (non-negative, lower variance).
  """
  valid_SxB = valid_SxB.astype(bool)
  logp_SxB, entropy_SxB = action_logp_and_entropy(logits_SxBxA, action_SxB, valid_SxB)
  log_ratio_SxB = jnp.where(valid_SxB, logp_SxB - old_logp_SxB.astype(jnp.float32), 0.0)
  ratio_SxB = jnp.exp(log_ratio_SxB)
  adv_SxB = jnp.broadcast_to(jax.lax.stop_gradient(adv_B).astype(jnp.float32), logp_SxB.shape)
  obj_SxB = jnp.minimum(ratio_SxB * adv_SxB,
                        jnp.clip(ratio_SxB, 1.0 - clip_eps, 1.0 + clip_eps) * adv_SxB)
  pg_loss = -_masked_mean(obj_SxB, valid_SxB)
  entropy = _masked_mean(entropy_SxB, valid_SxB)
  loss = pg_loss - entropy_coef * entropy
  clipped_SxB = (jnp.abs(ratio_SxB - 1.0) > clip_eps).astype(jnp.float32)
  aux = dict(loss=loss, pg_loss=pg_loss, entropy=entropy, adv_mean=jnp.mean(adv_B),
             clip_frac=_masked_mean(clipped_SxB, valid_SxB),
             approx_kl=_masked_mean(-log_ratio_SxB, valid_SxB),
             approx_kl_k3=_masked_mean((ratio_SxB - 1.0) - log_ratio_SxB, valid_SxB),
             ratio_mean=_masked_mean(ratio_SxB, valid_SxB),
             num_valid=valid_SxB.sum().astype(jnp.float32))
  return loss, aux


# ------------------------------------------------------------------------- optimizer masks


def _path_str(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def frozen_mask(params: Any, trainable_prefixes: Sequence[str] = ("gate",)) -> Any:
  """Pytree of bools shaped like params: True = trainable.

  A leaf is trainable when its '/'-joined key path equals a prefix or starts with prefix + '/':
  "gate" trains params['gate'][...] (but not params['gateway']); "slm/head" trains only that
  sub-tree of the SLM.
  """
  prefixes = (trainable_prefixes,) if isinstance(trainable_prefixes, str) else trainable_prefixes
  prefixes = tuple(p.strip("/") for p in prefixes)

  def trainable(path, _):
    name = _path_str(path)
    return any(name == p or name.startswith(p + "/") for p in prefixes)

  return jax.tree_util.tree_map_with_path(trainable, params)


def masked_optimizer(tx: optax.GradientTransformation, params: Any,
                     trainable: Sequence[str] = ("gate",)) -> optax.GradientTransformation:
  """`tx` on the trainable sub-trees, zero updates (and no optimizer state) elsewhere.

  By default only the gate trains; the SLM and LLM stay frozen unless a config lists them.
  """
  labels = jax.tree_util.tree_map(lambda t: "train" if t else "freeze",
                                  frozen_mask(params, trainable))
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)


# ------------------------------------------------------------------------------ dual ascent


def dual_update(cost: Scalar, measured: Scalar, target: Scalar, lr: Scalar) -> Array:
  """Projected dual ascent on a cost (Lagrange multiplier) for a budget constraint.

  cost <- max(0, cost + lr * (measured - target)): the price of e.g. a call rises while the
  measured mean calls per problem exceed the target, and falls (never below 0) when under it.
  """
  return jnp.maximum(0.0, jnp.asarray(cost, jnp.float32)
                     + lr * (jnp.asarray(measured, jnp.float32) - target))


@dataclasses.dataclass(frozen=True)
class DualCost:
  """Budget-targeted cost adaptation; the state is the cost itself (a float32 scalar >= 0).

  Usage: cost = dual.init(); each step: cfg = dataclasses.replace(reward_cfg,
  cost_per_call=cost); ...; cost = dual.update(cost, stats['calls']).
  """
  target: float
  lr: float
  init_cost: float = 0.0

  def init(self) -> Array:
    return jnp.asarray(max(0.0, self.init_cost), jnp.float32)

  def update(self, cost: Scalar, measured: Scalar) -> Array:
    return dual_update(cost, measured, self.target, self.lr)


# ------------------------------------------------------------------------------------ stats


def episode_stats(reward_B: Array, correct_B: Array, calls_B: Array, llm_tokens_B: Array,
                  private_exposed_B: Array, valid_SxB: Array | None = None,
                  action_SxB: Array | None = None,
                  action_names: Sequence[str] = ()) -> dict[str, Array]:
  """Batch means of the episode outcomes (scalars, jit-friendly).

  With valid_SxB: 'decisions' = mean decisions per episode. With action_SxB and action_names:
  'frac/<name>' = share of valid decisions that chose that request kind.
  """
  mean = lambda x: jnp.mean(jnp.asarray(x, jnp.float32))
  stats = dict(reward=mean(reward_B), reward_std=jnp.std(jnp.asarray(reward_B, jnp.float32)),
               accuracy=mean(correct_B), calls=mean(calls_B), llm_tokens=mean(llm_tokens_B),
               private_exposed=mean(private_exposed_B))
  if valid_SxB is not None:
    valid_SxB = valid_SxB.astype(bool)
    stats["decisions"] = valid_SxB.sum(axis=0).astype(jnp.float32).mean()
    if action_SxB is not None:
      for a, name in enumerate(action_names):
        stats[f"frac/{name}"] = _masked_mean((action_SxB == a).astype(jnp.float32), valid_SxB)
  return stats
