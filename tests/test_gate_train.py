"""Gate training: 1 device and 8 devices give the same update; the gate learns from costs."""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from collab import config_check
from collab import errors
from collab import gating
from collab import parallel
from collab import rl
from collab import rollout as rollout_lib
from collab.data import episodes as episodes_lib
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import presets
from collab.models import transformer
from collab.train import gate as gate_lib
from collab import pair as pair_lib
from configs import gate as gate_configs

S, K, P, G = 4, 6, 32, 2


@pytest.fixture(scope="module")
def env():
  task_cfg = task_lib.TaskConfig(num_train=200, num_validation=16, num_test=16)
  tok = tokenizer_lib.train_tokenizer(task_lib.corpus_texts(task_cfg, 500), vocab_size=256)
  records = [{"question": p.question, "steps": list(p.step_texts)}
             for p in task_lib.generate_split(task_cfg, "train")[:32]]
  slm_cfg = presets.get_model_config("test_tiny", tok.vocab_size)
  llm_cfg = presets.get_model_config("gpt2_tiny", tok.vocab_size)
  pair = pair_lib.Pair(transformer.init_params(slm_cfg, jax.random.PRNGKey(1)),
                       transformer.init_params(llm_cfg, jax.random.PRNGKey(2)),
                       slm_cfg, llm_cfg, tok)
  setup = rollout_lib.Setup(slm=slm_cfg, llm=llm_cfg, gate=gating.GateConfig(),
                            # One LLM call size and the whole cache: a third of the compile time
                            # (several of each are tested against the Python loop, test_rollout).
                            rollout=rollout_lib.RolloutConfig(num_steps=S, step_tokens=K,
                                                              llm_sizes=1, kv_buckets=1),
                            specials=rollout_lib.Specials.from_tokenizer(tok))
  episodes = episodes_lib.make_episodes(records, tok, prompt_len=P, num_steps=S, step_tokens=K)
  return dict(pair=pair, setup=setup, episodes=episodes)


def _rl_cfg(**kw):
  return ml_collections.ConfigDict(dict(group_size=G, entropy_coef=0.01,
                                        clip_eps=0.2, **kw))


def _train(env, devices, steps, *, lr=1e-2, cost=0.05, ppo_epochs=0, problems=8, budget=None,
           call_price=None, gate_cfg=None):
  """call_price: every row is told (and charged) this call price: a price-conditioned gate."""
  pair, setup = env["pair"], env["setup"]
  if call_price is not None:
    gate_cfg = gating.GateConfig(price_input=True)
  if gate_cfg is not None:
    setup = dataclasses.replace(setup, gate=gate_cfg)
  # The learning rate lives in the optimizer state, so tests that differ only in it share the
  # compiled step (through the persistent compilation cache).
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
  gate_params = {"gate": gating.init_gate(setup.gate, pair.slm_cfg.d_model,
                                          jax.random.PRNGKey(0))}
  state = {"params": gate_params, "opt_state": tx.init(gate_params),
           "step": np.zeros((), np.int32),
           "costs": {"per_call": np.float32(cost), "per_llm_token": np.float32(0.0)}}
  step_fn = gate_lib.make_train_step(setup, tx, _rl_cfg(ppo_epochs=ppo_epochs),
                                     rl.RewardConfig(cost_per_call=cost), devices=devices,
                                     budget=budget)
  state_r = parallel.replicate(state, devices)
  slm_r = parallel.replicate(pair.slm_params, devices)
  llm_r = parallel.replicate(pair.llm_params, devices)
  history = []
  for step in range(steps):
    rows = np.random.default_rng(step).choice(len(env["episodes"]["prompt_BxP"]), problems,
                                              replace=False)
    batch = episodes_lib.select(env["episodes"], rows, G)
    if call_price is not None:
      batch["call_price_B"] = np.full(len(rows) * G, call_price, np.float32)
    batch = parallel.shard(batch, len(devices))
    state_r, metrics = step_fn(state_r, slm_r, llm_r, batch, jax.random.PRNGKey(step))
    history.append({k: float(v[0]) for k, v in metrics.items()})
  return parallel.unreplicate(state_r)["params"], history


@pytest.mark.parametrize("ppo_epochs", [0, 2])
def test_one_and_eight_devices_give_the_same_update(env, ppo_epochs):
  assert jax.local_device_count() == 8
  one, hist1 = _train(env, jax.local_devices()[:1], 2, ppo_epochs=ppo_epochs)
  eight, hist8 = _train(env, jax.local_devices(), 2, ppo_epochs=ppo_epochs)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    # The all-reduce sums in another order than one device: float32 rounding, which Adam can
    # raise to ~1e-5 on a weight whose gradient is near zero (updates here are ~1e-2).
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-5)
  assert hist1[-1]["calls"] == pytest.approx(hist8[-1]["calls"])
  # The update is not trivially zero.
  init = gating.init_gate(env["setup"].gate, env["pair"].slm_cfg.d_model, jax.random.PRNGKey(0))
  moved = sum(float(np.abs(np.asarray(a) - np.asarray(b)).sum())
              for a, b in zip(jax.tree.leaves(one["gate"]), jax.tree.leaves(init)))
  assert moved > 0


def test_call_cost_teaches_the_gate_to_stop_asking(env):
  """Untrained models never answer right, so every call is pure cost: calls must fall."""
  _, history = _train(env, jax.local_devices()[:1], 25, lr=3e-2, cost=0.2)
  first = np.mean([h["calls"] for h in history[:3]])
  last = np.mean([h["calls"] for h in history[-3:]])
  assert first > 1.5 and last < 0.5 * first, (first, last)


def test_a_gate_without_ask_redacted_only_asks_plainly(env):
  """Request kinds are config: a two-kind gate (the privacy study's plain-ask reference)."""
  gate_cfg = gating.GateConfig(actions=("self", "ask"))
  params, hist = _train(env, jax.local_devices()[:1], 2, gate_cfg=gate_cfg)
  assert params["gate"]["out"]["kernel"].shape[-1] == 2
  assert "frac/ask_redacted" not in hist[0]
  assert hist[0]["frac/ask"] > 0.2 and hist[0]["frac/self"] + hist[0]["frac/ask"] == (
      pytest.approx(1.0))
  with pytest.raises(ValueError, match="start with 'self'"):
    gating.GateConfig(actions=("ask", "self"))


def test_budget_target_adapts_the_call_price_by_dual_ascent(env):
  """price_k = max(0, price_{k-1} + lr * (calls_k - target)), from the batch's measured calls,
  identically on 1 and 8 devices."""
  budget = {"per_call": {"target": 0.5, "lr": 0.1}}
  _, hist = _train(env, jax.local_devices(), 4, cost=0.0, budget=budget)
  _, hist1 = _train(env, jax.local_devices()[:1], 4, cost=0.0, budget=budget)
  price = 0.0
  for h, h1 in zip(hist, hist1):
    price = max(0.0, price + 0.1 * (h["calls"] - 0.5))
    assert h["cost/per_call"] == pytest.approx(price, abs=1e-5)
    assert h1["cost/per_call"] == pytest.approx(h["cost/per_call"], abs=1e-5)
  # An untrained (uniform) gate asks far more than half a call per problem: the price rises.
  assert hist[0]["calls"] > 0.5 and price > 0


def test_budget_targets_from_config():
  from configs import gate as gate_configs
  assert gate_lib.budget_targets(gate_configs.get_config("runlocal")) == {}
  cfg = gate_configs.get_config("runlocal,target_calls=1.5,target_tokens=20")
  got = gate_lib.budget_targets(cfg)
  assert got["per_call"]["target"] == 1.5 and got["per_llm_token"]["target"] == 20.0


def test_a_price_conditioned_gate_is_charged_the_price_it_is_told(env):
  """With call_price_B in the batch, the reward charges it, not the state's price (0 here)."""
  _, hist = _train(env, jax.local_devices()[:1], 2, cost=0.0, call_price=0.3)
  for h in hist:
    assert h["calls"] > 0.5
    assert h["reward"] == pytest.approx(h["accuracy"] - 0.3 * h["calls"], abs=1e-5)
  _, free = _train(env, jax.local_devices()[:1], 1, cost=0.0)
  assert free[0]["reward"] == pytest.approx(free[0]["accuracy"], abs=1e-6)


def test_only_a_price_conditioned_gate_reads_the_price():
  D, rng = 16, np.random.default_rng(0)
  hidden = rng.normal(size=(4, D)).astype(np.float32)
  scalars = {p: gating.scalar_features(jnp.full(4, -0.1), jnp.full(4, -0.5), 1, 4,
                                       jnp.zeros(4, jnp.int32), 4, jnp.full(4, p))
             for p in (0.02, 0.5)}
  assert scalars[0.02].shape == (4, gating.NUM_SCALAR_FEATURES)
  for price_input in (False, True):
    cfg = gating.GateConfig(price_input=price_input)
    params = gating.init_gate(cfg, D, jax.random.PRNGKey(0))
    # Kernel rows: the scalar columns the head reads, then the hidden state.
    assert params["in"]["kernel"].shape[0] == len(gating.feature_columns(cfg)) + D
    params = jax.tree.map(lambda x: x + 0.3, params)  # the zero-initialised output too
    logits = {p: np.asarray(gating.gate_logits(params, cfg, hidden, s))
              for p, s in scalars.items()}
    assert np.abs(logits[0.02] - logits[0.5]).max() > 1e-3 if price_input else (
        np.array_equal(logits[0.02], logits[0.5]))


def test_price_offset_head_charges_call_kinds_the_price_it_is_told():
  D, rng = 16, np.random.default_rng(1)
  hidden = rng.normal(size=(3, D)).astype(np.float32)
  prices = jnp.asarray([0.01, 0.1, 1.0])
  scalars = gating.scalar_features(jnp.full(3, -0.1), jnp.full(3, -0.5), 1, 4,
                                   jnp.zeros(3, jnp.int32), 4, prices)
  np.testing.assert_allclose(gating.price_from_feature(scalars[:, 5]), prices, rtol=1e-5)
  cfg = gating.GateConfig(price_input=True, price_offset=True, price_scale_init=2.0)
  plain = gating.GateConfig(price_input=True)
  params = jax.tree.map(lambda x: x + 0.3, gating.init_gate(cfg, D, jax.random.PRNGKey(0)))
  assert params["price_log_scale"] == pytest.approx(np.log(2.0) + 0.3)
  plain_params = {k: v for k, v in params.items() if k != "price_log_scale"}
  got = np.asarray(gating.gate_logits(params, cfg, hidden, scalars))
  base = np.asarray(gating.gate_logits(plain_params, plain, hidden, scalars))
  # self (kind 0) is untouched; ask and ask_redacted lose scale * price
  scale = np.exp(np.log(2.0) + 0.3)
  want = base - scale * np.asarray(prices)[:, None] * np.array([0.0, 1.0, 1.0])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  from configs import gate as gate_configs
  with pytest.raises(ValueError, match="price_offset"):
    config_check.check_gate_consistency(gate_configs.get_config("runlocal,price_offset=True"))
  config_check.check_gate_consistency(gate_configs.get_config("runlocal,price_max=0.5,price_offset=True"))


def test_draft_prior_starts_as_the_confidence_threshold():
  """Untrained (zero output layer), the draft-prior gate prefers to ask exactly where the
  threshold baseline asks: the draft's least likely token has log-prob < draft_center_logp."""
  D, rng = 16, np.random.default_rng(2)
  min_logp = jnp.asarray([-1e-3, -0.01, -0.04, -0.06, -0.3, -2.0])
  hidden = rng.normal(size=(6, D)).astype(np.float32)
  scalars = gating.scalar_features(jnp.full(6, -0.01), min_logp, 1, 4,
                                   jnp.zeros(6, jnp.int32), 4)
  cfg = gating.GateConfig(draft_prior=True, draft_center_logp=-0.05)
  logits = np.asarray(gating.gate_logits(gating.init_gate(cfg, D, jax.random.PRNGKey(0)), cfg,
                                         hidden, scalars))
  np.testing.assert_array_equal(logits[:, 1] > logits[:, 0], np.asarray(min_logp) < -0.05)
  np.testing.assert_allclose(logits[:, 1], logits[:, 2])  # both call kinds
  with pytest.raises(ValueError, match="use_draft"):
    gating.GateConfig(draft_prior=True, use_draft=False)


def test_call_prices_are_per_problem_log_uniform_and_replayable():
  from configs import gate as gate_configs
  cfg = gate_configs.get_config("runlocal,price_max=0.5,price_min=0.02")
  assert cfg.gate.price_input
  config_check.check_gate_consistency(cfg)
  a, b = gate_lib.sample_call_prices(cfg, 3), gate_lib.sample_call_prices(cfg, 3)
  np.testing.assert_array_equal(a, b)
  assert len(a) == cfg.rl.problems_per_step * cfg.rl.group_size
  groups = a.reshape(cfg.rl.problems_per_step, cfg.rl.group_size)
  assert (groups == groups[:, :1]).all() and len(set(groups[:, 0])) > 1
  assert a.min() >= 0.02 and a.max() <= 0.5
  many = np.concatenate([gate_lib.sample_call_prices(cfg, k) for k in range(200)])
  # log-uniform: the median sits at the geometric mean of the range (0.1)
  assert np.median(many) == pytest.approx(0.1, rel=0.15)
  with pytest.raises(ValueError, match="budget target"):
    config_check.check_gate_consistency(gate_configs.get_config("runlocal,price_max=0.5,target_calls=1"))
  bad = gate_configs.get_config("runlocal")
  bad.gate.price_input = True
  with pytest.raises(ValueError, match="per_call_range"):
    config_check.check_gate_consistency(bad)


def test_exploration_floor_mixes_in_the_uniform_policy_over_allowed_kinds():
  logits = jnp.asarray([[8.0, -8.0, -8.0], [0.0, 1.0, -jnp.inf]])
  mask = jnp.isfinite(logits)
  p = np.exp(np.asarray(gating.explore_logits(logits, mask, 0.3)))
  pi = np.asarray(jax.nn.softmax(logits, -1))
  np.testing.assert_allclose(p[0], 0.7 * pi[0] + 0.1, rtol=1e-5)
  np.testing.assert_allclose(p[1, :2], 0.7 * pi[1, :2] + 0.15, rtol=1e-5)
  assert p[1, 2] == 0 and np.allclose(p.sum(-1), 1)
  assert gating.explore_logits(logits, mask, 0.0) is logits


def test_feature_layers_widen_the_setup_and_the_gate_and_are_checked(env):
  pair = env["pair"]
  D, L = pair.slm_cfg.d_model, pair.slm_cfg.num_layers
  config = gate_configs.get_config(f"runlocal,feature_layers={L + 1}")
  setup = pair_lib.make_setup(config, pair)
  assert (setup.slm.feature_layers, setup.llm.feature_layers) == (L + 1, 1)
  assert setup.slm.replace(feature_layers=1) == pair.slm_cfg  # nothing else changes
  # The first layer reads the scalar features and the hidden ones: L * D more of those.
  in_width = lambda c: pair_lib.init_gate(c, pair)["in"]["kernel"].shape[0]
  assert in_width(config) - in_width(gate_configs.get_config("runlocal")) == L * D
  assert "feature_layers" not in gate_configs.get_config("runlocal").gate  # older configs keep
  # draft_states: the state before the step and the draft's mean state, D more.
  assert in_width(gate_configs.get_config("runlocal,draft_states=True")) - in_width(
      gate_configs.get_config("runlocal")) == D
  assert "draft_states" not in gate_configs.get_config("runlocal").gate
  with pytest.raises(ValueError, match="use_hidden"):
    gating.GateConfig(draft_states=True, use_hidden=False)
  with pytest.raises(errors.ConfigError, match="at most"):
    pair_lib.make_setup(gate_configs.get_config(f"runlocal,feature_layers={L + 2}"), pair)
  with pytest.raises(errors.ConfigError, match="feature_layers"):
    config_check.check_gate(gate_configs.get_config("runlocal,feature_layers=0"))
