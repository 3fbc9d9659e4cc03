"""Private spans (<priv>...</priv>) in token arrays: which tokens are private, and the redacted
form of a step, where each span becomes one <redacted> token. Everything jit-compatible."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collab.rollout_types import Specials


def private_mask(tokens_BxT, sp: Specials, open_B=None):
  """True on tokens inside <priv>...</priv> spans, markers included.

  A span runs from a <priv> to the next </priv> (spans do not nest); a </priv> outside a span
  is not private and opens nothing, whatever a model writes. open_B: rows whose span was
  left open before these tokens (a span that crosses a step boundary)."""
  T = tokens_BxT.shape[-1]
  pos_T, none = jnp.arange(T), -2
  last_open_BxT = jax.lax.cummax(jnp.where(tokens_BxT == sp.priv_open, pos_T, none), axis=1)
  if open_B is not None:  # an open span counts as opened at position -1
    last_open_BxT = jnp.maximum(last_open_BxT, jnp.where(open_B, -1, none)[:, None])
  last_close_BxT = jax.lax.cummax(jnp.where(tokens_BxT == sp.priv_close, pos_T, none), axis=1)
  close_before_BxT = jnp.pad(last_close_BxT[:, :-1], ((0, 0), (1, 0)), constant_values=none)
  return last_open_BxT > close_before_BxT


def span_open(tokens_BxL, len_B, sp: Specials):
  """Rows whose first len_B tokens end inside a private span (the last marker is a <priv>)."""
  pos_L = jnp.arange(tokens_BxL.shape[1])
  valid_BxL = pos_L < len_B[:, None]
  last = lambda tok: jnp.max(jnp.where(valid_BxL & (tokens_BxL == tok), pos_L, -1), axis=-1)
  return last(sp.priv_open) > last(sp.priv_close)


def redact(tokens_BxK, len_B, sp: Specials, open_B=None):
  """Redacted form of a step: each private span becomes one <redacted>; returns (tokens, len).

  open_B: rows whose context ends inside a span; the span's rest in this step is dropped (its
  <redacted> was written with the step that opened it)."""
  K = tokens_BxK.shape[1]
  valid_BxK = jnp.arange(K) < len_B[:, None]
  private_BxK = private_mask(tokens_BxK, sp, open_B)
  is_open_BxK = tokens_BxK == sp.priv_open
  keep_BxK = valid_BxK & (~private_BxK | is_open_BxK)
  new_BxK = jnp.where(is_open_BxK, sp.redacted, tokens_BxK)
  dest_BxK = jnp.where(keep_BxK, jnp.cumsum(keep_BxK, axis=-1) - 1, K)
  rows_BxK = jnp.broadcast_to(jnp.arange(tokens_BxK.shape[0])[:, None], dest_BxK.shape)
  out_BxK = jnp.full_like(tokens_BxK, sp.pad).at[rows_BxK, dest_BxK].set(new_BxK, mode="drop")
  return out_BxK, keep_BxK.sum(-1)
