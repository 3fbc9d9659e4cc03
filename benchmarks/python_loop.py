"""The collaborative rollout written the way most peer code is (RelayLLM, Co-LLM): a Python loop.

Same models, same KV caches and the same algorithm as `collab.rollout.rollout`, but driven from
the host: one jitted call per token per model (cache donated, so no copies), the stop check and
the gate's decision on the host in numpy, contexts kept as numpy buffers. It is written to be
fast within that pattern, so the comparison is fair:
  - a step's token loop exits as soon as every row has ended its step;
  - the LLM runs only when some row asks, on the asking rows padded to a power of two (not a
    fixed capacity), and, like the rollout, keeps each row's LLM KV cache across steps, so a
    call feeds only what was written since the row's last call (in chunks of W tokens, each
    on the rows that still have tokens to read).
With greedy decoding it writes exactly what the jitted rollout writes (tests/test_benchmarks.py).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from collab import gating
from collab import llm_calls
from collab import privacy
from collab import rollout as rollout_lib
from collab.models import decode
from collab.models import transformer
from collab.models.config import ModelConfig


@functools.partial(jax.jit, static_argnames=("cfg", "cache_len", "kv_buckets"))
def _prefill(params, tokens_BxT, len_B, *, cfg: ModelConfig, cache_len: int, kv_buckets: int):
  """Prefills right-padded contexts into a fresh cache; logits and hidden at each last token."""
  cache = transformer.init_cache(cfg, tokens_BxT.shape[0], cache_len)
  logits_BxTxV, hidden_BxTxD, cache = transformer.apply(
      params, cfg, tokens_BxT, transformer.default_positions(tokens_BxT), cache,
      kv_buckets=kv_buckets)
  return llm_calls.at(logits_BxTxV, len_B - 1), llm_calls.at(hidden_BxTxD, len_B - 1), cache


@functools.partial(jax.jit, static_argnames=("cfg", "pad", "kv_buckets"),
                   donate_argnames=("cache",))
def _token(params, cache, logits_BxV, hidden_BxD, running_B, pos_B, *, cfg: ModelConfig,
           pad: int, kv_buckets: int):
  """One greedy token per row: pick it, score it, feed it to the cache (pad for ended rows)."""
  tok_B = decode.argmax(logits_BxV)  # what the rollout's greedy sampling takes
  logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV), tok_B[:, None], -1)[:, 0]
  tok_B = jnp.where(running_B, tok_B, pad)
  new_logits_Bx1xV, new_hidden_Bx1xD, cache = transformer.apply(
      params, cfg, tok_B[:, None], pos_B[:, None], cache, kv_buckets=kv_buckets)
  logits_BxV = jnp.where(running_B[:, None], new_logits_Bx1xV[:, 0], logits_BxV)
  hidden_BxD = jnp.where(running_B[:, None], new_hidden_Bx1xD[:, 0], hidden_BxD)
  return tok_B, jnp.where(running_B, logp_B, 0.0), logits_BxV, hidden_BxD, cache


@functools.partial(jax.jit, static_argnames=("cfg", "kv_buckets"), donate_argnames=("cache",))
def _chunk(params, cache, logits_NxV, hidden_NxD, tokens_NxW, pos_NxW, last_N, *,
           cfg: ModelConfig, kv_buckets: int):
  """Feeds one chunk of context; keeps the outputs at column last_N (none where out of range)."""
  W = tokens_NxW.shape[1]
  c_logits, c_hidden, cache = transformer.apply(params, cfg, tokens_NxW, pos_NxW, cache,
                                                kv_buckets=kv_buckets)
  has_N = (last_N >= 0) & (last_N < W)
  last_N = jnp.clip(last_N, 0, W - 1)
  logits_NxV = jnp.where(has_N[:, None], llm_calls.at(c_logits, last_N), logits_NxV)
  hidden_NxD = jnp.where(has_N[:, None], llm_calls.at(c_hidden, last_N), hidden_NxD)
  return logits_NxV, hidden_NxD, cache


@jax.jit
def _gather_rows(tree, row_N):
  return llm_calls.gather(tree, row_N)


@functools.partial(jax.jit, donate_argnames=("tree",))
def _scatter_rows(tree, part, idx_N):
  return llm_calls.scatter(tree, part, idx_N)


@functools.partial(jax.jit, static_argnames=("sp",))
def _redact_step(ctx_BxL, ctx_len_B, step_BxK, step_len_B, *, sp):
  """The rollout's own redaction (private spans may cross step boundaries)."""
  return privacy.redact(step_BxK, step_len_B, sp,
                             privacy.span_open(ctx_BxL, ctx_len_B, sp))


@functools.partial(jax.jit, static_argnames=("sp",))
def _exposed(src_NxL, src_len_N, *, sp):
  sent_NxL = jnp.arange(src_NxL.shape[1]) < src_len_N[:, None]
  return jnp.sum(privacy.private_mask(src_NxL, sp) & sent_NxL, -1)


@functools.partial(jax.jit, static_argnames=("cfg", "kv_buckets"), donate_argnames=("cache",))
def _absorb(params, cache, logits_BxV, hidden_BxD, idx_N, tokens_NxK, start_N, len_N, *,
            cfg: ModelConfig, kv_buckets: int):
  """The SLM reads the LLM's steps of rows idx_N (== B: empty slot) in one chunked prefill."""
  B = logits_BxV.shape[0]
  K = tokens_NxK.shape[1]
  row_N = jnp.minimum(idx_N, B - 1)
  part = llm_calls.gather(cache, row_N)
  a_logits_NxKxV, a_hidden_NxKxD, part = transformer.apply(
      params, cfg, tokens_NxK, start_N[:, None] + jnp.arange(K), part, kv_buckets=kv_buckets)
  last_N = jnp.maximum(len_N - 1, 0)
  cache = llm_calls.scatter(cache, part, idx_N)
  logits_BxV = logits_BxV.at[idx_N].set(llm_calls.at(a_logits_NxKxV, last_N), mode="drop")
  hidden_BxD = hidden_BxD.at[idx_N].set(llm_calls.at(a_hidden_NxKxD, last_N), mode="drop")
  return cache, logits_BxV, hidden_BxD


@functools.partial(jax.jit, static_argnames=("gate_cfg", "num_steps", "budget"))
def _gate_logits(gate_params, hidden_BxD, draft_logp_BxK, draft_len_B, step, calls_B, *,
                 gate_cfg, num_steps: int, budget: int):
  """The gate's logits from the same features the rollout builds."""
  K = draft_logp_BxK.shape[1]
  drafted_BxK = jnp.arange(K) < draft_len_B[:, None]
  mean_B = draft_logp_BxK.sum(-1) / jnp.maximum(draft_len_B, 1)
  min_B = jnp.min(jnp.where(drafted_BxK, draft_logp_BxK, 0.0), axis=-1)
  scalars_BxF = gating.scalar_features(mean_B, min_B, step, num_steps, calls_B, budget)
  return gating.gate_logits(gate_params, gate_cfg, hidden_BxD, scalars_BxF)


@jax.jit
def _row_uniforms(rng, row_id_B):
  return jax.vmap(jax.random.uniform)(jax.vmap(jax.random.fold_in, (None, 0))(rng, row_id_B))


def _bucket(n: int, cap: int) -> int:
  """Smallest power of two >= n, at most cap."""
  return min(cap, 1 << max(0, int(n) - 1).bit_length())


def decide(setup: rollout_lib.Setup, policy: rollout_lib.Policy, s: int, active, calls, draft, draft_logp, draft_len,
           batch, policy_value, gate_rng, gate_logits_fn) -> np.ndarray:
  """The policy's request kinds for step s, decided on the host as the rollout decides them.

  gate_logits_fn() -> BxA gate logits (numpy or convertible), called for the learned gate only.
  """
  cfg, actions = setup.rollout, setup.gate.actions
  B, K = draft.shape
  asks_A = np.array([a != "self" for a in actions])
  mask = ~asks_A[None, :] | (calls < cfg.budget)[:, None]
  if policy.kind == "gate":
    if not policy.greedy:
      raise NotImplementedError("the host-loop baselines take greedy gate decisions")
    action = np.argmax(np.where(mask, np.asarray(gate_logits_fn()), -np.inf), axis=-1)
  else:
    drafted = np.arange(K) < draft_len[:, None]
    if policy.kind == "self":
      ask = np.zeros(B, bool)
    elif policy.kind == "always":
      ask = np.ones(B, bool)
    elif policy.kind == "every_k":
      ask = np.full(B, s % policy.k == policy.k - 1)
    elif policy.kind == "fixed":
      ask = np.full(B, s in policy.steps)
    elif policy.kind == "random":
      ask = np.asarray(_row_uniforms(gate_rng, batch["row_id_B"])) < np.float32(policy_value)
    elif policy.kind == "threshold":
      ask = np.min(np.where(drafted, draft_logp, 0.0), -1) < np.float32(policy_value)
    else:  # oracle
      ref, ref_len = batch["ref_steps_BxSxK"][:, s], batch["ref_len_BxS"][:, s]
      ask = (draft_len != ref_len) | np.any(drafted & (draft != ref), -1)
    action = np.where(ask, actions.index(policy.ask_kind), 0)
    action = np.where(mask[np.arange(B), action], action, 0)
  return np.where(active, action, 0).astype(np.int32)


class HostEpisodes:
  """The host-side state of a batch of episodes, kept by both host-loop baselines (this one
  and the torch rollout): full and redacted contexts, who wrote each token, done flags and
  per-row counters, with the routing of asks and the append of each step."""

  def __init__(self, setup: rollout_lib.Setup, batch):
    cfg, sp = setup.rollout, setup.specials
    if cfg.slm_temperature or cfg.llm_temperature:
      raise NotImplementedError("the host-loop baselines decode greedily")
    self.sp = sp
    prompt_BxP = np.asarray(batch["prompt_BxP"], np.int32)
    self.B, self.P = B, P = prompt_BxP.shape
    self.S, self.K = cfg.num_steps, cfg.step_tokens
    self.L = L = P + self.S * self.K
    self.C = min(cfg.llm_capacity or B, B)
    self.asks_A = np.array([a != "self" for a in setup.gate.actions])
    self.redacted_A = np.array([a in rollout_lib.REDACTED_KINDS for a in setup.gate.actions])
    self.ends = rollout_lib.step_end_ids(cfg, sp)
    self.ctx = np.full((B, L), sp.pad, np.int32)
    self.ctx[:, :P] = prompt_BxP
    self.ctx_len = np.asarray(batch["prompt_len_B"], np.int32).copy()
    self.red = np.full((B, L), sp.pad, np.int32)
    self.red[:, :P] = batch["redacted_prompt_BxP"]
    self.red_len = np.asarray(batch["redacted_prompt_len_B"], np.int32).copy()
    self.writer = np.zeros((B, L), np.int32)
    self.done = np.zeros(B, bool)
    self.calls, self.llm_tokens, self.context_tokens, self.exposed, self.overflow = (
        np.zeros(B, np.int32) for _ in range(5))

  def route(self, action_B: np.ndarray):
    """(want, routed, idx): rows that ask, those within the LLM's capacity, their indices."""
    want = ~self.done & self.asks_A[action_B]
    routed = want & (np.cumsum(want) - 1 < self.C)
    self.overflow += want & ~routed
    return want, routed, np.flatnonzero(routed)

  def append(self, step_BxK, step_len_B, routed_B) -> np.ndarray:
    """Appends each row's step to its full and redacted contexts; returns the rows whose
    redacted step differs from the step (their redacted stream is not the written one)."""
    sp = self.sp
    red_step, red_step_len = jax.device_get(_redact_step(self.ctx, self.ctx_len, step_BxK,
                                                         step_len_B, sp=sp))
    differs = np.zeros(self.B, bool)
    for b in np.flatnonzero(step_len_B):
      n, r, at, red_at = step_len_B[b], red_step_len[b], self.ctx_len[b], self.red_len[b]
      self.ctx[b, at:at + n] = step_BxK[b, :n]
      self.writer[b, at:at + n] = 2 if routed_B[b] else 1
      self.red[b, red_at:red_at + r] = red_step[b, :r]
      self.done[b] |= bool(np.any(step_BxK[b, :n] == sp.eos))
      differs[b] = r != n or np.any(red_step[b, :r] != step_BxK[b, :n])
    self.red_len += red_step_len
    self.ctx_len += step_len_B
    return differs

  def result(self) -> dict:
    return dict(tokens_BxL=self.ctx, length_B=self.ctx_len, writer_BxL=self.writer,
                calls_B=self.calls, llm_tokens_B=self.llm_tokens,
                context_tokens_B=self.context_tokens, exposed_B=self.exposed,
                overflow_B=self.overflow, done_B=self.done)


def python_loop_rollout(slm_params, llm_params, gate_params, batch, rng, policy_value=0.0, *,
                        setup: rollout_lib.Setup, policy: rollout_lib.Policy) -> dict:
  """Runs the batch to the end; returns numpy arrays named like `rollout.Final`'s fields, plus
  actions_SxB and routed_SxB."""
  cfg, sp = setup.rollout, setup.specials
  ep = HostEpisodes(setup, batch)
  B, P, S, K, L, C = ep.B, ep.P, ep.S, ep.K, ep.L, ep.C
  redacted_A, ends, W = ep.redacted_A, ep.ends, llm_calls.catchup_width(K)
  # Aliases of the episodes' arrays, which it updates in place.
  ctx, ctx_len, red, red_len, done = ep.ctx, ep.ctx_len, ep.red, ep.red_len, ep.done
  calls, llm_tokens, context_tokens, exposed = (
      ep.calls, ep.llm_tokens, ep.context_tokens, ep.exposed)
  prompt_BxP = ctx[:, :P].copy()
  actions_SxB = np.zeros((S, B), np.int32)
  routed_SxB = np.zeros((S, B), bool)

  # The same models as the rollout, with the same bucketed cached attention.
  kvb = cfg.kv_buckets
  logits, hidden, cache = _prefill(slm_params, prompt_BxP, ctx_len, cfg=setup.slm, cache_len=L,
                                   kv_buckets=kvb)
  # The LLM's per-row state: KV cache and outputs after its last token on the device; how many
  # tokens of which stream (full or redacted) it holds on the host.
  llm = dict(cache=transformer.init_cache(setup.llm, B, L + K),
             logits=jnp.zeros((B, setup.llm.vocab_size), jnp.float32),
             hidden=jnp.zeros((B, setup.llm.d_model), setup.llm.activation_dtype))
  llm_synced = np.zeros(B, np.int32)
  llm_red = np.zeros(B, bool)
  for s in range(S):
    rng, draft_rng, gate_rng, llm_rng = jax.random.split(rng, 4)
    active = ~done
    gate_hidden = hidden  # the gate reads the state before the draft
    # 1. The SLM drafts its step, one jitted call per token; exit when every row has ended.
    draft = np.full((B, K), sp.pad, np.int32)
    draft_logp = np.zeros((B, K), np.float32)
    draft_len = np.zeros(B, np.int32)
    running = active.copy()
    for t in range(K):
      if not running.any():
        break
      tok, logp, logits, hidden, cache = _token(slm_params, cache, logits, hidden, running,
                                                ctx_len + t, cfg=setup.slm, pad=sp.pad,
                                                kv_buckets=kvb)
      tok, logp = jax.device_get((tok, logp))
      draft[:, t], draft_logp[:, t] = tok, logp
      draft_len += running
      running &= ~np.isin(tok, ends)

    # 2. The decision, on the host.
    action = decide(setup, policy, s, active, calls, draft, draft_logp, draft_len, batch, policy_value,
                    gate_rng, lambda: _gate_logits(
                        gate_params, gate_hidden, draft_logp, draft_len, s, calls,
                        gate_cfg=setup.gate, num_steps=S, budget=cfg.budget))

    # 3. Asking rows (at most C) go to the LLM: gather, prefill, decode, absorb.
    want, routed, idx = ep.route(action)
    step = draft.copy()
    step_len = np.where(active, draft_len, 0)
    if idx.size:
      # Catch up: the LLM reads what each asking row wrote since its last call.
      red_B = redacted_A[action]
      src_len_B = np.where(red_B, red_len, ctx_len)
      synced_B = np.where(llm_red == red_B, llm_synced, 0)
      pending = np.where(routed, src_len_B - synced_B, 0)
      for j in range(-(-int(pending.max()) // W)):
        rows = np.flatnonzero(pending > j * W)
        idx_M = np.full(_bucket(rows.size, C), B, np.int32)
        idx_M[:rows.size] = rows
        row_M = np.minimum(idx_M, B - 1)
        reads = idx_M < B
        src = np.where(red_B[row_M][:, None], red[row_M], ctx[row_M])
        start = synced_B[row_M] + j * W
        pos = start[:, None] + np.arange(W)
        fed = reads[:, None] & (pos < src_len_B[row_M][:, None])
        tok = np.where(fed, np.take_along_axis(src, np.clip(pos, 0, L - 1), axis=1), sp.pad)
        pos = np.where(fed, pos, -1).astype(np.int32)
        last = np.where(reads, src_len_B[row_M] - 1 - start, -1).astype(np.int32)
        part = _gather_rows((llm["cache"], llm["logits"], llm["hidden"]), row_M)
        l_logits, l_hidden, l_cache = _chunk(llm_params, part[0], part[1], part[2], tok, pos,
                                             last, cfg=setup.llm, kv_buckets=kvb)
        llm["cache"], llm["logits"], llm["hidden"] = _scatter_rows(
            (llm["cache"], llm["logits"], llm["hidden"]), (l_cache, l_logits, l_hidden), idx_M)
      llm_synced[idx], llm_red[idx] = src_len_B[idx], red_B[idx]

      # The LLM writes the step of the asking rows (padded to a power of two).
      N = _bucket(idx.size, C)
      idx_N = np.full(N, B, np.int32)
      idx_N[:idx.size] = idx
      row_N = np.minimum(idx_N, B - 1)
      ok_N = idx_N < B
      red_N = red_B[row_N] | ~ok_N  # an empty slot is sent redacted
      src_len = np.where(red_N, red_len[row_N], ctx_len[row_N])
      src = np.where(red_N[:, None], red[row_N], ctx[row_N])
      l_cache, l_logits, l_hidden = _gather_rows(
          (llm["cache"], llm["logits"], llm["hidden"]), row_N)
      out = np.full((N, K), sp.pad, np.int32)
      out_len = np.zeros(N, np.int32)
      l_running = ok_N.copy()
      for t in range(K):
        if not l_running.any():
          break
        tok, _, l_logits, l_hidden, l_cache = _token(
            llm_params, l_cache, l_logits, l_hidden, l_running, src_len + t, cfg=setup.llm,
            pad=sp.pad, kv_buckets=kvb)
        tok = np.asarray(tok)
        out[:, t] = tok
        out_len += l_running
        l_running &= ~np.isin(tok, ends)
      llm["cache"], llm["logits"], llm["hidden"] = _scatter_rows(
          (llm["cache"], llm["logits"], llm["hidden"]), (l_cache, l_logits, l_hidden), idx_N)
      n = idx.size
      llm_synced[idx] = src_len[:n] + out_len[:n]
      cache, logits, hidden = _absorb(slm_params, cache, logits, hidden, idx_N, out,
                                      ctx_len[row_N], out_len, cfg=setup.slm, kv_buckets=kvb)
      step[idx], step_len[idx] = out[:n], out_len[:n]
      exposed[idx] += np.asarray(_exposed(src, src_len, sp=sp))[:n]
      context_tokens[idx] += src_len[:n]
      llm_tokens[idx] += out_len[:n]
      calls[idx] += 1
    actions_SxB[s], routed_SxB[s] = action, routed

    # 4. Append the chosen step to both contexts.
    red_len_before = red_len.copy()
    differs = ep.append(step, step_len, routed)
    resync = routed & llm_red & differs  # the LLM's cache holds the raw step, not its redaction
    llm_synced[resync] = red_len_before[resync]

  correct = np.asarray(rollout_lib._final_line_correct(ctx, ctx_len, batch["answer_BxA"], sp))
  return dict(ep.result(), correct_B=correct, actions_SxB=actions_SxB, routed_SxB=routed_SxB)
