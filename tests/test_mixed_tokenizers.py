"""SLM and LLM with different tokenizers in one rollout (collab/handoff.py, collab/mixed_calls.py).

Tokenizer A (SentencePiece BPE, 256 ids) is the SLM's; B (a SentencePiece char model on
the same corpus) the LLM's, so every step crosses between two very different segmentations.
"""
import jax
import numpy as np
import pytest

import fake_models
from collab import errors
from collab import gating
from collab import handoff as handoff_lib
from collab import parallel
from collab import rollout as rollout_lib
from collab.data import episodes
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import presets
from collab.models import transformer

S, K, P = 4, 10, 40
ACTIONS = ("self", "ask", "ask_redacted")
QUESTION = "my balance is <priv>592</priv> and the lamp costs 12"
SLM_LINE, LLM_LINE = "price=14", "answer=7"  # what the fake SLM and LLM write, every step


@pytest.fixture(scope="module")
def toks():
  corpus = task_lib.corpus_texts(task_lib.TaskConfig(num_train=200, num_validation=16,
                                                     num_test=16), 500)
  a = tokenizer_lib.train_tokenizer(corpus, vocab_size=256)
  b = tokenizer_lib.train_tokenizer(corpus, vocab_size=128, model_type="char")
  # C has no '9': text with one cannot cross to it unchanged.
  c = tokenizer_lib.train_tokenizer([t.replace("9", "8") for t in corpus], vocab_size=128,
                                    model_type="char")
  return dict(a=a, b=b, c=c)


def _chain(tok, line):
  return fake_models.chain_model(tok.encode(line), tok.sep_id, tok.vocab_size)


def _setup(slm_tok, slm_cfg, llm_cfg, handoff=None, **rollout_kw):
  rollout_kw = dict(dict(llm_sizes=1, kv_buckets=1), **rollout_kw)
  return rollout_lib.Setup(
      slm=slm_cfg, llm=llm_cfg, gate=gating.GateConfig(actions=ACTIONS),
      rollout=rollout_lib.RolloutConfig(num_steps=S, step_tokens=K, **rollout_kw),
      specials=rollout_lib.Specials.from_tokenizer(slm_tok), handoff=handoff)


def _handoff(slm_tok, llm_tok, **kw):
  return handoff_lib.make_handoff(slm_tok, llm_tok, step_tokens=K, num_steps=S,
                                  granularity="line", texts=[QUESTION, SLM_LINE, LLM_LINE], **kw)


def _batch(tok, questions, handoff=None):
  records = [{"question": q, "steps": ["x"]} for q in questions]
  batch = episodes.make_episodes(records, tok, prompt_len=P, num_steps=S, step_tokens=K)
  return handoff_lib.llm_prompts(batch, handoff) if handoff else batch


def _run(setup, slm, llm, batch, policy, value=0.0):
  gate = gating.init_gate(setup.gate, setup.slm.d_model, jax.random.PRNGKey(3))
  args = policy.args(S, ACTIONS, value)
  return jax.device_get(rollout_lib.rollout(slm, llm, gate, batch, jax.random.PRNGKey(0), args,
                                            setup=setup))


def _texts(tok, final, batch):
  return [tok.decode(final.tokens_BxL[b, batch["prompt_len_B"][b]:final.length_B[b]])
          for b in range(len(final.length_B))]


def test_a_mixed_pair_writes_what_a_same_tokenizer_pair_writes(toks):
  """The same SLM with a helper that writes LLM_LINE in A's ids, and with one that writes it
  in B's: the SLM's context, token for token, and every decision are the same. At most 2 of
  the 4 rows are served per step (on 1 or 2 compiled rows): the same rows overflow."""
  a, b = toks["a"], toks["b"]
  slm_cfg, slm = _chain(a, SLM_LINE)
  questions = [QUESTION, "the lamp costs 12", "price of the cup is 31", QUESTION]
  hand = _handoff(a, b)
  assert hand.llm_step_tokens > K  # B needs more tokens per line than A
  runs = {}
  for name, llm_tok, handoff in (("same", a, None), ("mixed", b, hand)):
    llm_cfg, llm = _chain(llm_tok, LLM_LINE)
    runs[name] = _run(_setup(a, slm_cfg, llm_cfg, handoff, llm_capacity=2, llm_sizes=2),
                      slm, llm,
                      _batch(a, questions, handoff), rollout_lib.Policy(kind="random"), 0.5)
  (same_steps, same), (mixed_steps, mixed) = runs["same"], runs["mixed"]
  for field in ("tokens_BxL", "length_B", "writer_BxL", "calls_B", "overflow_B"):
    np.testing.assert_array_equal(getattr(mixed, field), getattr(same, field), err_msg=field)
  for field in ("routed", "overflow", "action"):
    np.testing.assert_array_equal(getattr(mixed_steps, field), getattr(same_steps, field))
  assert mixed.overflow_B.sum() > 0
  texts = _texts(a, mixed, _batch(a, questions))
  assert 0 < int(mixed.calls_B.sum()) < S * len(questions)
  for b_, text in enumerate(texts):
    lines = text.split("\n")[:S]
    routed = mixed_steps.routed[:, b_]
    assert lines == [LLM_LINE if r else SLM_LINE for r in routed], lines


def test_token_counts_and_privacy_by_hand(toks):
  """One row, the LLM asked at steps 0 and 2 (full context, then redacted), counted in B's
  tokens: a char model, so a line of n characters is n + 1 tokens (its word-start mark), the
  markup one token each."""
  a, b = toks["a"], toks["b"]
  hand = _handoff(a, b)
  slm_cfg, slm = _chain(a, SLM_LINE)
  llm_cfg, llm = _chain(b, LLM_LINE)
  batch = _batch(a, [QUESTION], hand)
  # bos + QUESTION (52 characters, markup 13 of them in two tokens) + its word-start + sep.
  question_tokens = 52 - 13 + 2 + 1
  assert len(b.encode(QUESTION)) == question_tokens
  assert batch["llm_prompt_len_B"][0] == 1 + question_tokens + 1 == 44
  # "my balance is <redacted> and the lamp costs 12": 46 characters, 10 of them markup.
  assert batch["llm_redacted_prompt_len_B"][0] == 1 + (46 - 10 + 1 + 1) + 1 == 40
  line = {SLM_LINE: 8 + 1 + 1, LLM_LINE: 8 + 1 + 1}  # characters, word-start, sep
  setup = _setup(a, slm_cfg, llm_cfg, hand)
  for ask_kind, prompt, exposed in (("ask", 44, 5), ("ask_redacted", 40, 0)):
    steps, final = _run(setup, slm, llm, batch,
                        rollout_lib.Policy(kind="fixed", steps=(0, 2), ask_kind=ask_kind))
    np.testing.assert_array_equal(steps.routed[:, 0], [True, False, True, False])
    # Sent: the prompt; then the prompt, the LLM's line and the SLM's line.
    np.testing.assert_array_equal(steps.context_tokens[:, 0],
                                  [prompt, 0, prompt + line[LLM_LINE] + line[SLM_LINE], 0])
    np.testing.assert_array_equal(steps.llm_tokens[:, 0], [line[LLM_LINE], 0] * 2)
    # <priv> 5 9 2 </priv>: five private tokens per full request.
    np.testing.assert_array_equal(steps.exposed[:, 0], [exposed, 0, exposed, 0])
    assert int(final.exposed_B[0]) == 2 * exposed and int(final.calls_B[0]) == 2
    assert _texts(a, final, batch)[0].split("\n")[:S] == [LLM_LINE, SLM_LINE] * 2


def test_eight_devices_give_what_one_gives(toks):
  """Random models (steps cut mid-line, the LLM writing any characters) under pmap over 8
  fake devices give what one device gives on the whole batch."""
  assert jax.local_device_count() == 8
  a, b = toks["a"], toks["b"]
  hand = _handoff(a, b)
  slm_cfg = presets.get_model_config("test_tiny", a.vocab_size)
  llm_cfg = presets.get_model_config("test_tiny", b.vocab_size)
  slm = fake_models.scaled_logits(transformer.init_params(slm_cfg, jax.random.PRNGKey(1)), 4.0)
  llm = fake_models.scaled_logits(transformer.init_params(llm_cfg, jax.random.PRNGKey(2)), 4.0)
  records = [{"question": p.question, "steps": list(p.step_texts)}
             for p in task_lib.generate_split(task_lib.TaskConfig(num_test=16), "test")]
  batch = episodes.make_episodes(records, a, prompt_len=P, num_steps=S, step_tokens=K)
  batch = handoff_lib.llm_prompts(batch, hand)
  setup = _setup(a, slm_cfg, llm_cfg, hand)
  gate = gating.init_gate(setup.gate, slm_cfg.d_model, jax.random.PRNGKey(3))
  args = rollout_lib.Policy(kind="random").args(S, ACTIONS, 0.5)
  rng = jax.random.PRNGKey(0)
  one = jax.device_get(rollout_lib.rollout(slm, llm, gate, batch, rng, args, setup=setup))
  rep = lambda t: parallel.replicate(t)
  steps8, final8 = parallel.pmapped_rollout(setup)(rep(slm), rep(llm), rep(gate),
                                                   parallel.shard(batch), rng, args)
  steps8 = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1).reshape(
      (S, -1) + x.shape[3:]), steps8)
  eight = (steps8, parallel.unshard(final8))
  assert int(one[1].calls_B.sum()) > 0
  for got, want in zip(jax.tree.leaves(eight), jax.tree.leaves(one)):
    if np.issubdtype(want.dtype, np.floating):  # gate features: another batch, other rounding
      np.testing.assert_allclose(got, want, atol=1e-4)
    else:  # every token, decision and count
      np.testing.assert_array_equal(got, want)


def test_tokens_granularity_is_refused(toks):
  with pytest.raises(errors.ConfigError, match="granularity"):
    handoff_lib.make_handoff(toks["a"], toks["b"], step_tokens=K, num_steps=S,
                             granularity="tokens")
  cfg = presets.get_model_config("test_tiny", 256)
  with pytest.raises(errors.ConfigError, match="granularity"):
    rollout_lib.Setup(slm=cfg, llm=cfg, gate=gating.GateConfig(),
                      rollout=rollout_lib.RolloutConfig(granularity="tokens", step_tokens=K),
                      specials=rollout_lib.Specials.from_tokenizer(toks["a"]),
                      handoff=_handoff(toks["a"], toks["b"]))
  assert handoff_lib.make_handoff(toks["a"], toks["a"], step_tokens=K, num_steps=S,
                                  granularity="tokens") is None  # one tokenizer: ids, as before


def test_text_a_tokenizer_cannot_write_is_refused_or_kept_out(toks):
  """C has no '9'. The pair is refused, naming the pieces; a prompt with a '9' cannot be
  translated; with strict=False, rows whose text has a '9' are not served in either
  direction (the draft is kept and counted as overflow), never fed changed text."""
  a, c = toks["a"], toks["c"]
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="'9'"):
    _handoff(a, c)
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="'9'"):
    _handoff(c, a)
  hand = _handoff(a, c, strict=False)
  with pytest.raises(errors.DataError, match="cannot write"):
    _batch(a, [QUESTION], hand)
  # SLM (A) writes "price=19" at steps 0 and 2: the row cannot be sent to the LLM (C) after.
  slm_cfg, slm = _chain(a, "price=19")
  llm_cfg, llm = _chain(c, LLM_LINE)
  batch = _batch(a, ["the lamp costs 12"], hand)
  steps, final = _run(_setup(a, slm_cfg, llm_cfg, hand), slm, llm, batch,
                      rollout_lib.Policy(kind="every_k", k=2))
  assert not steps.routed.any() and int(final.calls_B[0]) == 0
  np.testing.assert_array_equal(steps.overflow[:, 0], [False, True, False, True])
  assert _texts(a, final, batch)[0].split("\n")[:S] == ["price=19"] * S
  # LLM (A) writes "answer=9": the SLM (C) cannot hold it; the LLM's work is still counted.
  hand = _handoff(c, a, strict=False)
  slm_cfg, slm = _chain(c, SLM_LINE)
  llm_cfg, llm = _chain(a, "answer=9")
  batch = _batch(c, ["the lamp costs 12"], hand)
  steps, final = _run(_setup(c, slm_cfg, llm_cfg, hand), slm, llm, batch,
                      rollout_lib.Policy(kind="always"))
  assert not steps.routed.any() and steps.overflow[:, 0].all()
  assert int(final.calls_B[0]) == S and (steps.llm_tokens[:, 0] > 0).all()
  assert _texts(c, final, batch)[0].split("\n")[:S] == [SLM_LINE] * S


def test_an_unk_crosses_as_unk(toks):
  """An <unk> a model wrote has no text to lose: it reaches the other side as <unk>; a
  character the other side lacks does not pass as one."""
  a, b = toks["a"], toks["b"]
  hand = _handoff(a, b)
  src = a.encode("price") + [a.unk_id] + a.encode("cost 12") + [a.sep_id]
  ids_1xLs, len_1, ok_1 = hand.to_llm(np.array([src]), np.array([0]), np.array([len(src)]))
  assert ok_1[0] and b.unk_id in ids_1xLs[0, :len_1[0]].tolist()
  assert not handoff_lib.same_text(" \u2047 ", "9") and handoff_lib.same_text("a \u2047 b", "a\u2047b")


def test_a_step_that_continues_a_line_is_encoded_with_it(toks):
  """A step cut inside a line, then continued by the LLM: its text is read after the LLM's
  part of the line (a word-start piece keeps its space), and the SLM gets the ids it would
  have for the whole line, not the continuation encoded as a line of its own; where no ids
  can continue the SLM's line, the step is not handed over."""
  a, b = toks["a"], toks["b"]
  hand = _handoff(a, b)

  def to_slm(head, line):
    """The SLM's ids after its unfinished line `head` when the LLM ends the line `line`."""
    slm_head, llm_head = a.encode(head), b.encode(head)
    step = b.encode(line)[len(llm_head):] + [b.sep_id]
    assert b.encode(line)[:len(llm_head)] == llm_head
    out_1xK, len_1, ok_1 = hand.to_slm(
        np.array([step]), np.array([len(step)]), np.array([[b.bos_id, b.sep_id] + llm_head]),
        np.array([2 + len(llm_head)]), np.array([[a.bos_id] + slm_head]), np.array([1]),
        np.array([1 + len(slm_head)]))
    return (a.decode(slm_head + out_1xK[0, :len_1[0]].tolist()) if ok_1[0] else None,
            out_1xK[0, :len_1[0]].tolist())

  # '▁price' then 'to' 'tal' '=' '5', not '▁total' ...
  assert to_slm("price", "pricetotal=5") == ("pricetotal=5\n",
                                              a.encode("pricetotal=5")[1:] + [a.sep_id])
  assert to_slm("price", "price =14")[0] == "price =14\n"  # the LLM's step starts with '▁'
  # '▁p' 'ri' then "ce=14": the whole line is '▁price' ..., and "ce=14" alone starts a word.
  assert to_slm("pri", "price=14")[0] is None
