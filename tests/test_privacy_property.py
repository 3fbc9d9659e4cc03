"""Property test (hypothesis): what the LLM is sent, and the exposure counter, over generated data.

For generated problems, random models and random gate/rollout keys, every context token fed
to the LLM is captured (a `jax.debug.callback` on the LLM's forward pass: tokens and cache
positions of each multi-token call, whether the rollout prefills whole contexts or catches a
per-row LLM cache up in chunks) and compared with an independent, pure-Python reconstruction
of each row's context:

* every fed token sits at its position in the redacted context of some row (each <priv>
  replaced by <redacted>, everything else inside a span dropped), or in the full context of a
  row that asked with `ask`; under `ask_redacted` alone, no private token reaches the LLM;
* the rollout's exposure counters equal the private tokens counted here, step by step, and
  its context-token counters the length of the context each call had.

Private tokens: a span runs from a <priv> to the next </priv>, markers included; spans do not
nest, and a </priv> outside a span is not private. The models sample at temperature 1, so they
write stray markers and spans that cross step boundaries, not only what the data holds.
Shapes are fixed: each setup compiles once, and hypothesis varies only the data.
"""
from __future__ import annotations

import types

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from collab import gating
from collab import llm_calls
from collab import privacy
from collab import rollout as rollout_lib
from collab.data import episodes
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import decode
from collab.models import presets
from collab.models import transformer

B, P, S = 8, 40, 6
CAPACITY = 6  # < B: some asks overflow, and unused slots exist


@pytest.fixture(scope="module")
def env():
  task_cfg = task_lib.TaskConfig(num_train=200, num_validation=16, num_test=16)
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(task_cfg, 500), vocab_size=256)
  return dict(tok=tok, world=task_lib.World(task_cfg),
              slm=presets.get_model_config("test_tiny", tok.vocab_size),
              llm=presets.get_model_config("gpt2_tiny", tok.vocab_size),
              sp=rollout_lib.Specials.from_tokenizer(tok))


@pytest.fixture(scope="module")
def captured():
  """Routes the rollout's transformer calls through a proxy that records what the LLM reads.

  The proxy is in place while this module's setups are traced (their shapes are used by no
  other test, so no cached compilation bypasses it)."""
  calls: list[np.ndarray] = []
  llm_cfgs: set = set()

  def apply(params, cfg, tokens, positions, cache=None, **kw):
    # Multi-token LLM calls read contexts; single tokens are the LLM's own output fed back.
    if cfg in llm_cfgs and tokens.shape[1] > 1:
      jax.debug.callback(lambda t, p: calls.append((np.asarray(t), np.asarray(p))), tokens,
                         positions, ordered=True)
    return transformer.apply(params, cfg, tokens, positions, cache, **kw)

  proxy = types.SimpleNamespace(apply=apply, init_cache=transformer.init_cache,
                                default_positions=transformer.default_positions)
  with pytest.MonkeyPatch.context() as mp:
    # Every module of the rollout that calls the models (the LLM reads contexts in llm_calls).
    for module in (rollout_lib, llm_calls, decode):
      mp.setattr(module, "transformer", proxy)
    yield calls, llm_cfgs


def _spans(tokens, sp, in_span=False):
  """Python reference: per token, whether it is private; and the state after the last one."""
  private = []
  for t in tokens:
    if t == sp.priv_open:
      in_span = True
    private.append(in_span)
    if t == sp.priv_close:
      in_span = False
  return private, in_span


def _redact(tokens, sp, in_span=False):
  """Python reference redaction: each <priv> becomes <redacted>, other private tokens go."""
  private, _ = _spans(tokens, sp, in_span)
  return [sp.redacted if t == sp.priv_open else t
          for t, p in zip(tokens, private) if not p or t == sp.priv_open]


def _cut_steps(written, num_steps, setup):
  """The written tokens cut back into the steps the rollout appended (independent of it)."""
  sp, K = setup.specials, setup.rollout.step_tokens
  ends = {sp.eos, sp.sep} if setup.rollout.granularity == "line" else {sp.eos}
  steps, i = [], 0
  for _ in range(num_steps):
    step = []
    while i < len(written) and len(step) < K:
      step.append(written[i])
      i += 1
      if step[-1] in ends:
        break
    steps.append(step)
  assert i == len(written), "the steps do not account for every written token"
  return steps


@st.composite
def problems(draw, world):
  """A generated problem: 1-2 distinct items, quantities, and maybe a private balance."""
  n = draw(st.integers(1, 2))
  ents = draw(st.lists(st.integers(0, len(world) - 1), min_size=n, max_size=n, unique=True))
  qtys = draw(st.lists(st.integers(1, world.cfg.qty_max), min_size=n, max_size=n))
  total = sum(q * world.price(e) for e, q in zip(ents, qtys))
  balance = draw(st.none() | st.integers(max(total, 100), 999))
  return task_lib.make_problem(world, ents, qtys, balance)


SETUPS = {
    # The learned gate's policy (untrained: uniform over self / ask / ask_redacted).
    "gate_line": dict(policy=rollout_lib.Policy(kind="gate"), granularity="line", K=8),
    "gate_tokens": dict(policy=rollout_lib.Policy(kind="gate"), granularity="tokens", K=3),
    # Only redacted requests, at a rate drawn per example (1.0: every step).
    "redacted_only": dict(policy=rollout_lib.Policy(kind="random", ask_kind="ask_redacted"),
                          granularity="line", K=8),
}


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_llm_input_and_exposure_counter(env, captured, name):
  calls, llm_cfgs = captured
  sp, world, tok = env["sp"], env["world"], env["tok"]
  spec = SETUPS[name]
  setup = rollout_lib.Setup(
      slm=env["slm"], llm=env["llm"], gate=gating.GateConfig(), specials=sp,
      rollout=rollout_lib.RolloutConfig(
          num_steps=S, step_tokens=spec["K"], granularity=spec["granularity"], budget=S,
          llm_capacity=CAPACITY, slm_temperature=1.0, llm_temperature=1.0,
          # Two LLM call sizes (the capacity-routed path with a choice), the whole cache: the
          # cache's buckets change which positions attention reads, not what is sent.
          llm_sizes=2, kv_buckets=1))
  llm_cfgs.add(setup.llm)
  actions = setup.gate.actions
  redacted_kinds = {actions.index(a) for a in rollout_lib.REDACTED_KINDS if a in actions}
  seen = {"redacted_private": 0, "written_markers": 0, "llm_rows": 0}
  compiled = []

  @settings(max_examples=12, deadline=None, derandomize=True, database=None,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: each example costs a rollout
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
  @given(problem_list=st.lists(problems(world), min_size=B, max_size=B),
         seeds=st.tuples(*[st.integers(0, 2**31 - 1)] * 4), rate=st.floats(0.0, 1.0))
  def check(problem_list, seeds, rate):
    records = [{"question": p.question, "steps": list(p.step_texts)} for p in problem_list]
    batch = episodes.make_episodes(records, tok, prompt_len=P, num_steps=S,
                                   step_tokens=spec["K"], granularity=spec["granularity"])
    # Models and gate are data too: new random weights each example, same compilation.
    slm = transformer.init_params(setup.slm, jax.random.PRNGKey(seeds[0]))
    llm = transformer.init_params(setup.llm, jax.random.PRNGKey(seeds[1]))
    gate = gating.init_gate(setup.gate, setup.slm.d_model, jax.random.PRNGKey(seeds[2]))
    calls.clear()
    steps, final = rollout_lib.rollout(slm, llm, gate, batch, jax.random.PRNGKey(seeds[3]),
                                       spec["policy"].args(S, actions, rate), setup=setup)
    jax.effects_barrier()
    compiled.append(rollout_lib.rollout._cache_size())  # pylint: disable=protected-access

    routed_SxB, action_SxB = np.asarray(steps.routed), np.asarray(steps.action)
    valid_SxB = np.asarray(steps.valid)
    exposed_SxB, context_SxB = np.asarray(steps.exposed), np.asarray(steps.context_tokens)
    tokens_BxL, length_B = np.asarray(final.tokens_BxL), np.asarray(final.length_B)
    expected_exposed_SxB = np.zeros_like(exposed_SxB)
    streams = []  # what the LLM may read: redacted contexts, and full ones of `ask` rows
    for b in range(B):
      plen = int(batch["prompt_len_B"][b])
      prompt = batch["prompt_BxP"][b, :plen].tolist()
      red_prompt = batch["redacted_prompt_BxP"][b, :int(batch["redacted_prompt_len_B"][b])]
      # The data pipeline's redacted prompt is the token-level redaction of the prompt.
      assert _redact(prompt, sp) == red_prompt.tolist()
      written = tokens_BxL[b, plen:int(length_B[b])].tolist()
      seen["written_markers"] += sum(t in (sp.priv_open, sp.priv_close) for t in written)
      context, asked_full = list(prompt), False
      for s, step in enumerate(_cut_steps(written, int(valid_SxB[:, b].sum()), setup)):
        if routed_SxB[s, b]:
          private, _ = _spans(context, sp)
          if action_SxB[s, b] in redacted_kinds:
            assert context_SxB[s, b] == len(_redact(context, sp))
            seen["redacted_private"] += any(private)
          else:
            assert context_SxB[s, b] == len(context)
            expected_exposed_SxB[s, b] = sum(private)
            asked_full = True
        context += step
      # Contexts only grow, so the final ones hold every earlier context as a prefix.
      streams.append(_redact(context, sp))
      if asked_full:
        streams.append(context)

    assert calls or not routed_SxB.any(), "the proxy saw no LLM call"
    for tokens_NxW, positions_NxW in calls:
      for tok_W, pos_W in zip(tokens_NxW.tolist(), positions_NxW.tolist()):
        fed = [(p, t) for p, t in zip(pos_W, tok_W) if p >= 0]  # -1: padding, not read
        seen["llm_rows"] += bool(fed)
        assert any(all(p < len(st) and st[p] == t for p, t in fed) for st in streams), (
            f"the LLM read tokens that are in no context it may see: {fed}")
    np.testing.assert_array_equal(exposed_SxB, expected_exposed_SxB)
    np.testing.assert_array_equal(np.asarray(final.exposed_B), expected_exposed_SxB.sum(0))
    if name == "redacted_only":
      assert int(np.asarray(final.exposed_B).sum()) == 0

  check()
  assert len(set(compiled)) == 1, compiled  # one compilation: only the data varied
  # Not vacuous: redacted asks of private contexts happened, and the models wrote markers.
  assert min(seen.values()) > 0, seen


def test_private_mask_and_redaction_match_the_reference(env):
  """The rollout's span mask and step redaction against the Python reference, on token strings
  full of stray, repeated and unclosed markers (one compilation: fixed shapes)."""
  sp = env["sp"]
  T, N = 12, 16
  mask_fn = jax.jit(lambda t, o: privacy.private_mask(t, sp, o))
  redact_fn = jax.jit(lambda t, n, o: privacy.redact(t, n, sp, o))
  alphabet = [sp.priv_open, sp.priv_close, 40, 41, sp.pad]

  @settings(max_examples=30, deadline=None, derandomize=True, database=None)
  @given(rows=st.lists(st.lists(st.sampled_from(alphabet), min_size=T, max_size=T),
                       min_size=N, max_size=N),
         lens=st.lists(st.integers(0, T), min_size=N, max_size=N),
         opens=st.lists(st.booleans(), min_size=N, max_size=N))
  def check(rows, lens, opens):
    tokens_NxT, len_N, open_N = np.array(rows), np.array(lens), np.array(opens)
    mask_NxT = np.asarray(mask_fn(tokens_NxT, open_N))
    red_NxT, red_len_N = map(np.asarray, redact_fn(tokens_NxT, len_N, open_N))
    for i in range(N):
      assert mask_NxT[i].tolist() == _spans(rows[i], sp, opens[i])[0], rows[i]
      want = _redact(rows[i][:lens[i]], sp, opens[i])
      assert red_NxT[i, :red_len_N[i]].tolist() == want, (rows[i], lens[i], opens[i])
      assert set(red_NxT[i, red_len_N[i]:].tolist()) <= {sp.pad}
    # The span state a context ends in, as the rollout carries it into the next step.
    got_open = np.asarray(privacy.span_open(tokens_NxT, len_N, sp))
    want_open = [_spans(r[:n], sp)[1] for r, n in zip(rows, lens)]
    np.testing.assert_array_equal(got_open, want_open)

  check()
