"""The fitted baselines' pieces without a rollout: the line kinds a question plans, the convex
hull of a sweep and the mix that reaches a call rate, and the supervised router's training."""
import jax
import numpy as np
import pytest

from collab import gating
from collab import hull as hull_lib
from collab import router as router_lib
from collab.data import episodes as episodes_lib
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib


def test_the_question_plans_the_reference_step_kinds():
  cfg = task_lib.TaskConfig(num_train=300, num_validation=1, num_test=1, max_items=3)
  problems = task_lib.generate_split(cfg, "train")
  assert {len(p.steps) for p in problems} == {3, 4, 6, 7, 9, 10}  # 1-3 items, balance or not
  for p in problems:
    assert task_lib.plan_kinds(p.question) == p.step_kinds, p.question
  assert task_lib.plan_kinds("Natalia sold clips to 48 of her friends.") is None
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(cfg, 200), vocab_size=128)
  records = [{"question": p.question, "steps": list(p.step_texts)} for p in problems[:3]]
  records.append({"question": "how many?", "steps": ["1 + 1 = 2", "answer 2"]})
  ep = episodes_lib.make_episodes(records, tok, prompt_len=40, num_steps=6, step_tokens=16)
  for b, p in enumerate(problems[:3]):
    want = [task_lib.STEP_KINDS.index(k) for k in p.step_kinds][:6]
    np.testing.assert_array_equal(ep["kind_BxS"][b], want + [-1] * (6 - len(want)))
  assert (ep["kind_BxS"][3] == -1).all()


def test_upper_hull_and_the_mix_that_reaches_a_call_rate():
  pts = [(0.0, 0.2, "a"), (1.0, 0.3, "b"), (2.0, 0.6, "c"), (3.0, 0.65, "d"), (4.0, 0.6, "e"),
         (2.0, 0.1, "c_worse")]
  # b lies below the chord a-c; e is past the most accurate point.
  assert [name for *_, name in hull_lib.upper_hull(pts)] == ["a", "c", "d"]
  assert hull_lib.upper_hull([]) == []
  draws_N = np.array([0.9, 0.1, 0.5, 0.3])
  calls_a_N, calls_b_N = np.zeros(4), np.array([4.0, 4.0, 4.0, 0.0])
  # Rows by draw: 1 (+4), 3 (+0), 2 (+4), 0 (+4): 1 call per problem for the first two rows.
  p = hull_lib.mix_at(calls_a_N, calls_b_N, draws_N, 1.0)
  assert 0.3 < p <= 0.5
  assert np.mean(np.where(draws_N < p, calls_b_N, calls_a_N)) == 1.0
  assert hull_lib.mix_at(calls_a_N, calls_b_N, draws_N, 10.0) == 1.0
  assert hull_lib.mix_at(calls_a_N, calls_b_N, draws_N, 0.5) == pytest.approx(0.1)  # only a
  assert hull_lib.mix_at(np.ones(4), calls_b_N, draws_N, 0.5) == 0.0  # a alone spends more
  per = hull_lib.mixed({"correct": np.zeros(4), "calls": calls_a_N},
                       {"correct": np.ones(4), "calls": calls_b_N}, draws_N, p)
  np.testing.assert_array_equal(per["correct"], [0, 1, 0, 1])


def test_router_training_lowers_its_loss_where_the_label_is_learnable():
  """The label is a function of the hidden state: the cross-entropy falls well below chance,
  on the decisions it trained on and on held-out ones (the best held-out step is kept)."""
  cfg = gating.GateConfig()
  D, N = 16, 1000
  rng = np.random.default_rng(0)
  hidden_NxD = rng.normal(size=(N, D)).astype(np.float32)
  scalars_NxF = rng.normal(size=(N, gating.NUM_SCALAR_FEATURES)).astype(np.float32) * 0.1
  data = {"hidden_NxD": hidden_NxD, "scalars_NxF": scalars_NxF,
          "label_N": (hidden_NxD[:, 0] + hidden_NxD[:, 1] > 0).astype(np.float32)}
  params = gating.init_gate(cfg, D, jax.random.PRNGKey(0))
  trained, info = router_lib.train(params, cfg, data, steps=150, lr=3e-3, batch=128)
  assert info["train_loss_start"] == pytest.approx(np.log(2), abs=1e-3)  # zero output layer
  assert info["held_out_loss_start"] == pytest.approx(np.log(2), abs=1e-3)
  assert info["train_loss_end"] < 0.3 and info["held_out_loss_end"] < 0.35
  assert info["held_out"] == 200 and info["decisions"] == N and 0 < info["step_kept"] <= 150
  # Trained as the gate's head: same params tree, so it runs in the gate's rollout.
  assert jax.tree.structure(trained) == jax.tree.structure(params)
  z_N = np.asarray(router_lib.margin(trained, cfg, hidden_NxD, scalars_NxF))
  assert ((z_N > 0) == data["label_N"].astype(bool)).mean() > 0.8  # chance: 0.5
  # Its cut-offs by share: above the p of share s it asks at a share s of these decisions,
  # a higher share asking at a lower probability.
  cuts = router_lib.cutoffs(trained, cfg, data, (0.1, 0.5, 0.9))
  assert [c["share"] for c in cuts] == [0.1, 0.5, 0.9]
  assert cuts[0]["p"] > cuts[1]["p"] > cuts[2]["p"]
  p_N = 1 / (1 + np.exp(-z_N))
  for c in cuts:
    assert np.mean(p_N > c["p"]) == pytest.approx(c["share"], abs=0.01)
  with pytest.raises(ValueError, match="at least 2"):
    router_lib.train(params, cfg, {k: v[:1] for k, v in data.items()}, steps=1, lr=1e-2)
