"""The gating head: features of the SLM at a step boundary -> logits over request kinds.

Features (built by the rollout, stored in the trajectory so PPO epochs re-run only this head):
  hidden_BxD      the SLM's final-norm hidden state at the last context token (a step separator)
  draft stats     mean and min token log-prob of the step the SLM drafted for itself
  step_B / S      where in the solution we are
  calls_B / M     calls used out of the budget M, and whether any budget is left
The SLM itself stays frozen: the hidden state enters as data, not as a differentiable input.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_SCALAR_FEATURES = 5  # draft mean logp, draft min logp, step fraction, calls fraction, budget left


@dataclasses.dataclass(frozen=True)
class GateConfig:
  actions: tuple[str, ...] = ("self", "ask", "ask_redacted")
  hidden_dim: int = 64
  use_hidden: bool = True        # read the SLM's hidden state
  use_draft: bool = True         # read the confidence of the SLM's own draft

  @property
  def num_actions(self) -> int:
    return len(self.actions)


def _surprise(logp_B):
  """log(-logp): spreads the confident end, where the useful thresholds sit (-logp of 1e-3
  vs 5e-2 is the difference between a sure draft and a doubtful one), scaled to ~[-3, 0.5]."""
  return jnp.log(jnp.clip(-logp_B, 1e-6, 10.0)) / 5.0


def scalar_features(draft_mean_logp_B, draft_min_logp_B, step, num_steps, calls_B, budget):
  """The non-hidden features, each of order 1: shape Bx5."""
  step_B = jnp.broadcast_to(jnp.asarray(step, jnp.float32) / num_steps, calls_B.shape)
  calls_frac_B = calls_B.astype(jnp.float32) / max(budget, 1)
  left_B = (calls_B < budget).astype(jnp.float32)
  return jnp.stack([_surprise(draft_mean_logp_B), _surprise(draft_min_logp_B),
                    step_B, calls_frac_B, left_B], axis=-1)


class GateHead(nn.Module):
  cfg: GateConfig

  @nn.compact
  def __call__(self, hidden_BxD, scalars_BxF):
    cfg = self.cfg
    parts = [scalars_BxF if cfg.use_draft else scalars_BxF[:, 2:]]
    if cfg.use_hidden:
      parts.append(nn.LayerNorm(name="hidden_norm")(hidden_BxD))
    x_BxF = jnp.concatenate(parts, axis=-1)
    x_BxH = nn.gelu(nn.Dense(cfg.hidden_dim, name="in")(x_BxF))
    x_BxH = nn.gelu(nn.Dense(cfg.hidden_dim, name="mid")(x_BxH))
    # Zero-initialised output: the untrained gate is uniform over request kinds.
    return nn.Dense(cfg.num_actions, kernel_init=nn.initializers.zeros, name="out")(x_BxH)


def init_gate(cfg: GateConfig, d_model: int, rng: jax.Array):
  hidden = jnp.zeros((1, d_model), jnp.float32)
  scalars = jnp.zeros((1, NUM_SCALAR_FEATURES), jnp.float32)
  return GateHead(cfg).init(rng, hidden, scalars)["params"]


def gate_logits(params, cfg: GateConfig, hidden_BxD, scalars_BxF):
  """Logits over request kinds, BxA."""
  return GateHead(cfg).apply({"params": params}, hidden_BxD, scalars_BxF)
