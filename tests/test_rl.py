"""Rewards, group advantages, REINFORCE/PPO losses, optimizer masks and dual ascent."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from collab import rl

LN2, LN3 = np.log(2.0), np.log(3.0)
H_HALF_QUARTERS = 1.5 * LN2  # entropy of [1/2, 1/4, 1/4]


def _logits(*probs):
  """Logits log(p): log-softmax gives back log(p) exactly, so log-probs are hand-known."""
  return np.log(np.asarray(probs, np.float32))


def test_episode_reward_with_costs_float_and_traced():
  correct, calls = jnp.array([1, 1, 0, 0]), jnp.array([0, 2, 1, 3])
  tokens, private = jnp.array([0, 20, 10, 30]), jnp.array([0, 5, 0, 2])
  cfg = rl.RewardConfig(cost_per_call=0.1, cost_per_llm_token=0.01, cost_per_private_token=0.05)
  # 1 - 0 ; 1 - 0.2 - 0.2 - 0.25 ; 0 - 0.1 - 0.1 ; 0 - 0.3 - 0.3 - 0.1
  expected = [1.0, 0.35, -0.2, -0.7]
  np.testing.assert_allclose(rl.episode_reward(correct, calls, tokens, private, cfg), expected,
                             atol=1e-6)
  np.testing.assert_array_equal(rl.episode_reward(correct, calls, tokens, private), correct)

  @jax.jit
  def traced(cost_per_call):  # a dual-ascent cost as a traced scalar
    c = dataclasses.replace(cfg, cost_per_call=cost_per_call)
    return rl.episode_reward(correct, calls, tokens, private, c)

  np.testing.assert_allclose(traced(jnp.float32(0.1)), expected, atol=1e-6)
  np.testing.assert_allclose(jax.jit(rl.episode_reward)(correct, calls, tokens, private, cfg),
                             expected, atol=1e-6)  # the config as a pytree argument


def test_group_advantages_hand_example():
  reward = jnp.array([1.0, 0.0, 0.5, 0.5, 0.3, 0.3])  # G=2: groups (1,0) (.5,.5) (.3,.3)
  # group 0: mean .5, std .5 -> +-0.5/(0.5+eps); the all-equal groups -> exactly 0
  adv = rl.group_advantages(reward, 2, eps=1e-6)
  np.testing.assert_allclose(adv, [1.0, -1.0, 0, 0, 0, 0], atol=1e-5)
  assert np.all(np.asarray(adv)[2:] == 0.0)
  np.testing.assert_allclose(rl.group_advantages(reward, 2, normalize_std=False),
                             [0.5, -0.5, 0, 0, 0, 0], atol=1e-7)
  # G=4, rewards (1,0,0,0): mean 1/4, std sqrt(3)/4 -> (sqrt 3, -1/sqrt 3 x3)
  adv4 = rl.group_advantages(jnp.array([1.0, 0, 0, 0, 0, 0, 1, 0]), 4, eps=0.0)
  s = np.sqrt(3.0)
  np.testing.assert_allclose(adv4, [s, -1 / s, -1 / s, -1 / s, -1 / s, -1 / s, s, -1 / s],
                             rtol=1e-5)
  with pytest.raises(ValueError, match="multiple"):
    rl.group_advantages(reward, 4)


def test_step_costs_sum_to_the_episode_cost():
  # S=3, B=2: row 0 asks at steps 0 and 2, row 1 at step 1 and then ends (step 2 invalid).
  routed = jnp.array([[1, 0], [0, 1], [1, 1]])
  tokens = jnp.array([[4, 0], [0, 6], [2, 9]])
  exposed = jnp.array([[1, 0], [0, 2], [0, 5]])
  valid = jnp.array([[1, 1], [1, 1], [1, 0]])
  cfg = rl.RewardConfig(cost_per_call=jnp.array([0.1, 0.3]), cost_per_llm_token=0.01,
                        cost_per_private_token=0.05)
  cost = rl.step_costs(routed, tokens, exposed, valid, cfg)
  # row 0: .1+.04+.05, 0, .1+.02 ; row 1 (price .3): 0, .3+.06+.1, 0 (invalid: not charged)
  np.testing.assert_allclose(cost, [[0.19, 0.0], [0.0, 0.46], [0.12, 0.0]], atol=1e-6)
  reward = rl.episode_reward(jnp.array([1, 0]), jnp.array([2, 1]), jnp.array([6, 6]),
                             jnp.array([1, 2]), cfg)
  np.testing.assert_allclose(jnp.array([1, 0]) - cost.sum(0), reward, atol=1e-6)


def test_causal_advantages_hand_example():
  # One group of G=2, S=3 decisions. Sample 0 is correct and asks at steps 0 and 2 (cost .2
  # each); sample 1 is wrong and asks at step 1 (cost .2).
  correct = jnp.array([1.0, 0.0])
  cost = jnp.array([[0.2, 0.0], [0.0, 0.2], [0.2, 0.0]])
  adv = rl.causal_advantages(correct, cost, 2)
  # outcome term: +-0.5. cost-to-go: s0 (.4, .2), s1 (.2, .2), s2 (.2, 0); centred:
  # s0 (.1, -.1), s1 (0, 0), s2 (.1, -.1)
  np.testing.assert_allclose(adv, [[0.4, -0.4], [0.5, -0.5], [0.4, -0.4]], atol=1e-6)
  # Costs all charged at the last decision are every decision's costs-to-go: that is episode
  # credit, the episode's group advantage at every step.
  episode = cost.sum(0, keepdims=True) * jnp.array([[0.0], [0.0], [1.0]])
  np.testing.assert_allclose(
      rl.causal_advantages(correct, episode, 2),
      jnp.broadcast_to(rl.group_advantages(correct - cost.sum(0), 2, normalize_std=False),
                       (3, 2)), atol=1e-6)
  with pytest.raises(ValueError, match="multiple"):
    rl.causal_advantages(jnp.zeros(3), jnp.zeros((2, 3)), 2)


# S=2, B=4 (G=2), A=3. Episodes 1 and 3 ended after step 0, so their step-1 entries are
# invalid and carry garbage that must not matter.
VALID = np.array([[1, 1, 1, 1], [1, 0, 1, 0]], np.float32)
ACTION = np.array([[0, 2, 1, 1], [2, 1, 0, 1]], np.int32)
LOGITS = np.stack([
    np.stack([_logits(.5, .25, .25), _logits(1 / 3, 1 / 3, 1 / 3), _logits(.25, .5, .25),
              _logits(.5, .25, .25)]),
    np.stack([_logits(.25, .25, .5), np.array([100., -100., 0.], np.float32),
              _logits(1 / 3, 1 / 3, 1 / 3), np.array([0., -np.inf, 0.], np.float32)]),
])
ADV = np.array([1.0, -1.0, 0.5, -0.5], np.float32)


def test_reinforce_takes_per_decision_advantages():
  """An SxB advantage equal at every step gives the loss and gradient of the B advantage."""
  adv_SxB = np.broadcast_to(ADV, VALID.shape)
  loss_fn = lambda lg, a: rl.reinforce_loss(lg, ACTION, a, VALID)[0]
  np.testing.assert_allclose(loss_fn(LOGITS, adv_SxB), loss_fn(LOGITS, ADV), atol=1e-6)
  g_b, g_sb = (jax.grad(loss_fn)(jnp.asarray(LOGITS), a) for a in (ADV, adv_SxB))
  np.testing.assert_allclose(g_sb, g_b, atol=1e-6)
  # Zeroing the advantage of step 1 only removes step 1's term: its gradient vanishes there.
  adv_step0 = np.array(adv_SxB)
  adv_step0[1] = 0.0
  g0 = jax.grad(loss_fn)(jnp.asarray(LOGITS), adv_step0)
  assert np.all(np.asarray(g0)[1] == 0.0)
  np.testing.assert_allclose(np.asarray(g0)[0], np.asarray(g_b)[0], atol=1e-6)


def test_reinforce_hand_computed():
  # valid terms adv_b * logpi(a): 1*ln.5, -1*(-ln3), .5*ln.5, -.5*ln.25 | 1*ln.5, .5*(-ln3)
  pg_sum = -LN2 + LN3 - 0.5 * LN2 + LN2 - LN2 - 0.5 * LN3  # = -1.5 ln2 + 0.5 ln3
  pg_loss = -pg_sum / 6
  entropy = (4 * H_HALF_QUARTERS + 2 * LN3) / 6  # four permutations of [.5,.25,.25], two uniform
  coef = 0.1
  loss, aux = jax.jit(rl.reinforce_loss)(LOGITS, ACTION, ADV, VALID, coef)
  np.testing.assert_allclose(aux["pg_loss"], pg_loss, rtol=1e-5)
  np.testing.assert_allclose(aux["entropy"], entropy, rtol=1e-5)
  np.testing.assert_allclose(loss, pg_loss - coef * entropy, rtol=1e-5)
  assert aux["num_valid"] == 6


def test_invalid_steps_do_not_affect_loss_or_gradients():
  garbage = LOGITS.copy()
  garbage[1, 1] = [-1e4, 3.0, np.inf]
  garbage[1, 3] = np.nan
  action = ACTION.copy()
  action[1, 1] = 0
  old_logp = np.full((2, 4), -1.0, np.float32)
  old_logp_garbage = old_logp.copy()
  old_logp_garbage[1, 1] = 1e9
  for fn, args, args_g in [
      (rl.reinforce_loss, (LOGITS, ACTION, ADV, VALID, 0.1),
       (garbage, action, ADV, VALID, 0.1)),
      (rl.ppo_loss, (LOGITS, ACTION, old_logp, ADV, VALID, 0.2, 0.1),
       (garbage, action, old_logp_garbage, ADV, VALID, 0.2, 0.1))]:
    loss, aux = fn(*args)
    loss_g, aux_g = fn(*args_g)
    np.testing.assert_allclose(loss_g, loss, rtol=1e-6)
    for k in aux:
      np.testing.assert_allclose(aux_g[k], aux[k], rtol=1e-6, err_msg=k)
    grad = jax.grad(lambda l: fn(l, *args_g[1:])[0])(jnp.asarray(garbage))
    assert np.all(np.asarray(grad)[1, [1, 3]] == 0.0)
    assert np.all(np.isfinite(grad))


def test_disallowed_action_with_minus_inf_logit_is_finite():
  logits = jnp.array([[[0.0, -jnp.inf, 0.0], [1.0, 2.0, -jnp.inf]]])
  action, valid = jnp.array([[0, 1]]), jnp.ones((1, 2))
  old_logp = jnp.log(jnp.array([[0.4, 0.6]]))
  for fn in (lambda l: rl.reinforce_loss(l, action, jnp.array([1.0, -1.0]), valid, 0.1)[0],
             lambda l: rl.ppo_loss(l, action, old_logp, jnp.array([1.0, -1.0]), valid, .2, .1)[0]):
    loss, grad = jax.value_and_grad(fn)(logits)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
  _, entropy = rl.action_logp_and_entropy(logits, action)
  np.testing.assert_allclose(entropy[0, 0], LN2, rtol=1e-6)  # two equal allowed actions


def test_ppo_hand_computed():
  # step 0 (all valid), adv (+1, -1, +1, -1), eps = 0.2:
  #   b0 new .5  old .25 ratio 2    -> min(2, 1.2)      = 1.2   (clipped)
  #   b1 new .5  old .4  ratio 1.25 -> min(-1.25, -1.2) = -1.25 (outside range, unclipped)
  #   b2 new .25 old .5  ratio .5   -> min(.5, .8)      = .5    (outside range, unclipped)
  #   b3 new .25 old .5  ratio .5   -> min(-.5, -.8)    = -.8   (clipped)
  # step 1: b0, b2 valid with ratio 1 and adv +1 -> 1, 1.   Sum 1.65 over 6 valid.
  logits = np.stack([
      np.stack([_logits(.5, .25, .25), _logits(.5, .25, .25), _logits(.25, .5, .25),
                _logits(.25, .5, .25)]),
      np.stack([_logits(1 / 3, 1 / 3, 1 / 3), _logits(.5, .25, .25), _logits(.5, .25, .25),
                _logits(.5, .25, .25)]),
  ])
  action = np.array([[0, 0, 0, 0], [1, 0, 0, 0]], np.int32)
  old_logp = np.log(np.array([[.25, .4, .5, .5], [1 / 3, .9, .5, .9]], np.float32))
  adv = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
  valid = np.array([[1, 1, 1, 1], [1, 0, 1, 0]], np.float32)
  loss, aux = jax.jit(rl.ppo_loss)(logits, action, old_logp, adv, valid, 0.2, 0.0)
  np.testing.assert_allclose(loss, -1.65 / 6, rtol=1e-5)
  np.testing.assert_allclose(aux["clip_frac"], 4 / 6, rtol=1e-6)
  # old - new: ln(.25/.5) + ln(.4/.5) + 2 ln(.5/.25) + 0 + 0 = ln 1.6
  np.testing.assert_allclose(aux["approx_kl"], np.log(1.6) / 6, rtol=1e-5)
  # clipped decisions (b0, b3 at step 0) get no gradient; the unclipped ones do
  grad = jax.grad(lambda l: rl.ppo_loss(l, action, old_logp, adv, valid, 0.2, 0.0)[0])(
      jnp.asarray(logits))
  g0 = np.abs(np.asarray(grad)[0]).sum(-1)
  assert g0[0] == 0.0 and g0[3] == 0.0
  assert g0[1] > 0.0 and g0[2] > 0.0


def test_ppo_at_ratio_one_matches_reinforce_gradient():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  logits = jax.random.normal(k1, (3, 4, 3))
  action = jax.random.randint(k2, (3, 4), 0, 3)
  adv = jax.random.normal(k3, (4,))
  valid = jnp.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 0, 1]], jnp.float32)
  old_logp, _ = rl.action_logp_and_entropy(logits, action)
  g_ppo = jax.grad(lambda l: rl.ppo_loss(l, action, old_logp, adv, valid, 0.2, 0.01)[0])(logits)
  g_pg = jax.grad(lambda l: rl.reinforce_loss(l, action, adv, valid, 0.01)[0])(logits)
  np.testing.assert_allclose(g_ppo, g_pg, rtol=1e-5, atol=1e-7)
  assert np.abs(np.asarray(g_pg)).sum() > 0
  _, aux = rl.ppo_loss(logits, action, old_logp, adv, valid, 0.2, 0.01)
  assert aux["clip_frac"] == 0 and abs(float(aux["approx_kl"])) < 1e-7


@pytest.mark.parametrize("loss_name", ["reinforce", "ppo"])
def test_entropy_bonus_lowers_loss_of_higher_entropy(loss_name):
  action, adv, valid = np.zeros((1, 2), np.int32), np.zeros(2, np.float32), np.ones((1, 2))

  def loss(logits):
    if loss_name == "ppo":
      return rl.ppo_loss(logits, action, jnp.zeros((1, 2)), adv, valid, 0.2, 0.5)[0]
    return rl.reinforce_loss(logits, action, adv, valid, 0.5)[0]

  uniform = jnp.zeros((1, 2, 3))
  peaked = jnp.array([[[2.0, 0.0, 0.0], [0.0, 3.0, -1.0]]])
  np.testing.assert_allclose(loss(uniform), -0.5 * LN3, rtol=1e-6)  # adv 0: loss = -c * H
  assert loss(uniform) < loss(peaked)
  stepped = peaked - 0.1 * jax.grad(loss)(peaked)  # descent raises entropy
  assert loss(stepped) < loss(peaked)
  h = lambda l: rl.action_logp_and_entropy(l, action)[1].sum()
  assert h(stepped) > h(peaked)


def test_frozen_mask_and_masked_optimizer():
  params = {"gate": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)},
            "gateway": {"w": jnp.ones(2)},
            "slm": {"head": {"w": jnp.ones(2)}, "embed": jnp.ones((4, 2))},
            "llm": {"layers": [jnp.ones(2), jnp.ones(2)]}}
  mask = rl.frozen_mask(params)
  assert mask["gate"] == {"w": True, "b": True}
  assert mask["gateway"]["w"] is False and mask["slm"]["embed"] is False
  assert mask["llm"]["layers"] == [False, False]
  mask2 = rl.frozen_mask(params, ("gate", "slm/head"))
  assert mask2["slm"]["head"]["w"] is True and mask2["slm"]["embed"] is False

  tx = rl.masked_optimizer(optax.adam(0.1), params)
  state = tx.init(params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)

  @jax.jit
  def train_step(params, state):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  new, _ = train_step(params, state)
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), params, new)
  assert changed == mask
  assert changed["gate"]["w"] and not changed["slm"]["embed"] and not any(changed["llm"]["layers"])

  tx2 = rl.masked_optimizer(optax.sgd(0.1), params, trainable=("gate", "slm"))
  updates, _ = tx2.update(grads, tx2.init(params), params)
  new2 = optax.apply_updates(params, updates)
  assert jnp.any(new2["slm"]["embed"] != params["slm"]["embed"])
  np.testing.assert_array_equal(new2["llm"]["layers"][0], params["llm"]["layers"][0])


def test_dual_update_moves_with_budget_and_stays_non_negative():
  np.testing.assert_allclose(rl.dual_update(0.1, 3.0, 2.0, 0.05), 0.15, rtol=1e-6)  # over
  np.testing.assert_allclose(rl.dual_update(0.1, 1.0, 2.0, 0.05), 0.05, rtol=1e-6)  # under
  assert rl.dual_update(0.05, 0.0, 2.0, 0.1) == 0.0  # would be -0.15: projected to 0
  dual = rl.DualCost(target=1.0, lr=0.5)
  cost = dual.init()
  update = jax.jit(dual.update)
  costs = []
  for measured in [3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]:
    cost = update(cost, measured)
    costs.append(float(cost))
  np.testing.assert_allclose(costs, [1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_episode_stats():
  valid = jnp.array([[1, 1, 1, 1], [1, 0, 1, 0]])
  action = jnp.array([[0, 1, 2, 1], [0, 1, 1, 2]])
  stats = jax.jit(rl.episode_stats, static_argnames="action_names")(
      jnp.array([1.0, 0.5, 0.0, -0.5]), jnp.array([1, 1, 0, 0]), jnp.array([0, 2, 1, 1]),
      jnp.array([0, 20, 10, 10]), jnp.array([0, 4, 0, 0]), valid, action,
      action_names=("self", "ask", "ask_redacted"))
  expected = {"reward": 0.25, "accuracy": 0.5, "calls": 1.0, "llm_tokens": 10.0,
              "private_exposed": 1.0, "decisions": 1.5,
              "frac/self": 2 / 6, "frac/ask": 3 / 6, "frac/ask_redacted": 1 / 6}
  for k, v in expected.items():
    np.testing.assert_allclose(stats[k], v, rtol=1e-6, err_msg=k)
