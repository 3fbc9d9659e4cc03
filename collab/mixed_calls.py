"""LLM calls of a pair with two tokenizers (Setup.handoff; collab/handoff.py says what crosses).

Per decision step with calls, on the routed rows only (the smallest compiled row count that
holds them, as collab/llm_calls.py runs the same-tokenizer calls):
  1. `translate_in`: the host re-encodes each routed row's solution text (full or redacted, as
     it asks) in LLM ids; the LLM's stream of the row becomes its LLM prompt and that text.
     Where the new stream differs from the old one (a line continued, the other kind of
     request), the LLM's cache is marked stale from there. Rows whose text does not fit or
     does not survive the round trip are not served;
  2. `llm_calls.catch_up` reads the stream into the LLM's per-row cache, as for one tokenizer;
  3. `llm_call`: the LLM writes its step in its ids; the host turns it into SLM ids; the SLM
     absorbs it. The LLM's cache is left holding the context before its step: its step is read
     back from the stream at the row's next call, in the ids the stream holds (its own text,
     re-encoded), so the stream stays the one truth of what the LLM has read.
Redacted requests translate the redacted SLM stream, so private tokens never reach the LLM;
private tokens are counted in the LLM ids sent.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from collab import llm_calls
from collab import privacy
from collab import rollout_types
from collab.models import decode
from collab.models import transformer

_I32 = jnp.int32


def init_llm(setup: rollout_types.Setup, batch) -> dict:
  """The LLM's per-row state (llm_calls.catch_up's) plus its stream: ids_BxLl (its prompt,
  then the solution in LLM ids) and len_B. Ll = the LLM prompt's width + Ls."""
  hand = setup.handoff
  prompt_BxPl = batch["llm_prompt_BxP"].astype(_I32)
  B, Pl = prompt_BxPl.shape
  Ll = Pl + hand.llm_solution_tokens
  ids_BxLl = jnp.full((B, Ll), hand.llm_tok.pad_id, _I32).at[:, :Pl].set(prompt_BxPl)
  return dict(cache=transformer.init_cache(setup.llm, B, Ll + hand.llm_step_tokens),
              synced_B=jnp.zeros((B,), _I32), red_B=jnp.zeros((B,), bool),
              logits_BxV=jnp.zeros((B, setup.llm.vocab_size), jnp.float32),
              hidden_BxD=jnp.zeros((B, setup.llm.d_model), setup.llm.activation_dtype),
              ids_BxLl=ids_BxLl, len_B=batch["llm_prompt_len_B"].astype(_I32))


def llm_view(setup: rollout_types.Setup) -> rollout_types.Setup:
  """setup as the LLM's side sees it: its specials, its step length."""
  hand = setup.handoff
  return dataclasses.replace(
      setup, specials=hand.llm_specials, handoff=None,
      rollout=dataclasses.replace(setup.rollout, step_tokens=hand.llm_step_tokens))


def stream_ctx(llm) -> dict:
  """The LLM's stream in the form catch_up reads (one stream: the kind last translated)."""
  return dict(ctx=llm["ids_BxLl"], ctx_len=llm["len_B"], red=llm["ids_BxLl"],
              red_len=llm["len_B"])


def _rows(idx_C, N, B):
  idx_N = idx_C[:N]
  return idx_N, idx_N < B, jnp.minimum(idx_N, B - 1)


def translate_in(N, llm, *, setup: rollout_types.Setup, idx_C, red_B, ctx, batch):
  """The LLM streams of the first N routed slots of idx_C, re-encoded from the SLM's text.
  Returns (llm, served_C): served is False for a slot whose text could not be handed over."""
  hand, B = setup.handoff, red_B.shape[0]
  idx_N, ok_N, row_N = _rows(idx_C, N, B)
  red_N = red_B[row_N]
  pick = lambda red, full: jnp.where(red_N.reshape((N,) + (1,) * (red.ndim - 1)),
                                     red[row_N], full[row_N])
  src_NxL = pick(ctx["red"], ctx["ctx"])
  start_N = pick(batch["redacted_prompt_len_B"], batch["prompt_len_B"]).astype(_I32)
  end_N = jnp.where(ok_N, pick(ctx["red_len"], ctx["ctx_len"]), start_N)  # empty slot: no text
  Ls = hand.llm_solution_tokens
  sol_NxLs, sol_len_N, fits_N = jax.pure_callback(
      hand.to_llm, (jax.ShapeDtypeStruct((N, Ls), _I32), jax.ShapeDtypeStruct((N,), _I32),
                    jax.ShapeDtypeStruct((N,), jnp.bool_)),
      src_NxL, start_N, end_N, vmap_method="sequential")
  prompt_NxPl = pick(batch["llm_redacted_prompt_BxP"], batch["llm_prompt_BxP"]).astype(_I32)
  prompt_len_N = pick(batch["llm_redacted_prompt_len_B"], batch["llm_prompt_len_B"]).astype(_I32)
  Ll = llm["ids_BxLl"].shape[1]
  pos_NxLl = jnp.arange(Ll)[None, :]
  sol_at_NxLl = jnp.clip(pos_NxLl - prompt_len_N[:, None], 0, Ls - 1)
  new_NxLl = jnp.where(pos_NxLl < prompt_len_N[:, None],
                       jnp.pad(prompt_NxPl, ((0, 0), (0, Ll - prompt_NxPl.shape[1]))),
                       jnp.take_along_axis(sol_NxLs, sol_at_NxLl, 1))
  new_len_N = prompt_len_N + sol_len_N
  new_NxLl = jnp.where(pos_NxLl < new_len_N[:, None], new_NxLl, hand.llm_tok.pad_id)
  # The LLM's cache holds the old stream up to synced: stale from the first changed token.
  old_NxLl, old_len_N = llm["ids_BxLl"][row_N], llm["len_B"][row_N]
  same_NxLl = (old_NxLl == new_NxLl) & (pos_NxLl < jnp.minimum(old_len_N, new_len_N)[:, None])
  first_N = jnp.min(jnp.where(same_NxLl, Ll, pos_NxLl), axis=-1)
  served_N = ok_N & fits_N
  write_N = jnp.where(served_N, idx_N, B)
  llm = dict(llm, ids_BxLl=llm["ids_BxLl"].at[write_N].set(new_NxLl, mode="drop"),
             len_B=llm["len_B"].at[write_N].set(new_len_N, mode="drop"),
             synced_B=llm["synced_B"].at[write_N].set(
                 jnp.minimum(llm["synced_B"][row_N], first_N), mode="drop"))
  C = idx_C.shape[0]
  return llm, jnp.ones((C,), bool).at[:N].set(served_N | ~ok_N)


def llm_call(N, ops, *, setup: rollout_types.Setup, slm_params, llm_params, idx_C, red_B, ctx,
             batch, rng):
  """The LLM writes the step of the first N routed slots from its caught-up caches; the host
  turns it into SLM ids and the SLM absorbs it. ops: (SLM cache, logits_BxV, hidden_BxD, llm).
  Returns ops, and per slot (padded to C): the step in SLM ids, its SLM length, the LLM tokens
  written, the LLM tokens sent, the private ones among them, and whether the step was handed
  over (False: its text does not survive the round trip; the row keeps its draft)."""
  hand, cfg = setup.handoff, setup.rollout
  lsp = hand.llm_specials
  cache, logits_BxV, hidden_BxD, llm = ops
  B = red_B.shape[0]
  K, Kl, C = cfg.step_tokens, hand.llm_step_tokens, idx_C.shape[0]
  idx_N, ok_N, row_N = _rows(idx_C, N, B)
  src_NxLl, src_len_N = llm["ids_BxLl"][row_N], llm["len_B"][row_N]
  gen_NxKl, gen_len_N, *_ = decode.decode_step(
      llm_params, setup.llm, llm_calls.gather(llm["cache"], row_N), llm["logits_BxV"][row_N],
      llm["hidden_BxD"][row_N], src_len_N, ok_N, rng, num_tokens=Kl,
      **rollout_types.step_ends(cfg, lsp), pad=lsp.pad, temperature=cfg.llm_temperature,
      kv_buckets=cfg.kv_buckets)
  # Redacted rows' streams hold no private token: this counts what a full request sent.
  sent_NxLl = jnp.arange(src_NxLl.shape[1]) < src_len_N[:, None]
  exposed_N = jnp.sum(privacy.private_mask(src_NxLl, lsp) & sent_NxLl, -1)

  ctx_len_N = ctx["ctx_len"][row_N]
  step_NxK, step_len_N, handed_N = jax.pure_callback(
      hand.to_slm, (jax.ShapeDtypeStruct((N, K), _I32), jax.ShapeDtypeStruct((N,), _I32),
                    jax.ShapeDtypeStruct((N,), jnp.bool_)),
      gen_NxKl, gen_len_N, src_NxLl, src_len_N, ctx["ctx"][row_N],
      batch["prompt_len_B"][row_N].astype(_I32), ctx_len_N, vmap_method="sequential")
  # The SLM absorbs the step (rows whose step was handed over).
  cache, logits_BxV, hidden_BxD = llm_calls.absorb(
      setup, slm_params, (cache, logits_BxV, hidden_BxD), step_NxK, step_len_N,
      ctx["ctx_len"], row_N, jnp.where(ok_N & handed_N, idx_N, B))
  pad = functools.partial(llm_calls.pad_slots, C)
  return ((cache, logits_BxV, hidden_BxD, llm), pad(step_NxK, setup.specials.pad),
          pad(step_len_N, 0), pad(gen_len_N, 0), pad(src_len_N, 0), pad(exposed_N, 0),
          pad(handed_N | ~ok_N, True))


def no_call(ops, *, C, K, pad):
  zeros_C = jnp.zeros((C,), _I32)
  return (ops, jnp.full((C, K), pad, _I32), zeros_C, zeros_C, zeros_C, zeros_C,
          jnp.ones((C,), bool))


def route(state, *, setup: rollout_types.Setup, slm_params, llm_params, routed_B, red_B,
          ops, batch, sizes, rng):
  """Steps 3-4 of the rollout for a mixed pair. ops: (SLM cache, logits_BxV, hidden_BxD).
  Returns (ops, llm, routed_B: the rows the LLM read and wrote for, and per slot (the routed
  rows in row order): step_CxK in SLM ids, step_len_C, gen_len_C (LLM tokens written),
  src_len_C (LLM tokens sent), exposed_C, handed_C (False: the step could not be handed back,
  and the row keeps its draft; the LLM's work is still counted)."""
  cfg = setup.rollout
  B = routed_B.shape[0]
  C, K = sizes[-1], cfg.step_tokens
  ctx = {k: state[k] for k in ("ctx", "ctx_len", "red", "red_len")}
  which = lambda n: jnp.where(n > 0, 1 + llm_calls.smallest_size(sizes, n), 0)

  # 1. Re-encode the routed rows' text for the LLM; rows that cannot be handed over drop out.
  idx_C = jnp.nonzero(routed_B, size=C, fill_value=B)[0]
  llm, served_C = jax.lax.switch(
      which(routed_B.sum()),
      [lambda llm: (llm, jnp.ones((C,), bool))] + [
          functools.partial(translate_in, N, setup=setup, idx_C=idx_C, red_B=red_B, ctx=ctx,
                            batch=batch) for N in sizes], state["llm"])
  routed_B = routed_B & jnp.ones((B,), bool).at[idx_C].set(served_C, mode="drop")

  # 2.-3. Catch up on the LLM's stream, write the step, hand it back.
  idx_C = jnp.nonzero(routed_B, size=C, fill_value=B)[0]
  view = llm_view(setup)
  llm = llm_calls.catch_up(llm, setup=view, llm_params=llm_params, ctx=stream_ctx(llm),
                           routed_B=routed_B, red_B=red_B, sizes=sizes)
  call_kw = dict(setup=setup, slm_params=slm_params, llm_params=llm_params, idx_C=idx_C,
                 red_B=red_B, ctx=ctx, batch=batch, rng=rng)
  branches = [functools.partial(no_call, C=C, K=K, pad=setup.specials.pad)] + [
      functools.partial(llm_call, N, **call_kw) for N in sizes]
  (cache, logits_BxV, hidden_BxD, llm), step_CxK, step_len_C, gen_len_C, src_len_C, \
      exposed_C, handed_C = jax.lax.switch(which(routed_B.sum()), branches, ops + (llm,))
  return (cache, logits_BxV, hidden_BxD), llm, routed_B, (step_CxK, step_len_C, gen_len_C,
                                                          src_len_C, exposed_C, handed_C)
