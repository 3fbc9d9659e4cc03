"""The gating head: features of the SLM at a step boundary -> logits over request kinds.

Features (built by the rollout, stored in the trajectory so PPO epochs re-run only this head):
  hidden_BxD      the SLM's final-norm hidden state at the last context token (a step separator)
  draft stats     mean and min token log-prob of the step the SLM drafted for itself
  step_B / S      where in the solution we are
  calls_B / M     calls used out of the budget M, and whether any budget is left
  call price      optional (`price_input`): the price of a call this episode is charged, so
                  one gate trained over a range of prices serves any price on the curve
The SLM itself stays frozen: the hidden state enters as data, not as a differentiable input.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# draft mean logp, draft min logp, step fraction, calls fraction, budget left, call price
NUM_SCALAR_FEATURES = 6

# Optional leaf of an exported gate's params, not trained: the probability that a problem is
# routed by the gate at all (otherwise the SLM writes every step). A budget target in
# 'mixture' mode sets it (collab/train/gate.py); it travels with the params (checkpoints,
# exports), so every evaluation path runs the same mixed policy.
MIX_KEY = "mix_prob"


@dataclasses.dataclass(frozen=True)
class GateConfig:
  actions: tuple[str, ...] = ("self", "ask", "ask_redacted")
  hidden_dim: int = 64
  use_hidden: bool = True        # read the SLM's hidden state
  use_draft: bool = True         # read the confidence of the SLM's own draft
  price_input: bool = False      # read the episode's call price (a price-conditioned gate)
  # A price-conditioned gate whose call-kind logits also carry -scale * price (scale learned,
  # starting at price_scale_init): a call costs the episode `price`, so the best rule asks
  # where its gain beats the price. Built in, the gate cannot settle on a price-blind rule,
  # which a plain price input allows (docs/design.md, "Training the gate").
  price_offset: bool = False
  price_scale_init: float = 2.0
  # Call-kind logits also carry scale * (surprise of the draft's least likely token - centre),
  # both learned, starting as the confidence-threshold baseline at min log-prob
  # draft_center_logp (BiLD-style): RL then refines a strong rule instead of finding it.
  draft_prior: bool = False
  draft_scale_init: float = 5.0
  draft_center_logp: float = -0.05
  # Sampling (training) mixes this much of the uniform policy over allowed kinds into the
  # gate's: every kind keeps probability >= explore / A, so a gate that always asks at a step
  # still tries not asking there and learns which asks it can drop. Greedy decisions ignore it.
  explore: float = 0.0
  # The SLM's hidden states the gate reads: 1, its last layer's (final norm); k, also the
  # residual streams of the k - 1 layers below it (ModelConfig.feature_layers), k * d_model.
  feature_layers: int = 1
  # Also the mean of the SLM's hidden states at the tokens of its draft (a look-up line's
  # entity and price tokens among them), read after the draft as its confidence is: what the
  # SLM holds about the line it wrote, not only the state before it. Doubles the width.
  draft_states: bool = False

  def __post_init__(self):
    known = ("self", "ask", "ask_redacted")
    if (not self.actions or self.actions[0] != "self" or len(set(self.actions)) < len(
        self.actions) or any(a not in known for a in self.actions)):
      raise ValueError(f"Gate actions must start with 'self' and list each of {known} at most "
                       f"once, got {self.actions}")
    if self.draft_prior and not self.use_draft:
      raise ValueError("draft_prior reads the draft's confidence: it needs use_draft=True")
    if self.draft_states and not self.use_hidden:
      raise ValueError("draft_states are hidden states: they need use_hidden=True")

  @property
  def num_actions(self) -> int:
    return len(self.actions)

  def hidden_width(self, d_model: int) -> int:
    """The width of the hidden features the gate reads, for an SLM of width d_model."""
    return d_model * self.feature_layers * (2 if self.draft_states else 1)


def _surprise(logp_B, xp=jnp):
  """log(-logp): spreads the confident end, where the useful thresholds sit (-logp of 1e-3
  vs 5e-2 is the difference between a sure draft and a doubtful one), scaled to ~[-3, 0.5].
  xp=np gives a concrete value (a parameter's initial value inside a traced apply)."""
  return xp.log(xp.clip(-logp_B, 1e-6, 10.0)) / 5.0


def price_feature(call_price_B):
  """log1p(price / 0.02) / 3: 0 at price 0, ~0.23 at 0.02, ~0.6 at 0.1, ~1.1 at 0.5."""
  return jnp.log1p(jnp.maximum(call_price_B, 0.0) / 0.02) / 3.0


def price_from_feature(feature_B):
  """Inverse of price_feature."""
  return 0.02 * jnp.expm1(3.0 * feature_B)


def scalar_features(draft_mean_logp_B, draft_min_logp_B, step, num_steps, calls_B, budget,
                    call_price_B=None):
  """The non-hidden features, each of order 1: shape Bx6 (the price column is 0 when the
  episode has no price)."""
  step_B = jnp.broadcast_to(jnp.asarray(step, jnp.float32) / num_steps, calls_B.shape)
  calls_frac_B = calls_B.astype(jnp.float32) / max(budget, 1)
  left_B = (calls_B < budget).astype(jnp.float32)
  price_B = (jnp.zeros(calls_B.shape, jnp.float32) if call_price_B is None
             else price_feature(call_price_B.astype(jnp.float32)))
  return jnp.stack([_surprise(draft_mean_logp_B), _surprise(draft_min_logp_B),
                    step_B, calls_frac_B, left_B, price_B], axis=-1)


def feature_columns(cfg: GateConfig) -> list[int]:
  """The scalar features the head reads (gates saved before the price column read 0-4)."""
  return ([0, 1] if cfg.use_draft else []) + [2, 3, 4] + ([5] if cfg.price_input else [])


class GateHead(nn.Module):
  cfg: GateConfig

  @nn.compact
  def __call__(self, hidden_BxD, scalars_BxF):
    cfg = self.cfg
    parts = [scalars_BxF[:, np.asarray(feature_columns(cfg))]]
    if cfg.use_hidden:
      parts.append(nn.LayerNorm(name="hidden_norm")(hidden_BxD))
    x_BxF = jnp.concatenate(parts, axis=-1)
    x_BxH = nn.gelu(nn.Dense(cfg.hidden_dim, name="in")(x_BxF))
    x_BxH = nn.gelu(nn.Dense(cfg.hidden_dim, name="mid")(x_BxH))
    # Zero-initialised output: the untrained gate is uniform over request kinds (before the
    # optional price and draft terms below).
    logits_BxA = nn.Dense(cfg.num_actions, kernel_init=nn.initializers.zeros, name="out")(x_BxH)
    calls_A = jnp.asarray([a != "self" for a in cfg.actions], jnp.float32)  # kinds that call
    if cfg.price_offset:
      log_scale = self.param("price_log_scale",
                             nn.initializers.constant(np.log(cfg.price_scale_init)), ())
      price_B = price_from_feature(scalars_BxF[:, 5])
      logits_BxA = logits_BxA - jnp.exp(log_scale) * price_B[:, None] * calls_A
    if cfg.draft_prior:
      scale = self.param("draft_scale", nn.initializers.constant(cfg.draft_scale_init), ())
      center = self.param("draft_center", nn.initializers.constant(
          _surprise(cfg.draft_center_logp, np)), ())
      logits_BxA = logits_BxA + scale * (scalars_BxF[:, 1] - center)[:, None] * calls_A
    return logits_BxA


def init_gate(cfg: GateConfig, d_model: int, rng: jax.Array):
  hidden = jnp.zeros((1, cfg.hidden_width(d_model)), jnp.float32)
  scalars = jnp.zeros((1, NUM_SCALAR_FEATURES), jnp.float32)
  return GateHead(cfg).init(rng, hidden, scalars)["params"]


def explore_logits(logits_BxA, mask_BxA, explore: float):
  """Log-probs of (1 - explore) * softmax(logits) + explore * uniform(allowed kinds): the
  policy that is sampled and trained (its log-probs are its logits); -inf stays -inf."""
  if not explore:
    return logits_BxA
  logp_BxA = jax.nn.log_softmax(logits_BxA, axis=-1)
  uniform_B = 1.0 / jnp.maximum(mask_BxA.sum(-1, keepdims=True), 1)
  mixed_BxA = jnp.logaddexp(jnp.log1p(-explore) + logp_BxA, jnp.log(explore * uniform_B))
  return jnp.where(mask_BxA, mixed_BxA, -jnp.inf)


def gate_logits(params, cfg: GateConfig, hidden_BxD, scalars_BxF):
  """Logits over request kinds, BxA."""
  params = {k: v for k, v in params.items() if k != MIX_KEY}
  return GateHead(cfg).apply({"params": params}, hidden_BxD, scalars_BxF)
