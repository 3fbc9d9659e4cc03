"""The collaborative rollout: SLM and LLM write a batch of solutions together, in one jit.

Per decision step s (outer `lax.scan`), for every row that is not finished:
  1. the SLM drafts the step it would write itself (inner scan of K single-token steps with its
     KV cache); the draft's token log-probs give the gate a confidence signal;
  2. the policy (the learned gate, or a baseline) picks a request kind: self / ask /
     ask_redacted / ...; the budget of calls is a hard mask;
  3. rows that ask are routed to the LLM like tokens to a mixture-of-experts expert: at most C
     rows per step (capacity) are gathered, the LLM reads the part of their context (full or
     redacted) it has not seen yet into their KV cache, decodes the step, and the result is
     scattered back. Rows over capacity keep their draft (counted as overflow). The call runs
     on n asking rows rounded up to a size in C, C/2, C/4, ... (`llm_sizes` of them), and is
     skipped when no row asks, so LLM compute scales with the calls made, not with the batch;
  4. the chosen step is appended to the context; rows whose step came from the LLM absorb it
     into the SLM cache with one chunked prefill (again only the routed rows).
The LLM keeps one KV cache per row across steps (for the full or the redacted context, the
kind it was last asked with), so a call prefills only the tokens written since the row's last
call, not the whole context again.
The context is kept twice: in full, and redacted (every <priv>...</priv> span replaced by one
<redacted> token), so `ask_redacted` can send the LLM a context without private tokens.
Private tokens exposed are counted from the tokens actually sent.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from collab import gating
from collab.models import decode
from collab.models import transformer
from collab.models.config import ModelConfig

REDACTED_KINDS = ("ask_redacted",)


class Specials(NamedTuple):
  """Token ids the rollout needs (from the tokenizer); hashable, so static under jit."""
  pad: int
  eos: int
  sep: int
  priv_open: int
  priv_close: int
  redacted: int

  @classmethod
  def from_tokenizer(cls, tok) -> Specials:
    return cls(tok.pad_id, tok.eos_id, tok.sep_id, tok.priv_open_id, tok.priv_close_id,
               tok.redacted_id)


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
  num_steps: int = 8            # S: decisions per episode
  step_tokens: int = 16         # K: most tokens one step may have
  granularity: str = "line"     # 'line': a step ends at <sep>; 'tokens': a step is K tokens
  budget: int = 8               # most LLM calls per episode (hard limit)
  llm_capacity: int = 0         # C: rows routed to the LLM per step and device; 0 = batch size
  llm_sizes: int = 4            # row counts an LLM call compiles for: C, C/2, ... (this many)
  slm_temperature: float = 0.0
  llm_temperature: float = 0.0

  def __post_init__(self):
    if self.granularity not in ("line", "tokens"):
      raise ValueError(f"granularity must be 'line' or 'tokens', got {self.granularity!r}")
    if self.num_steps < 1 or self.step_tokens < 1:
      raise ValueError("num_steps and step_tokens must be >= 1")
    if self.llm_sizes < 1:
      raise ValueError("llm_sizes must be >= 1")


@dataclasses.dataclass(frozen=True)
class Policy:
  """Who decides: the learned gate, or a baseline of the same rollout.

  kind: 'gate' (sample; greedy=True takes the argmax), 'self' (SLM alone), 'always' (ask at
  every step: with the full context this is the LLM alone), 'every_k' (ask when step % k ==
  k - 1), 'fixed' (ask at `steps`), 'random' (ask with probability `value`), 'threshold' (ask
  when the draft's min token log-prob < `value`, BiLD-style), 'oracle' (ask when the draft
  differs from the reference step: hindsight). Baselines ask with request kind `ask_kind`.
  """
  kind: str = "gate"
  greedy: bool = False
  ask_kind: str = "ask"
  k: int = 2
  steps: tuple[int, ...] = ()

  def __post_init__(self):
    kinds = ("gate", "self", "always", "every_k", "fixed", "random", "threshold", "oracle")
    if self.kind not in kinds:
      raise ValueError(f"Unknown policy {self.kind!r}; valid: {kinds}")


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything static about a rollout (hashable: one compile per Setup)."""
  slm: ModelConfig
  llm: ModelConfig
  gate: gating.GateConfig
  rollout: RolloutConfig
  specials: Specials
  policy: Policy = Policy()


class Step(NamedTuple):
  """Per-decision records, stacked by the scan into SxB (SxBxD for features)."""
  action: jax.Array          # request kind the policy chose
  logp: jax.Array            # its log-prob under the gate (0 for baselines)
  valid: jax.Array           # the row was still running, so this decision counted
  hidden: jax.Array          # gate features: SLM hidden state (BxD)
  scalars: jax.Array         # gate features: scalar features (BxF)
  mask: jax.Array            # allowed request kinds (BxA)
  routed: jax.Array          # the LLM wrote this step
  overflow: jax.Array        # asked, but over capacity: the SLM's draft was kept
  llm_tokens: jax.Array      # tokens the LLM generated
  context_tokens: jax.Array  # tokens sent to the LLM
  exposed: jax.Array         # private tokens among them
  draft_min_logp: jax.Array


class Final(NamedTuple):
  tokens_BxL: jax.Array      # prompt + written steps
  length_B: jax.Array
  writer_BxL: jax.Array      # 0 prompt, 1 SLM, 2 LLM
  correct_B: jax.Array       # final answer line equals the reference line
  calls_B: jax.Array
  llm_tokens_B: jax.Array
  context_tokens_B: jax.Array
  exposed_B: jax.Array
  overflow_B: jax.Array
  done_B: jax.Array


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


def _span_open(tokens_BxL, len_B, sp: Specials):
  """Rows whose first len_B tokens end inside a private span (the last marker is a <priv>)."""
  pos_L = jnp.arange(tokens_BxL.shape[1])
  valid_BxL = pos_L < len_B[:, None]
  last = lambda tok: jnp.max(jnp.where(valid_BxL & (tokens_BxL == tok), pos_L, -1), axis=-1)
  return last(sp.priv_open) > last(sp.priv_close)


def _write_rows(buf_BxL, start_B, new_BxK, keep_BxK):
  """buf[b, start[b] + j] = new[b, j] where keep[b, j]; writes past the end are dropped."""
  K = new_BxK.shape[1]
  cols_BxK = start_B[:, None] + jnp.arange(K)
  cols_BxK = jnp.where(keep_BxK, cols_BxK, buf_BxL.shape[1])  # not kept: out of range
  rows_BxK = jnp.broadcast_to(jnp.arange(buf_BxL.shape[0])[:, None], cols_BxK.shape)
  return buf_BxL.at[rows_BxK, cols_BxK].set(new_BxK.astype(buf_BxL.dtype), mode="drop")


def _redact(tokens_BxK, len_B, sp: Specials, open_B=None):
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


def decode_step(params, cfg: ModelConfig, cache, logits_BxV, hidden_BxD, start_B, active_B,
                rng, *, num_tokens, granularity, temperature, sp: Specials):
  """Writes one step per active row, token by token, feeding each token back into the cache.

  Returns tokens_BxK (pad after the step ends), len_B, token log-probs BxK, and the cache,
  logits and hidden state after the step's last token (unchanged for inactive rows).
  """
  def body(carry, t):
    cache, logits_BxV, hidden_BxD, running_B, rng = carry
    rng, sample_rng = jax.random.split(rng)
    tok_B = decode.sample_logits(logits_BxV, temperature, sample_rng)
    logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV), tok_B[:, None], -1)[:, 0]
    tok_B = jnp.where(running_B, tok_B, sp.pad)
    new_logits_Bx1xV, new_hidden_Bx1xD, cache = transformer.apply(
        params, cfg, tok_B[:, None], (start_B + t)[:, None], cache)
    logits_BxV = jnp.where(running_B[:, None], new_logits_Bx1xV[:, 0], logits_BxV)
    hidden_BxD = jnp.where(running_B[:, None], new_hidden_Bx1xD[:, 0], hidden_BxD)
    ends_B = tok_B == sp.eos
    if granularity == "line":
      ends_B |= tok_B == sp.sep
    out = (tok_B, jnp.where(running_B, logp_B, 0.0), running_B)
    return (cache, logits_BxV, hidden_BxD, running_B & ~ends_B, rng), out

  carry = (cache, logits_BxV, hidden_BxD, active_B, rng)
  (cache, logits_BxV, hidden_BxD, _, _), (tok_KxB, logp_KxB, wrote_KxB) = jax.lax.scan(
      body, carry, jnp.arange(num_tokens))
  return tok_KxB.T, wrote_KxB.sum(0), logp_KxB.T, cache, logits_BxV, hidden_BxD


def _choose(setup: Setup, gate_params, hidden_BxD, scalars_BxF, mask_BxA, draft_min_logp_B,
            draft_differs_B, step, policy_value, rng):
  """The policy's request kinds (within mask_BxA); returns (action_B, logp_B).

  rng: one key per row (B keys), so a row's sample does not depend on how the batch is split.
  """
  policy, actions = setup.policy, setup.gate.actions
  B = hidden_BxD.shape[0]
  if policy.kind == "gate":
    logits_BxA = gating.gate_logits(gate_params, setup.gate, hidden_BxD, scalars_BxF)
    logits_BxA = jnp.where(mask_BxA, logits_BxA, -jnp.inf)
    if policy.greedy:
      action_B = jnp.argmax(logits_BxA, -1)
    else:
      action_B = jax.vmap(jax.random.categorical)(rng, logits_BxA)
    logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxA), action_B[:, None], -1)[:, 0]
    return action_B.astype(jnp.int32), logp_B
  ask_B = {
      "self": lambda: jnp.zeros((B,), bool),
      "always": lambda: jnp.ones((B,), bool),
      "every_k": lambda: jnp.full((B,), step % policy.k == policy.k - 1),
      "fixed": lambda: jnp.full((B,), jnp.isin(step, jnp.asarray(policy.steps or (-1,)))),
      "random": lambda: jax.vmap(jax.random.uniform)(rng) < policy_value,
      "threshold": lambda: draft_min_logp_B < policy_value,
      "oracle": lambda: draft_differs_B,
  }[policy.kind]()
  action_B = jnp.where(ask_B, actions.index(policy.ask_kind), 0)
  action_B = jnp.where(mask_BxA[jnp.arange(B), action_B], action_B, 0)
  return action_B.astype(jnp.int32), jnp.zeros((B,), jnp.float32)


def _gather(tree, idx_C):
  return jax.tree.map(lambda x: x[idx_C], tree)


def _scatter(tree, part, idx_C):
  """tree[idx_C] = part; indices == batch size (empty slots) are dropped."""
  return jax.tree.map(lambda x, p: x.at[idx_C].set(p, mode="drop"), tree, part)


def _at(x_BxTx_, index_B):
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


def _smallest_size(sizes, n):
  """Index of the smallest of `sizes` (ascending) that holds n rows."""
  return jnp.sum(jnp.asarray(sizes) < n)


def _catch_up(llm, *, setup: Setup, llm_params, ctx, routed_B, red_B, sizes):
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
    c_logits_MxWxV, c_hidden_MxWxD, cache_M = transformer.apply(
        llm_params, setup.llm, tok_MxW, pos_MxW, _gather(llm["cache"], rows_M))
    last_M = src_len_M - 1 - start_M
    idx_last_M = jnp.where(reads_M & (last_M < W), rows_M, B)  # the chunk holds the last token
    last_M = jnp.clip(last_M, 0, W - 1)
    return dict(
        llm, cache=_scatter(llm["cache"], cache_M, idx_M),
        logits_BxV=llm["logits_BxV"].at[idx_last_M].set(_at(c_logits_MxWxV, last_M),
                                                         mode="drop"),
        hidden_BxD=llm["hidden_BxD"].at[idx_last_M].set(_at(c_hidden_MxWxD, last_M),
                                                         mode="drop"))

  def chunk(j, llm):
    which = _smallest_size(sizes, jnp.sum(pending_C > j * W))
    return jax.lax.switch(which, [functools.partial(chunk_rows, M, j) for M in sizes], llm)

  llm = jax.lax.fori_loop(0, (jnp.max(pending_C) + W - 1) // W, chunk, llm)
  return dict(llm, synced_B=jnp.where(routed_B, src_len_B, llm["synced_B"]),
              red_B=jnp.where(routed_B, red_B, llm["red_B"]))


def _llm_call(N, ops, *, setup: Setup, slm_params, llm_params, idx_C, red_B, ctx, rng):
  """The LLM writes the step of the first N routed slots of idx_C (slots == B are empty) from
  their caught-up caches; the SLM absorbs it. ops: (SLM cache, logits_BxV, hidden_BxD, llm),
  llm as in _catch_up. Returns ops updated for the routed rows, and per slot (padded to C): the
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
  llm_NxK, llm_len_N, _, l_cache, l_logits_NxV, l_hidden_NxD = decode_step(
      llm_params, setup.llm, _gather(llm["cache"], row_N), llm["logits_BxV"][row_N],
      llm["hidden_BxD"][row_N], src_len_N, ok_N, rng, num_tokens=K,
      granularity=cfg.granularity, temperature=cfg.llm_temperature, sp=sp)
  llm = dict(
      llm, cache=_scatter(llm["cache"], l_cache, idx_N),
      synced_B=llm["synced_B"].at[idx_N].set(src_len_N + llm_len_N, mode="drop"),
      logits_BxV=llm["logits_BxV"].at[idx_N].set(l_logits_NxV, mode="drop"),
      hidden_BxD=llm["hidden_BxD"].at[idx_N].set(l_hidden_NxD, mode="drop"))
  sent_NxL = jnp.arange(L) < src_len_N[:, None]
  exposed_N = jnp.sum(private_mask(src_NxL, sp) & sent_NxL, -1)

  # The SLM absorbs the LLM's step in one chunked prefill.
  a_logits_NxKxV, a_hidden_NxKxD, a_cache = transformer.apply(
      slm_params, setup.slm, llm_NxK, ctx["ctx_len"][row_N][:, None] + jnp.arange(K),
      _gather(cache, row_N))
  last_N = jnp.maximum(llm_len_N - 1, 0)
  cache = _scatter(cache, a_cache, idx_N)
  logits_BxV = logits_BxV.at[idx_N].set(_at(a_logits_NxKxV, last_N), mode="drop")
  hidden_BxD = hidden_BxD.at[idx_N].set(_at(a_hidden_NxKxD, last_N), mode="drop")
  pad = lambda x, v: jnp.full((C,) + x.shape[1:], v, x.dtype).at[:N].set(x)
  return ((cache, logits_BxV, hidden_BxD, llm), pad(llm_NxK, sp.pad), pad(llm_len_N, 0),
          pad(src_len_N, 0), pad(exposed_N, 0))


def _no_call(ops, *, C, K, pad):
  """No row asks: nothing runs on the LLM."""
  zeros_C = jnp.zeros((C,), jnp.int32)
  return ops, jnp.full((C, K), pad, jnp.int32), zeros_C, zeros_C, zeros_C


def _final_line_correct(ctx_BxL, len_B, answer_BxA, sp: Specials):
  """The last written line (after the last <sep>, through <eos>) equals the reference line."""
  L, A = ctx_BxL.shape[1], answer_BxA.shape[1]
  pos_L = jnp.arange(L)
  is_sep_BxL = (ctx_BxL == sp.sep) & (pos_L < len_B[:, None] - 1)
  start_B = jnp.max(jnp.where(is_sep_BxL, pos_L, -1), axis=-1) + 1
  cols_BxA = jnp.clip(start_B[:, None] + jnp.arange(A), 0, L - 1)
  line_BxA = jnp.take_along_axis(ctx_BxL, cols_BxA, axis=-1)
  ref_valid_BxA = answer_BxA != sp.pad
  same_B = jnp.all(jnp.where(ref_valid_BxA, line_BxA == answer_BxA, True), axis=-1)
  return same_B & (len_B == start_B + ref_valid_BxA.sum(-1))


@functools.partial(jax.jit, static_argnames=("setup",))
def rollout(slm_params, llm_params, gate_params, batch, rng, policy_value=0.0, *, setup: Setup):
  """Runs a batch of problems to the end. Returns (Step records SxB..., Final).

  batch: prompt_BxP / prompt_len_B (bos question <sep>), redacted_prompt_BxP /
  redacted_prompt_len_B, ref_steps_BxSxK / ref_len_BxS (reference steps, for the oracle),
  answer_BxA (reference answer line with <eos>, pad after), row_id_B (a global row index:
  policy samples use fold_in(rng, row_id), so they do not depend on the batch's split across
  devices). See collab/data/episodes.py. Pass the same rng on every device.
  """
  cfg, sp, actions = setup.rollout, setup.specials, setup.gate.actions
  prompt_BxP = batch["prompt_BxP"]
  B, P = prompt_BxP.shape
  S, K = cfg.num_steps, cfg.step_tokens
  L = P + S * K
  C = min(cfg.llm_capacity or B, B)
  asks_A = jnp.array([a != "self" for a in actions])
  redacted_A = jnp.array([a in REDACTED_KINDS for a in actions])

  pad_BxL = jnp.full((B, L), sp.pad, jnp.int32)
  prompt_len_B = batch["prompt_len_B"].astype(jnp.int32)
  cache = transformer.init_cache(setup.slm, B, L)
  logits_BxPxV, hidden_BxPxD, cache = transformer.apply(
      slm_params, setup.slm, prompt_BxP, transformer.default_positions(prompt_BxP), cache)
  state = dict(
      ctx=pad_BxL.at[:, :P].set(prompt_BxP), ctx_len=prompt_len_B,
      red=pad_BxL.at[:, :P].set(batch["redacted_prompt_BxP"]),
      red_len=batch["redacted_prompt_len_B"].astype(jnp.int32),
      writer=jnp.zeros((B, L), jnp.int32), cache=cache,
      logits=_at(logits_BxPxV, prompt_len_B - 1), hidden=_at(hidden_BxPxD, prompt_len_B - 1),
      done=jnp.zeros((B,), bool), calls=jnp.zeros((B,), jnp.int32),
      llm_tokens=jnp.zeros((B,), jnp.int32), context_tokens=jnp.zeros((B,), jnp.int32),
      exposed=jnp.zeros((B,), jnp.int32), overflow=jnp.zeros((B,), jnp.int32), rng=rng,
      # The LLM's per-row state (see _catch_up): its memory scales with B, its compute with
      # the calls made.
      llm=dict(cache=transformer.init_cache(setup.llm, B, L + K),
               synced_B=jnp.zeros((B,), jnp.int32), red_B=jnp.zeros((B,), bool),
               logits_BxV=jnp.zeros((B, setup.llm.vocab_size), jnp.float32),
               hidden_BxD=jnp.zeros((B, setup.llm.d_model), setup.llm.activation_dtype)))
  step_kw = dict(num_tokens=K, granularity=cfg.granularity, sp=sp)
  sizes = llm_call_sizes(C, cfg.llm_sizes)

  def step_fn(state, s):
    rng, draft_rng, gate_rng, llm_rng = jax.random.split(state["rng"], 4)
    active_B = ~state["done"]
    # 1. The SLM drafts its own step.
    draft_BxK, draft_len_B, draft_logp_BxK, cache, logits_BxV, hidden_BxD = decode_step(
        slm_params, setup.slm, state["cache"], state["logits"], state["hidden"],
        state["ctx_len"], active_B, draft_rng, temperature=cfg.slm_temperature, **step_kw)
    drafted_BxK = jnp.arange(K) < draft_len_B[:, None]
    draft_mean_B = draft_logp_BxK.sum(-1) / jnp.maximum(draft_len_B, 1)
    draft_min_B = jnp.min(jnp.where(drafted_BxK, draft_logp_BxK, 0.0), axis=-1)
    ref_BxK, ref_len_B = batch["ref_steps_BxSxK"][:, s], batch["ref_len_BxS"][:, s]
    differs_B = (draft_len_B != ref_len_B) | jnp.any(drafted_BxK & (draft_BxK != ref_BxK), -1)

    # 2. The policy picks a request kind; asking needs budget left.
    scalars_BxF = gating.scalar_features(draft_mean_B, draft_min_B, s, S, state["calls"],
                                         cfg.budget)
    mask_BxA = ~asks_A[None, :] | (state["calls"] < cfg.budget)[:, None]
    row_rngs_B = jax.vmap(jax.random.fold_in, (None, 0))(gate_rng, batch["row_id_B"])
    action_B, logp_B = _choose(setup, gate_params, state["hidden"], scalars_BxF, mask_BxA,
                               draft_min_B, differs_B, s, policy_value, row_rngs_B)
    action_B = jnp.where(active_B, action_B, 0)

    # 3.-4. Route at most C asking rows to the LLM (gather -> catch up -> decode -> absorb),
    # on the smallest compiled size that holds them; no asking row, no LLM call.
    want_B = active_B & asks_A[action_B]
    rank_B = jnp.cumsum(want_B) - 1
    routed_B = want_B & (rank_B < C)
    idx_C = jnp.nonzero(routed_B, size=C, fill_value=B)[0]  # B marks an empty slot
    n_routed = routed_B.sum()
    red_B = redacted_A[action_B]
    ctx = {k: state[k] for k in ("ctx", "ctx_len", "red", "red_len")}
    llm = _catch_up(state["llm"], setup=setup, llm_params=llm_params, ctx=ctx,
                    routed_B=routed_B, red_B=red_B, sizes=sizes)
    call_kw = dict(setup=setup, slm_params=slm_params, llm_params=llm_params, idx_C=idx_C,
                   red_B=red_B, rng=llm_rng, ctx=ctx)
    branches = [functools.partial(_no_call, C=C, K=K, pad=sp.pad)] + [
        functools.partial(_llm_call, N, **call_kw) for N in sizes]
    which = jnp.where(n_routed > 0, 1 + _smallest_size(sizes, n_routed), 0)
    (cache, logits_BxV, hidden_BxD, llm), llm_CxK, llm_len_C, src_len_C, exposed_C = (
        jax.lax.switch(which, branches, (cache, logits_BxV, hidden_BxD, llm)))

    # 5. Append the chosen step to both contexts.
    slot_B = jnp.clip(rank_B, 0, C - 1)
    step_BxK = jnp.where(routed_B[:, None], llm_CxK[slot_B], draft_BxK)
    step_len_B = jnp.where(active_B, jnp.where(routed_B, llm_len_C[slot_B], draft_len_B), 0)
    keep_BxK = jnp.arange(K) < step_len_B[:, None]
    red_step_BxK, red_step_len_B = _redact(step_BxK, step_len_B, sp,
                                           _span_open(state["ctx"], state["ctx_len"], sp))
    # A redacted request whose answer redaction changed: the LLM's cache holds its raw step,
    # not what the redacted context now says; it holds the context up to before the step.
    changed_B = (red_step_len_B != step_len_B) | jnp.any(keep_BxK & (red_step_BxK != step_BxK), -1)
    llm = dict(llm, synced_B=jnp.where(routed_B & llm["red_B"] & changed_B, state["red_len"],
                                       llm["synced_B"]))
    by_BxK = jnp.broadcast_to(jnp.where(routed_B, 2, 1)[:, None], (B, K))
    routed_i = routed_B.astype(jnp.int32)
    record = Step(
        action=action_B, logp=logp_B, valid=active_B, hidden=state["hidden"],
        scalars=scalars_BxF, mask=mask_BxA, routed=routed_B, overflow=want_B & ~routed_B,
        llm_tokens=routed_i * llm_len_C[slot_B], context_tokens=routed_i * src_len_C[slot_B],
        exposed=routed_i * exposed_C[slot_B], draft_min_logp=draft_min_B)
    state = dict(
        ctx=_write_rows(state["ctx"], state["ctx_len"], step_BxK, keep_BxK),
        ctx_len=state["ctx_len"] + step_len_B,
        red=_write_rows(state["red"], state["red_len"], red_step_BxK,
                        jnp.arange(K) < red_step_len_B[:, None]),
        red_len=state["red_len"] + red_step_len_B,
        writer=_write_rows(state["writer"], state["ctx_len"], by_BxK, keep_BxK),
        cache=cache, logits=logits_BxV, hidden=hidden_BxD,
        done=state["done"] | jnp.any(keep_BxK & (step_BxK == sp.eos), -1),
        calls=state["calls"] + routed_i,
        llm_tokens=state["llm_tokens"] + record.llm_tokens,
        context_tokens=state["context_tokens"] + record.context_tokens,
        exposed=state["exposed"] + record.exposed,
        overflow=state["overflow"] + record.overflow.astype(jnp.int32), rng=rng, llm=llm)
    return state, record

  state, steps = jax.lax.scan(step_fn, state, jnp.arange(S))
  final = Final(
      tokens_BxL=state["ctx"], length_B=state["ctx_len"], writer_BxL=state["writer"],
      correct_B=_final_line_correct(state["ctx"], state["ctx_len"], batch["answer_BxA"], sp),
      calls_B=state["calls"], llm_tokens_B=state["llm_tokens"],
      context_tokens_B=state["context_tokens"], exposed_B=state["exposed"],
      overflow_B=state["overflow"], done_B=state["done"])
  return steps, final
