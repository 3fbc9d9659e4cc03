"""LLM calls inside the rollout, routed like tokens to a mixture-of-experts expert.

Asking rows (at most C per step and device) are gathered, the LLM reads into each row's own KV
cache what was written since that row's last call (`catch_up`), writes the step (`llm_call`),
and the SLM absorbs it; everything is scattered back. A call runs on the smallest compiled
row count (`llm_call_sizes`) that holds the asking rows, and `no_call` runs when none asks, so
LLM compute scales with the calls made, not with the batch.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from collab import privacy
from collab import rollout_types
from collab.models import decode
from collab.models import transformer


def gather(tree, idx_C):
  return jax.tree.map(lambda x: x[idx_C], tree)


def scatter(tree, part, idx_C):
  """tree[idx_C] = part; indices == batch size (empty slots) are dropped."""
  return jax.tree.map(lambda x, p: x.at[idx_C].set(p, mode="drop"), tree, part)


def at(x_BxTx_, index_B):
  """x[b, index[b]] for each row."""
  return jnp.take_along_axis(x_BxTx_, index_B[:, None, None], axis=1)[:, 0]


# Tokens per catch-up chunk: the LLM reads what was written since a row's last call in chunks
# this wide (at least one step). Narrower chunks pad less (a row reads whole chunks); wider ones
# run fewer, larger matmuls.
CATCHUP_TOKENS = 32


def catchup_width(step_tokens: int) -> int:
  return max(step_tokens, CATCHUP_TOKENS)


def llm_call_sizes(capacity: int, num_sizes: int) -> tuple[int, ...]:
  """Row counts an LLM call is compiled for: capacity, capacity/2, ... (at least 1)."""
  return tuple(sorted({max(1, capacity >> i) for i in range(num_sizes)}))


def smallest_size(sizes, n):
  """Index of the smallest of `sizes` (ascending) that holds n rows."""
  return jnp.sum(jnp.asarray(sizes) < n)


def catch_up(llm, *, setup: rollout_types.Setup, llm_params, ctx, routed_B, red_B, sizes):
  """The LLM reads, into routed rows' caches, what was written since each row's last call.

  llm: the per-row LLM state {cache: the row's LLM KV cache, synced_B: how many tokens of its
  stream it holds, red_B: which stream (the redacted one or the full one), logits_BxV /
  hidden_BxD: outputs after its last token}. A row asking for the other stream than it holds
  starts over. Chunk j (W tokens from position synced + j * W) runs only on the rows that still
  have tokens to read: rows sorted by how much they read, on the smallest compiled size that
  holds the readers, so a long read does not make every routed row run every chunk.
  """
  cfg, sp = setup.rollout, setup.specials
  B, L = ctx["ctx"].shape
  W = catchup_width(cfg.step_tokens)
  C = sizes[-1]
  src_len_B = jnp.where(red_B, ctx["red_len"], ctx["ctx_len"])
  synced_B = jnp.where(llm["red_B"] == red_B, llm["synced_B"], 0)
  pending_B = jnp.where(routed_B, src_len_B - synced_B, 0)
  pending_C, order_C = jax.lax.top_k(pending_B, C)  # the longest reads first

  def chunk_rows(M, j, llm):
    pending_M, rows_M = pending_C[:M], order_C[:M]
    reads_M = pending_M > j * W
    idx_M = jnp.where(reads_M, rows_M, B)  # rows without tokens left are not written back
    red_M = red_B[rows_M]
    src_MxL = jnp.where(red_M[:, None], ctx["red"][rows_M], ctx["ctx"][rows_M])
    src_len_M = src_len_B[rows_M]
    start_M = synced_B[rows_M] + j * W
    pos_MxW = start_M[:, None] + jnp.arange(W)
    fed_MxW = reads_M[:, None] & (pos_MxW < src_len_M[:, None])
    tok_MxW = jnp.where(fed_MxW, jnp.take_along_axis(src_MxL, jnp.clip(pos_MxW, 0, L - 1), 1),
                        sp.pad)
    pos_MxW = jnp.where(fed_MxW, pos_MxW, -1)  # not fed: no cache write
    last_M = src_len_M - 1 - start_M
    idx_last_M = jnp.where(reads_M & (last_M < W), rows_M, B)  # the chunk holds the last token
    last_M = jnp.clip(last_M, 0, W - 1)
    c_logits_Mx1xV, c_hidden_MxWxD, cache_M = transformer.apply(
        llm_params, setup.llm, tok_MxW, pos_MxW, gather(llm["cache"], rows_M),
        kv_buckets=setup.rollout.kv_buckets, logits_at_B=last_M)
    return dict(
        llm, cache=scatter(llm["cache"], cache_M, idx_M),
        logits_BxV=llm["logits_BxV"].at[idx_last_M].set(c_logits_Mx1xV[:, 0], mode="drop"),
        hidden_BxD=llm["hidden_BxD"].at[idx_last_M].set(at(c_hidden_MxWxD, last_M),
                                                         mode="drop"))

  def chunk(j, llm):
    which = smallest_size(sizes, jnp.sum(pending_C > j * W))
    return jax.lax.switch(which, [functools.partial(chunk_rows, M, j) for M in sizes], llm)

  llm = jax.lax.fori_loop(0, (jnp.max(pending_C) + W - 1) // W, chunk, llm)
  return dict(llm, synced_B=jnp.where(routed_B, src_len_B, llm["synced_B"]),
              red_B=jnp.where(routed_B, red_B, llm["red_B"]))


def llm_call(N, ops, *, setup: rollout_types.Setup, slm_params, llm_params, idx_C, red_B, ctx, rng):
  """The LLM writes the step of the first N routed slots of idx_C (slots == B are empty) from
  their caught-up caches; the SLM absorbs it. ops: (SLM cache, logits_BxV, hidden_BxD, llm),
  llm as in catch_up. Returns ops updated for the routed rows, and per slot (padded to C): the
  LLM's step, its length, the length of the context sent, and the private tokens in it.
  """
  cfg, sp = setup.rollout, setup.specials
  cache, logits_BxV, hidden_BxD, llm = ops
  B, L = ctx["ctx"].shape
  K, C = cfg.step_tokens, idx_C.shape[0]
  idx_N = idx_C[:N]
  ok_N = idx_N < B
  row_N = jnp.minimum(idx_N, B - 1)
  # An unused slot computes on row B-1's state and is discarded: count it redacted, so no
  # private token enters the LLM for a row that did not ask with its full context.
  red_N = red_B[row_N] | ~ok_N
  src_NxL = jnp.where(red_N[:, None], ctx["red"][row_N], ctx["ctx"][row_N])
  src_len_N = jnp.where(red_N, ctx["red_len"][row_N], ctx["ctx_len"][row_N])
  llm_NxK, llm_len_N, _, l_cache, l_logits_NxV, l_hidden_NxD = decode.decode_step(
      llm_params, setup.llm, gather(llm["cache"], row_N), llm["logits_BxV"][row_N],
      llm["hidden_BxD"][row_N], src_len_N, ok_N, rng, num_tokens=K,
      **rollout_types.step_ends(cfg, sp), pad=sp.pad, temperature=cfg.llm_temperature,
      kv_buckets=cfg.kv_buckets)
  llm = dict(
      llm, cache=scatter(llm["cache"], l_cache, idx_N),
      synced_B=llm["synced_B"].at[idx_N].set(src_len_N + llm_len_N, mode="drop"),
      logits_BxV=llm["logits_BxV"].at[idx_N].set(l_logits_NxV, mode="drop"),
      hidden_BxD=llm["hidden_BxD"].at[idx_N].set(l_hidden_NxD, mode="drop"))
  sent_NxL = jnp.arange(L) < src_len_N[:, None]
  exposed_N = jnp.sum(privacy.private_mask(src_NxL, sp) & sent_NxL, -1)

  cache, logits_BxV, hidden_BxD = absorb(
      setup, slm_params, (cache, logits_BxV, hidden_BxD), llm_NxK, llm_len_N, ctx["ctx_len"],
      row_N, idx_N)
  pad = functools.partial(pad_slots, C)
  return ((cache, logits_BxV, hidden_BxD, llm), pad(llm_NxK, sp.pad), pad(llm_len_N, 0),
          pad(src_len_N, 0), pad(exposed_N, 0))


def absorb(setup: rollout_types.Setup, slm_params, ops, step_NxK, step_len_N, ctx_len_B,
           row_N, write_N):
  """The SLM absorbs an LLM step (in SLM ids, written from each row's ctx_len) in one chunked
  prefill. ops: (SLM cache, logits_BxV, hidden_BxD), read at row_N and written at write_N
  (indices == B are dropped)."""
  cache, logits_BxV, hidden_BxD = ops
  K = step_NxK.shape[1]
  last_N = jnp.maximum(step_len_N - 1, 0)
  a_logits_Nx1xV, a_hidden_NxKxD, a_cache = transformer.apply(
      slm_params, setup.slm, step_NxK, ctx_len_B[row_N][:, None] + jnp.arange(K),
      gather(cache, row_N), kv_buckets=setup.rollout.kv_buckets, logits_at_B=last_N)
  cache = scatter(cache, a_cache, write_N)
  logits_BxV = logits_BxV.at[write_N].set(a_logits_Nx1xV[:, 0], mode="drop")
  hidden_BxD = hidden_BxD.at[write_N].set(at(a_hidden_NxKxD, last_N), mode="drop")
  return cache, logits_BxV, hidden_BxD


def pad_slots(C, x_N, value):
  """x_N padded with `value` to C slots along its first axis."""
  return jnp.full((C,) + x_N.shape[1:], value, x_N.dtype).at[:x_N.shape[0]].set(x_N)


def no_call(ops, *, C, K, pad):
  """No row asks: nothing runs on the LLM."""
  zeros_C = jnp.zeros((C,), jnp.int32)
  return ops, jnp.full((C, K), pad, jnp.int32), zeros_C, zeros_C, zeros_C
