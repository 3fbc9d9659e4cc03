"""The collaborative rollout: SLM and LLM write a batch of solutions together, in one jit.

Per decision step s (outer `lax.scan`), for every row that is not finished:
  1. the SLM drafts the step it would write itself (an inner loop of at most K single-token
     steps with its KV cache, left once every row has ended its step; cached attention reads
     only the bucket of the cache that holds the positions in play, `kv_buckets`); the
     draft's token log-probs give the gate a confidence signal; rows that a policy deciding
     without the draft (always, every k, fixed steps, random, line kinds) sends to the LLM
     skip it;
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
An SLM and an LLM with different tokenizers (Setup.handoff) exchange text at step boundaries:
the LLM keeps its own stream in its ids, re-encoded on the host for the routed rows, and its
step comes back in SLM ids (collab/handoff.py, collab/mixed_calls.py). With one tokenizer
none of that is traced: the program is the same as without it.

Pieces: the config, policy and record types live in collab/rollout_types.py (re-exported
here), the LLM's catch-up and calls in collab/llm_calls.py, private spans and redaction in
collab/privacy.py, and token-by-token step decoding in collab/models/decode.py.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from collab import draft_kinds
from collab import gating
from collab import llm_calls
from collab import mixed_calls
from collab import privacy
from collab.models import decode
from collab.models import transformer
from collab.rollout_types import (  # noqa: F401  (re-exported: the rollout's public types)
    POLICY_KINDS, REDACTED_KINDS, Final, Policy, PolicyArgs, RolloutConfig, Setup, Specials,
    Step, solution_end_ids, step_end_ids, step_ends)

def _write_rows(buf_BxL, start_B, new_BxK, keep_BxK):
  """buf[b, start[b] + j] = new[b, j] where keep[b, j]; writes past the end are dropped."""
  K = new_BxK.shape[1]
  cols_BxK = start_B[:, None] + jnp.arange(K)
  cols_BxK = jnp.where(keep_BxK, cols_BxK, buf_BxL.shape[1])  # not kept: out of range
  rows_BxK = jnp.broadcast_to(jnp.arange(buf_BxL.shape[0])[:, None], cols_BxK.shape)
  return buf_BxL.at[rows_BxK, cols_BxK].set(new_BxK.astype(buf_BxL.dtype), mode="drop")


def value_mix_draws(rng, row_id_B):
  """One uniform draw per row id, fixed over the episode: a row uses PolicyArgs.value2 when
  its draw is below PolicyArgs.mix. A function of (rng, row id) only, so the host can
  predict which rows use which value (evaluate.hull_mix)."""
  key = jax.random.fold_in(rng, 0x76616c)  # 'val': independent of every other stream
  return jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r)))(row_id_B)


def _choose(setup: Setup, policy: PolicyArgs, gate_params, hidden_BxD, scalars_BxF, mask_BxA,
            draft_min_logp_B, draft_differs_B, kind_B, draft_kind_B, value_B, step, rng):
  """The policy's request kinds (within mask_BxA); returns (action_B, logp_B).

  Every policy kind is computed and `policy.kind` selects one (jnp.select), so the policy is
  data: one compiled rollout serves the gate and every baseline. The gate's head is tiny next
  to a decode step, so computing it for a baseline costs nothing measurable.
  rng: one key per row (B keys), so a row's sample does not depend on how the batch is split.
  """
  B = hidden_BxD.shape[0]
  raw_BxA = gating.gate_logits(gate_params, setup.gate, hidden_BxD, scalars_BxF)
  logits_BxA = jnp.where(mask_BxA, raw_BxA, -jnp.inf)
  explore_BxA = gating.explore_logits(logits_BxA, mask_BxA, setup.gate.explore)
  sampled_B = jax.vmap(jax.random.categorical)(rng, explore_BxA)
  gate_B = jnp.where(policy.greedy, jnp.argmax(logits_BxA, -1), sampled_B)
  logp_BxA = jax.nn.log_softmax(jnp.where(policy.greedy, logits_BxA, explore_BxA))
  gate_logp_B = jnp.take_along_axis(logp_BxA, gate_B[:, None], -1)[:, 0]

  kind = lambda name: policy.kind == POLICY_KINDS.index(name)
  # The router's P(draft wrong) > value, as a logit margin: ask - self > logit(value).
  p_B = jnp.clip(value_B, 1e-6, 1 - 1e-6)
  router_B = (raw_BxA[:, policy.ask_action] - raw_BxA[:, 0]) > jnp.log(p_B) - jnp.log1p(-p_B)
  ask_B = jnp.select(
      [kind("self"), kind("always"), kind("every_k"), kind("fixed"), kind("random"),
       kind("threshold"), kind("oracle"), kind("line_kind"), kind("router"),
       kind("draft_kind")],
      [jnp.zeros((B,), bool), jnp.ones((B,), bool),
       jnp.full((B,), step % policy.k == policy.k - 1),
       jnp.full((B,), policy.fixed_S[step]),
       jax.vmap(jax.random.uniform)(rng) < value_B,
       draft_min_logp_B < value_B,
       draft_differs_B,
       (kind_B >= 0) & policy.kinds_K[jnp.maximum(kind_B, 0)],
       router_B,
       (draft_kind_B >= 0) & policy.kinds_K[jnp.maximum(draft_kind_B, 0)]],
      jnp.zeros((B,), bool))
  base_B = jnp.where(ask_B, policy.ask_action, 0)
  base_B = jnp.where(mask_BxA[jnp.arange(B), base_B], base_B, 0)
  is_gate = kind("gate")
  action_B = jnp.where(is_gate, gate_B, base_B)
  return action_B.astype(jnp.int32), jnp.where(is_gate, gate_logp_B, 0.0)


def _gate_on(policy: PolicyArgs, gate_params, rng, row_id_B):
  """Rows the gate decides for, under a gate whose params carry a mixture probability p
  (gating.MIX_KEY): each problem is the gate's with probability p and the SLM's alone
  otherwise (one draw per row id, fixed over the episode); a baseline decides for every row.
  None (every row) for a gate without a mixture, so that rollout is traced as before."""
  if gating.MIX_KEY not in gate_params:
    return None
  key = jax.random.fold_in(rng, 0x6d6978)  # 'mix': independent of the per-step streams
  u_B = jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r)))(row_id_B)
  return (u_B < gate_params[gating.MIX_KEY]) | (policy.kind != POLICY_KINDS.index("gate"))


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


def _correct(setup: Setup, ctx_BxL, len_B, prompt_len_B, answer_BxA):
  """Which rows solved their problem: the last line compared in the graph, or (setup.scorer,
  imported pairs) answers extracted from the decoded text on the host, inside the same jit."""
  if setup.scorer is None:
    return _final_line_correct(ctx_BxL, len_B, answer_BxA, setup.specials)
  return jax.pure_callback(setup.scorer, jax.ShapeDtypeStruct(len_B.shape, jnp.bool_),
                           ctx_BxL, len_B, prompt_len_B, answer_BxA, vmap_method="sequential")


# Policy kinds whose decision reads nothing of the SLM's draft.
_DRAFT_FREE = tuple(POLICY_KINDS.index(k)
                    for k in ("always", "every_k", "fixed", "random", "line_kind"))


def _gate_hidden(setup: Setup, hidden_BxD, draft_mean_BxD):
  """The hidden features the gate reads: the SLM's state before the step, and with
  gate.draft_states the mean of its states at the draft's tokens."""
  if not setup.gate.draft_states:
    return hidden_BxD
  return jnp.concatenate([hidden_BxD, draft_mean_BxD.astype(hidden_BxD.dtype)], axis=-1)


def _routed_before_draft(setup: Setup, policy: PolicyArgs, gate_params, state, s, mask_BxA,
                         kind_B, value_B, row_rngs_B, C, call_price_B, asks_A):
  """Rows that a draft-free policy sends to the LLM this step (within capacity C), known
  before the draft: `_choose` on placeholder draft features, which these kinds do not read, so
  the choice after the draft is the same. No row with two tokenizers, where a step that
  cannot be handed back leaves the row its draft."""
  B = state["done"].shape[0]
  if setup.handoff is not None:
    return jnp.zeros((B,), bool)
  zeros_B = jnp.zeros((B,), jnp.float32)
  scalars_BxF = gating.scalar_features(zeros_B, zeros_B, s, setup.rollout.num_steps,
                                       state["calls"], setup.rollout.budget, call_price_B)
  hidden_BxG = _gate_hidden(setup, state["hidden"], jnp.zeros_like(state["hidden"]))
  action_B, _ = _choose(setup, policy, gate_params, hidden_BxG, scalars_BxF, mask_BxA,
                        zeros_B, jnp.zeros((B,), bool), kind_B, jnp.full((B,), -1), value_B,
                        s, row_rngs_B)
  want_B = ~state["done"] & asks_A[action_B] & jnp.isin(policy.kind, jnp.array(_DRAFT_FREE))
  return want_B & (jnp.cumsum(want_B) - 1 < C)


@functools.partial(jax.jit, static_argnames=("setup",))
def rollout(slm_params, llm_params, gate_params, batch, rng, policy: PolicyArgs, *,
            setup: Setup):
  """Runs a batch of problems to the end. Returns (Step records SxB..., Final).

  policy: who decides (`Policy(...).args(S, actions, value)`), traced: changing it does not
  recompile.
  batch: prompt_BxP / prompt_len_B (bos question <sep>), redacted_prompt_BxP /
  redacted_prompt_len_B, ref_steps_BxSxK / ref_len_BxS (reference steps, for the oracle),
  answer_BxA (reference answer line with <eos>, pad after), row_id_B (a global row index:
  policy samples use fold_in(rng, row_id), so they do not depend on the batch's split across
  devices). See collab/data/episodes.py. Optional: call_price_B, the call price each row's
  episode is charged, read by a price-conditioned gate. Pass the same rng on every device.
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
  # Vocabulary logits at the last prompt token alone (P x fewer projections: a real model's
  # vocabulary is most of a long prompt's prefill).
  logits_Bx1xV, hidden_BxPxD, cache = transformer.apply(
      slm_params, setup.slm, prompt_BxP, transformer.default_positions(prompt_BxP), cache,
      kv_buckets=cfg.kv_buckets, logits_at_B=prompt_len_B - 1)
  state = dict(
      ctx=pad_BxL.at[:, :P].set(prompt_BxP), ctx_len=prompt_len_B,
      red=pad_BxL.at[:, :P].set(batch["redacted_prompt_BxP"]),
      red_len=batch["redacted_prompt_len_B"].astype(jnp.int32),
      writer=jnp.zeros((B, L), jnp.int32), cache=cache,
      logits=logits_Bx1xV[:, 0], hidden=llm_calls.at(hidden_BxPxD, prompt_len_B - 1),
      done=jnp.zeros((B,), bool), calls=jnp.zeros((B,), jnp.int32),
      llm_tokens=jnp.zeros((B,), jnp.int32), context_tokens=jnp.zeros((B,), jnp.int32),
      exposed=jnp.zeros((B,), jnp.int32), overflow=jnp.zeros((B,), jnp.int32), rng=rng,
      # The LLM's per-row state (see llm_calls.catch_up): its memory scales with B, its compute with
      # the calls made.
      llm=dict(cache=transformer.init_cache(setup.llm, B, L + K),
               synced_B=jnp.zeros((B,), jnp.int32), red_B=jnp.zeros((B,), bool),
               logits_BxV=jnp.zeros((B, setup.llm.vocab_size), jnp.float32),
               hidden_BxD=jnp.zeros((B, setup.llm.d_model), setup.llm.activation_dtype))
      if setup.handoff is None else mixed_calls.init_llm(setup, batch))
  sizes = llm_calls.llm_call_sizes(C, cfg.llm_sizes)
  gate_on_B = _gate_on(policy, gate_params, rng, batch["row_id_B"])
  value_B = jnp.where(value_mix_draws(rng, batch["row_id_B"]) < policy.mix, policy.value2,
                      policy.value)
  kind_BxS = batch.get("kind_BxS", jnp.full((B, S), -1, jnp.int32))

  def step_fn(state, s):
    rng, draft_rng, gate_rng, llm_rng = jax.random.split(state["rng"], 4)
    active_B = ~state["done"]
    mask_BxA = ~asks_A[None, :] | (state["calls"] < cfg.budget)[:, None]
    row_rngs_B = jax.vmap(jax.random.fold_in, (None, 0))(gate_rng, batch["row_id_B"])
    # 1. The SLM drafts its own step, except in rows whose policy decides without the draft and
    # routes them to the LLM: the LLM's step replaces the draft there.
    draft_B = active_B & ~_routed_before_draft(setup, policy, gate_params, state, s, mask_BxA,
                                                kind_BxS[:, s], value_B, row_rngs_B, C,
                                                batch.get("call_price_B"), asks_A)
    draft_BxK, draft_len_B, draft_logp_BxK, cache, logits_BxV, hidden_BxD, *draft_mean = (
        decode.decode_step(slm_params, setup.slm, state["cache"], state["logits"],
                           state["hidden"], state["ctx_len"], draft_B, draft_rng, num_tokens=K,
                           **step_ends(cfg, sp), pad=sp.pad, temperature=cfg.slm_temperature,
                           kv_buckets=cfg.kv_buckets, mean_hidden=setup.gate.draft_states))
    gate_hidden_BxG = _gate_hidden(setup, state["hidden"], draft_mean[0] if draft_mean else None)
    drafted_BxK = jnp.arange(K) < draft_len_B[:, None]
    draft_mean_B = draft_logp_BxK.sum(-1) / jnp.maximum(draft_len_B, 1)
    draft_min_B = jnp.min(jnp.where(drafted_BxK, draft_logp_BxK, 0.0), axis=-1)
    ref_BxK, ref_len_B = batch["ref_steps_BxSxK"][:, s], batch["ref_len_BxS"][:, s]
    differs_B = (draft_len_B != ref_len_B) | jnp.any(drafted_BxK & (draft_BxK != ref_BxK), -1)
    draft_kind_B = (jnp.full((B,), -1, jnp.int32) if setup.draft_kinds is None
                    else draft_kinds.classify(setup.draft_kinds, draft_BxK, draft_len_B))

    # 2. The policy picks a request kind; asking needs budget left.
    scalars_BxF = gating.scalar_features(draft_mean_B, draft_min_B, s, S, state["calls"],
                                         cfg.budget, batch.get("call_price_B"))
    action_B, logp_B = _choose(setup, policy, gate_params, gate_hidden_BxG, scalars_BxF,
                               mask_BxA, draft_min_B, differs_B, kind_BxS[:, s],
                               draft_kind_B, value_B, s, row_rngs_B)
    action_B = jnp.where(active_B, action_B, 0)
    if gate_on_B is not None:
      action_B = jnp.where(gate_on_B, action_B, 0)
      logp_B = jnp.where(gate_on_B, logp_B, 0.0)

    # 3.-4. Route at most C asking rows to the LLM (gather -> catch up -> decode -> absorb),
    # on the smallest compiled size that holds them; no asking row, no LLM call.
    want_B = active_B & asks_A[action_B]
    rank_B = jnp.cumsum(want_B) - 1
    routed_B = want_B & (rank_B < C)
    if setup.handoff is None:
      idx_C = jnp.nonzero(routed_B, size=C, fill_value=B)[0]  # B marks an empty slot
      n_routed = routed_B.sum()
      red_B = redacted_A[action_B]
      ctx = {k: state[k] for k in ("ctx", "ctx_len", "red", "red_len")}
      llm = llm_calls.catch_up(state["llm"], setup=setup, llm_params=llm_params, ctx=ctx,
                               routed_B=routed_B, red_B=red_B, sizes=sizes)
      call_kw = dict(setup=setup, slm_params=slm_params, llm_params=llm_params, idx_C=idx_C,
                     red_B=red_B, rng=llm_rng, ctx=ctx)
      branches = [functools.partial(llm_calls.no_call, C=C, K=K, pad=sp.pad)] + [
          functools.partial(llm_calls.llm_call, N, **call_kw) for N in sizes]
      which = jnp.where(n_routed > 0, 1 + llm_calls.smallest_size(sizes, n_routed), 0)
      (cache, logits_BxV, hidden_BxD, llm), llm_CxK, llm_len_C, src_len_C, exposed_C = (
          jax.lax.switch(which, branches, (cache, logits_BxV, hidden_BxD, llm)))
      gen_len_C = llm_len_C  # the LLM's step is the step written
    else:  # two tokenizers: text crosses on the host (collab/handoff.py)
      red_B = redacted_A[action_B]
      (cache, logits_BxV, hidden_BxD), llm, routed_B, (
          llm_CxK, llm_len_C, gen_len_C, src_len_C, exposed_C, handed_C) = mixed_calls.route(
              state, setup=setup, slm_params=slm_params, llm_params=llm_params,
              routed_B=routed_B, red_B=red_B, ops=(cache, logits_BxV, hidden_BxD),
              batch=batch, sizes=sizes, rng=llm_rng)
      rank_B = jnp.cumsum(routed_B) - 1

    # 5. Append the chosen step to both contexts.
    slot_B = jnp.clip(rank_B, 0, C - 1)
    # took_B: the LLM's step is written (a mixed pair's step that cannot be handed back is not).
    took_B = routed_B if setup.handoff is None else routed_B & handed_C[slot_B]
    step_BxK = jnp.where(took_B[:, None], llm_CxK[slot_B], draft_BxK)
    step_len_B = jnp.where(active_B, jnp.where(took_B, llm_len_C[slot_B], draft_len_B), 0)
    keep_BxK = jnp.arange(K) < step_len_B[:, None]
    open_B = privacy.span_open(state["ctx"], state["ctx_len"], sp)
    red_step_BxK, red_step_len_B = privacy.redact(step_BxK, step_len_B, sp, open_B)
    # A redacted request whose answer redaction changed: the LLM's cache holds its raw step,
    # not what the redacted context now says; it holds the context up to before the step.
    # (A mixed pair's LLM re-reads its step from its own stream: collab/mixed_calls.py.)
    if setup.handoff is None:
      changed_B = (red_step_len_B != step_len_B) | jnp.any(
          keep_BxK & (red_step_BxK != step_BxK), -1)
      llm = dict(llm, synced_B=jnp.where(routed_B & llm["red_B"] & changed_B, state["red_len"],
                                         llm["synced_B"]))
    by_BxK = jnp.broadcast_to(jnp.where(took_B, 2, 1)[:, None], (B, K))
    routed_i = routed_B.astype(jnp.int32)
    record = Step(
        action=action_B, logp=logp_B, valid=active_B, hidden=gate_hidden_BxG,
        scalars=scalars_BxF, mask=mask_BxA, routed=took_B, overflow=want_B & ~took_B,
        llm_tokens=routed_i * gen_len_C[slot_B], context_tokens=routed_i * src_len_C[slot_B],
        exposed=routed_i * exposed_C[slot_B], draft_min_logp=draft_min_B,
        draft_len=draft_len_B, draft_differs=differs_B)
    state = dict(
        ctx=_write_rows(state["ctx"], state["ctx_len"], step_BxK, keep_BxK),
        ctx_len=state["ctx_len"] + step_len_B,
        red=_write_rows(state["red"], state["red_len"], red_step_BxK,
                        jnp.arange(K) < red_step_len_B[:, None]),
        red_len=state["red_len"] + red_step_len_B,
        writer=_write_rows(state["writer"], state["ctx_len"], by_BxK, keep_BxK),
        cache=cache, logits=logits_BxV, hidden=hidden_BxD,
        done=state["done"] | jnp.any(keep_BxK & (
            jnp.isin(step_BxK, jnp.asarray(solution_end_ids(sp))) if sp.stops
            else step_BxK == sp.eos), -1),
        calls=state["calls"] + routed_i,
        llm_tokens=state["llm_tokens"] + record.llm_tokens,
        context_tokens=state["context_tokens"] + record.context_tokens,
        exposed=state["exposed"] + record.exposed,
        overflow=state["overflow"] + record.overflow.astype(jnp.int32), rng=rng, llm=llm)
    return state, record

  state, steps = jax.lax.scan(step_fn, state, jnp.arange(S))
  final = Final(
      tokens_BxL=state["ctx"], length_B=state["ctx_len"], writer_BxL=state["writer"],
      correct_B=_correct(setup, state["ctx"], state["ctx_len"], prompt_len_B,
                         batch["answer_BxA"]),
      calls_B=state["calls"], llm_tokens_B=state["llm_tokens"],
      context_tokens_B=state["context_tokens"], exposed_B=state["exposed"],
      overflow_B=state["overflow"], done_B=state["done"])
  return steps, final
