"""The collaborative rollout: what each policy writes, routing, capacity, budget and privacy."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab import draft_kinds
from collab import gating
from collab import privacy
from collab import rollout as rollout_lib
from collab.data import episodes
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import decode
from collab.models import presets
from collab.models import transformer

S, K, P = 4, 6, 32


@pytest.fixture(scope="module")
def env():
  task_cfg = task_lib.TaskConfig(num_train=200, num_validation=16, num_test=16)
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(task_cfg, 500), vocab_size=256)
  records = [{"question": p.question, "steps": list(p.step_texts)}
             for p in task_lib.generate_split(task_cfg, "test")[:8]]
  slm_cfg = presets.get_model_config("test_tiny", tok.vocab_size)
  llm_cfg = presets.get_model_config("gpt2_tiny", tok.vocab_size)
  slm = transformer.init_params(slm_cfg, jax.random.PRNGKey(1))
  llm = transformer.init_params(llm_cfg, jax.random.PRNGKey(2))
  gate_cfg = gating.GateConfig()
  gate = gating.init_gate(gate_cfg, slm_cfg.d_model, jax.random.PRNGKey(3))
  batch = episodes.make_episodes(records, tok, prompt_len=P, num_steps=S, step_tokens=K)
  setup = rollout_lib.Setup(slm=slm_cfg, llm=llm_cfg, gate=gate_cfg,
                            # One LLM call size and the whole cache: a third of the compile
                            # time; tests/test_benchmarks.py runs the rollout with several
                            # of each against a Python loop that has neither.
                            rollout=rollout_lib.RolloutConfig(num_steps=S, step_tokens=K,
                                                              llm_sizes=1, kv_buckets=1),
                            specials=rollout_lib.Specials.from_tokenizer(tok))
  return dict(tok=tok, slm=slm, llm=llm, gate=gate, batch=batch, setup=setup)


def _args(env, policy, value=0.0):
  return policy.args(S, env["setup"].gate.actions, value)


def _run(env, policy=rollout_lib.Policy(), batch=None, value=0.0, gate=None, **rollout_kw):
  setup = env["setup"]
  setup = dataclasses.replace(setup, rollout=dataclasses.replace(setup.rollout, **rollout_kw))
  return rollout_lib.rollout(env["slm"], env["llm"], env["gate"] if gate is None else gate,
                             batch if batch is not None else env["batch"],
                             jax.random.PRNGKey(0), _args(env, policy, value), setup=setup)


def _written(final, batch, b):
  start = int(batch["prompt_len_B"][b])
  return np.asarray(final.tokens_BxL[b, start:int(final.length_B[b])])


def _generated(params, cfg, batch, b, stop):
  new, n = decode.generate(params, cfg, batch["prompt_BxP"], batch["prompt_len_B"],
                           max_new_tokens=S * K, stop_id=stop, pad_id=0)
  return np.asarray(new[b, :int(n[b])])


@pytest.mark.parametrize("policy,model", [("self", "slm"), ("always", "llm")])
def test_static_policies_write_what_the_model_would(env, policy, model):
  """SLM alone (and LLM alone) through the rollout equals plain greedy generation."""
  steps, final = _run(env, rollout_lib.Policy(kind=policy), granularity="tokens")
  cfg = env["setup"].slm if model == "slm" else env["setup"].llm
  for b in range(3):
    np.testing.assert_array_equal(
        _written(final, env["batch"], b),
        _generated(env[model], cfg, env["batch"], b, env["tok"].eos_id))
  expected_calls = 0 if policy == "self" else np.asarray(steps.valid).sum(0)
  np.testing.assert_array_equal(final.calls_B, expected_calls)
  writer = np.asarray(final.writer_BxL)
  assert set(np.unique(writer[:, P:])) <= {0, 1 if policy == "self" else 2}


def test_rows_that_do_not_ask_cost_the_llm_nothing(env):
  steps, final = _run(env, rollout_lib.Policy(kind="self"))
  assert int(final.calls_B.sum()) == 0 and int(final.llm_tokens_B.sum()) == 0
  assert int(final.context_tokens_B.sum()) == 0
  # Rows that never ask write exactly what they write alone, whatever the others do.
  _, mixed = _run(env, rollout_lib.Policy(kind="random"), value=0.2)
  never_asked = np.asarray(mixed.calls_B) == 0
  assert never_asked.any() and (~never_asked).any()
  for b in np.flatnonzero(never_asked):
    np.testing.assert_array_equal(_written(mixed, env["batch"], b),
                                  _written(final, env["batch"], b))


def test_llm_compute_scales_with_capacity_not_batch(env):
  def flops(capacity):
    setup = dataclasses.replace(env["setup"], rollout=dataclasses.replace(
        env["setup"].rollout, llm_capacity=capacity))
    lowered = rollout_lib.rollout.lower(env["slm"], env["llm"], env["gate"], env["batch"],
                                        jax.random.PRNGKey(0),
                                        _args(env, rollout_lib.Policy(kind="always")),
                                        setup=setup)
    # XLA's cost analysis of the lowered program: no compile needed.
    return lowered.cost_analysis()["flops"]
  f_self = flops(1)
  f_half, f_full = flops(4), flops(8)
  # Each extra routed row costs the same; cost(8) - cost(4) ~ cost(4) - cost(1) * 4/3.
  assert f_full > f_half > f_self
  np.testing.assert_allclose((f_full - f_half) / 4, (f_half - f_self) / 3, rtol=0.05)


def test_rows_are_independent(env):
  _, final = _run(env, rollout_lib.Policy(kind="every_k", k=2))
  other = {k: v.copy() for k, v in env["batch"].items()}
  for key in ("prompt_BxP", "redacted_prompt_BxP"):
    other[key][1:] = np.roll(other[key][1:], 1, axis=0)
  for key in ("prompt_len_B", "redacted_prompt_len_B"):
    other[key][1:] = np.roll(other[key][1:], 1, axis=0)
  _, final2 = _run(env, rollout_lib.Policy(kind="every_k", k=2), batch=other)
  np.testing.assert_array_equal(_written(final, env["batch"], 0), _written(final2, other, 0))


def test_capacity_overflow_and_budget(env):
  """A capacity of 3 rows per call and a budget of 1 call per episode, in one rollout: every
  row wants to ask until its one call is spent; at most 3 of them are served per step, the
  rest keep their draft and are counted as overflow."""
  steps, final = _run(env, rollout_lib.Policy(kind="always"), llm_capacity=3, budget=1)
  routed_SxB, valid_SxB = np.asarray(steps.routed), np.asarray(steps.valid)
  calls_before_SxB = np.cumsum(routed_SxB, 0) - routed_SxB
  want_SxB = valid_SxB & (calls_before_SxB < 1)
  routed_S = routed_SxB.sum(1)
  assert (routed_S <= 3).all() and (routed_S == np.minimum(want_SxB.sum(1), 3)).all()
  np.testing.assert_array_equal(np.asarray(steps.overflow), want_SxB & ~routed_SxB)
  assert np.asarray(steps.overflow).sum() > 0 and int(final.calls_B.max()) == 1


def test_draft_free_policies_skip_the_draft_of_routed_rows_and_write_the_same(env):
  """`always` decides without the draft, so rows it routes to the LLM skip it; a threshold
  above every log-prob asks at the same steps but reads (so decodes) the draft. Under a
  capacity and a budget (overflow rows keep a draft), both write the same."""
  kw = dict(llm_capacity=3, budget=2)
  steps, final = _run(env, rollout_lib.Policy(kind="always"), **kw)
  t_steps, t_final = _run(env, rollout_lib.Policy(kind="threshold"), value=1e9, **kw)
  for field in final._fields:
    np.testing.assert_array_equal(getattr(final, field), getattr(t_final, field), field)
  routed, overflow = np.asarray(steps.routed), np.asarray(steps.overflow)
  assert overflow.any() and routed.any()
  assert (np.asarray(steps.draft_len)[routed] == 0).all()
  assert (np.asarray(t_steps.draft_len)[routed] > 0).all()
  assert (np.asarray(steps.draft_len)[overflow] > 0).all()


def test_redacted_requests_expose_no_private_tokens(env):
  _, full = _run(env, rollout_lib.Policy(kind="fixed", steps=(0,)))
  _, red = _run(env, rollout_lib.Policy(kind="fixed", steps=(0,), ask_kind="ask_redacted"))
  # The first step's context is the prompt: exposure = private tokens in the question.
  prompt = env["batch"]["prompt_BxP"]
  in_span = np.asarray(privacy.private_mask(jnp.asarray(prompt), env["setup"].specials))
  np.testing.assert_array_equal(full.exposed_B, in_span.sum(1))
  assert in_span.sum() > 0 and int(red.exposed_B.sum()) == 0
  assert int(red.calls_B.sum()) == len(prompt)


def test_redact_step_and_final_line_check(env):
  sp = env["setup"].specials
  tok = env["tok"]
  ids = tok.encode("<priv>592</priv> - 01 = 582")
  toks = jnp.asarray([ids + [sp.pad] * 3])
  red, n = privacy.redact(toks, jnp.asarray([len(ids)]), sp)
  assert tok.decode([int(t) for t in red[0, :int(n[0])]]) == tok.decode(
      tok.encode("<redacted> - 01 = 582"))
  answer = tok.encode("answer 582") + [sp.eos]
  line = [1, 5, 6, sp.sep] + answer
  ctx = jnp.asarray([line + [sp.pad] * 4, line[:-1] + [sp.pad] * 5])
  ans = jnp.asarray([answer + [sp.pad] * 2] * 2)
  ok = rollout_lib._final_line_correct(ctx, jnp.asarray([len(line), len(line) - 1]), ans, sp)
  np.testing.assert_array_equal(ok, [True, False])


def test_gate_mixture_routes_each_problem_by_the_gate_or_by_the_slm_alone(env):
  """A gate whose params carry a mixture probability p decides for a problem with probability
  p; every other problem is written by the SLM alone, exactly as without a gate."""
  sampled = rollout_lib.Policy(kind="gate")  # per-row streams: unchanged by the mixture
  _, gate_final = _run(env, sampled)
  _, self_final = _run(env, rollout_lib.Policy(kind="self"))
  assert int(gate_final.calls_B.sum()) > 0  # the untrained gate asks: the two differ

  def mixed(p):
    return _run(env, sampled, gate=dict(env["gate"], **{gating.MIX_KEY: jnp.float32(p)}))[1]

  def same(a, b, rows):
    return all(np.array_equal(_written(a, env["batch"], r), _written(b, env["batch"], r))
               and int(a.calls_B[r]) == int(b.calls_B[r]) for r in rows)

  rows = range(len(env["batch"]["row_id_B"]))
  assert same(mixed(1.0), gate_final, rows) and same(mixed(0.0), self_final, rows)
  half = mixed(0.5)
  by_gate = [r for r in rows if int(half.calls_B[r]) == int(gate_final.calls_B[r])
             and same(half, gate_final, [r])]
  by_slm = [r for r in rows if r not in by_gate]
  assert same(half, self_final, by_slm)
  # Both kinds of problem occur, so the draw is per row (not one coin for the batch).
  assert by_slm and any(int(gate_final.calls_B[r]) > 0 for r in by_gate), (by_gate, by_slm)


def test_line_kind_rule_asks_exactly_at_the_chosen_kinds(env):
  """The line-kind rule asks at a step iff the kind planned from the question for that step
  is in its set; steps of unknown kind (past the plan) never ask."""
  kinds_BxS = env["batch"]["kind_BxS"]
  assert (kinds_BxS[:, 0] == task_lib.STEP_KINDS.index("lookup")).all()
  for chosen in (("lookup",), ("mul", "answer")):
    steps, _ = _run(env, rollout_lib.Policy(kind="line_kind", line_kinds=chosen))
    want_SxB = np.isin(kinds_BxS, [task_lib.STEP_KINDS.index(k) for k in chosen]).T
    valid_SxB = np.asarray(steps.valid)
    np.testing.assert_array_equal(np.asarray(steps.action) == 1, want_SxB & valid_SxB)
    assert (want_SxB & valid_SxB).any()
  with pytest.raises(ValueError, match="Unknown line kinds"):
    rollout_lib.Policy(kind="line_kind", line_kinds=("divide",))


def test_draft_kind_rule_asks_at_the_kinds_read_from_the_draft(env):
  """The draft-kind rule asks at a step iff the kind read from the SLM's drafted line is in its
  set: at the first step (whose draft is SLM alone's first line) exactly the rows whose line
  is of a chosen kind; with every kind, at every step; with none, never."""
  # The untrained SLM's drafts read as text under the real table (tests/test_draft_kinds.py
  # checks the table): here every odd token id starts an answer line, so first steps differ.
  V = env["setup"].slm.vocab_size
  table = draft_kinds.TokenTable((0,) * V, tuple(i % 2 == 1 for i in range(V)))
  env = dict(env, setup=dataclasses.replace(env["setup"], draft_kinds=table))
  steps, final = _run(env, rollout_lib.Policy(kind="self"))
  first = [draft_kinds.classify_text(table, _written(final, env["batch"], b)[:n])
           for b, n in enumerate(np.asarray(steps.draft_len)[0])]
  assert set(first) == {"answer", "text"}, first
  steps, _ = _run(env, rollout_lib.Policy(kind="draft_kind", line_kinds=("answer",)))
  want_B = np.array([k == "answer" for k in first])
  np.testing.assert_array_equal(np.asarray(steps.action)[0] == 1, want_B)
  steps, _ = _run(env, rollout_lib.Policy(kind="draft_kind",
                                          line_kinds=draft_kinds.LINE_KINDS))
  np.testing.assert_array_equal(np.asarray(steps.action) == 1, np.asarray(steps.valid))
  steps, _ = _run(env, rollout_lib.Policy(kind="draft_kind", line_kinds=()))
  assert not np.asarray(steps.action).any()
  with pytest.raises(ValueError, match="Unknown line kinds"):
    rollout_lib.Policy(kind="draft_kind", line_kinds=("lookups",))


def test_two_values_mixed_per_problem(env):
  """value2 with probability mix, one draw per row id: a threshold that never asks mixed with
  one that always asks asks at every step of exactly the rows whose draw is below mix."""
  from collab import hull as hull_lib
  setup, batch = env["setup"], env["batch"]
  draws_B = hull_lib.draws(0, batch["row_id_B"])
  for mix in (0.0, 0.5, 1.0):
    args = rollout_lib.Policy(kind="threshold").args(S, setup.gate.actions, -1e9, 0.0, mix)
    steps, final = rollout_lib.rollout(env["slm"], env["llm"], env["gate"], batch,
                                       jax.random.PRNGKey(0), args, setup=setup)
    asked_B = np.asarray(final.calls_B) > 0
    np.testing.assert_array_equal(asked_B, draws_B < mix)
    np.testing.assert_array_equal(np.asarray(final.calls_B)[asked_B],
                                  np.asarray(steps.valid).sum(0)[asked_B])
  assert 0 < (draws_B < 0.5).sum() < len(draws_B)
  with pytest.raises(ValueError, match="mix"):
    rollout_lib.Policy(kind="threshold").args(S, setup.gate.actions, 0.0, 0.0, 1.5)


def test_a_gate_of_more_feature_layers_reads_them_and_the_rollout_writes_the_same(env):
  """feature_layers widens the SLM's hidden states along every path that writes them (prefill,
  draft, absorbing an LLM step): a fixed policy writes the same tokens, the first d_model
  features are the last layer's, and a gate of that width runs on them."""
  slm_cfg = env["setup"].slm
  D, F = slm_cfg.d_model, slm_cfg.num_layers + 1
  wide_gate_cfg = gating.GateConfig(feature_layers=F)
  wide = dict(env, setup=dataclasses.replace(
      env["setup"], slm=slm_cfg.replace(feature_layers=F), gate=wide_gate_cfg),
              gate=gating.init_gate(wide_gate_cfg, D, jax.random.PRNGKey(3)))
  every_2 = rollout_lib.Policy(kind="every_k", k=2)
  steps, final = _run(env, every_2)
  wide_steps, wide_final = _run(wide, every_2)
  assert int(np.asarray(final.calls_B).sum()) > 0  # LLM steps were absorbed
  np.testing.assert_array_equal(wide_final.tokens_BxL, final.tokens_BxL)
  assert wide_steps.hidden.shape == steps.hidden.shape[:-1] + (F * D,)
  np.testing.assert_allclose(wide_steps.hidden[..., :D], steps.hidden, atol=1e-5)
  gate_steps, _ = _run(wide, rollout_lib.Policy(kind="gate"))
  assert np.isfinite(np.asarray(gate_steps.logp)).all()


def test_a_gate_of_draft_states_reads_the_mean_state_at_its_draft_tokens(env):
  """gate.draft_states: the gate reads the SLM's state before the step and the mean of its
  states at the draft's tokens, which a forward pass over what the SLM wrote gives; the
  rollout writes the same tokens, and a gate of that width runs on them."""
  D = env["setup"].slm.d_model
  cfg = gating.GateConfig(draft_states=True)
  wide = dict(env, setup=dataclasses.replace(env["setup"], gate=cfg),
              gate=gating.init_gate(cfg, D, jax.random.PRNGKey(3)))
  steps, final = _run(env, rollout_lib.Policy(kind="self"))
  wide_steps, wide_final = _run(wide, rollout_lib.Policy(kind="self"))
  np.testing.assert_array_equal(wide_final.tokens_BxL, final.tokens_BxL)
  hidden_SxBxG = np.asarray(wide_steps.hidden)
  assert hidden_SxBxG.shape == steps.hidden.shape[:-1] + (2 * D,)
  np.testing.assert_allclose(hidden_SxBxG[..., :D], steps.hidden, atol=1e-5)
  tokens_BxL = final.tokens_BxL
  _, hidden_BxLxD, _ = transformer.apply(env["slm"], env["setup"].slm, tokens_BxL,
                                         transformer.default_positions(tokens_BxL))
  start_B = np.asarray(env["batch"]["prompt_len_B"]).astype(int)
  lens_SxB, valid_SxB = np.asarray(wide_steps.draft_len), np.asarray(wide_steps.valid)
  checked = 0
  for s in range(S):
    for b in range(len(start_B)):
      n = int(lens_SxB[s, b]) if valid_SxB[s, b] else 0
      want = np.asarray(hidden_BxLxD[b, start_B[b]:start_B[b] + n]).mean(0) if n else 0.0
      np.testing.assert_allclose(hidden_SxBxG[s, b, D:], want, atol=1e-4)
      checked += n > 0
      start_B[b] += n
  assert checked > S  # drafts of several steps and rows were compared
  gate_steps, _ = _run(wide, rollout_lib.Policy(kind="gate"))
  assert np.isfinite(np.asarray(gate_steps.logp)).all()
