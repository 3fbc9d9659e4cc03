"""Evaluation: every baseline through the same rollout, summaries with CIs, metrics and plots.

The pair is freshly initialised (not pretrained) so the module runs in well under a minute: the
checks here are about bookkeeping (calls, decisions, CIs, padding, files), not accuracy.
"""
import json
import os
import subprocess
import sys
import types

import jax
import ml_collections
import numpy as np
import pytest

from collab import baselines as baselines_lib
from collab import config_check
from collab import evaluate
from collab import fitted_baselines
from collab import gating
from collab import hull as hull_lib
from collab import rollout as rollout_lib
from collab.data import assets as assets_lib
from collab.data import episodes as episodes_lib
from collab.models import presets
from collab.models import transformer
from collab.train import gate as gate_lib
from collab import pair as pair_lib
from configs import gate as gate_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("evaluate")
  config = gate_configs.get_config("runlocal")
  config.assets_dir = str(tmp / "assets")
  config.pretrain_dir = str(tmp / "pretrain")
  config.rollout.update(num_steps=5, step_tokens=10)
  # Fewer baseline variants than the runlocal default: each one is a rollout to run.
  config.eval.update(num_problems=16, batch_size=16, every_k=(2,), fixed_steps=((0, 2),),
                     random_rates=(0.5,), thresholds=(-0.5, -3.0))
  config.eval.line_kinds.problems = 16  # the fitted baselines (off in runlocal)
  config.eval.router.problems = 16
  assets = assets_lib.prepare_assets(pair_lib.task_config(config), config.assets_dir,
                                     config.vocab_size)
  tok = assets.tokenizer
  slm_cfg = presets.get_model_config(config.slm, tok.vocab_size)
  llm_cfg = presets.get_model_config(config.llm, tok.vocab_size)
  pair = pair_lib.Pair(transformer.init_params(slm_cfg, jax.random.PRNGKey(1)),
                       transformer.init_params(llm_cfg, jax.random.PRNGKey(2)),
                       slm_cfg, llm_cfg, tok)
  gate_cfg = gating.GateConfig(**config.gate.to_dict())
  gate_params = gating.init_gate(gate_cfg, slm_cfg.d_model, jax.random.PRNGKey(3))
  out_dir = str(tmp / "eval")
  metrics = evaluate.evaluate(config, pair, gate_params, out_dir)
  return dict(config=config, pair=pair, gate=gate_params, out_dir=out_dir, metrics=metrics)


def _fitted(metrics):
  """The fitted baselines of an evaluation, rebuilt from what it recorded (router params are
  not recorded: a placeholder, since only the names are compared)."""
  sets = tuple(tuple(s) for s in metrics["fitted"]["line_kinds"]["sets"])
  return fitted_baselines.Fitted(sets, "router" if "router" in metrics["fitted"] else None,
                                 metrics["fitted"])


def test_metrics_json_has_every_policy(env):
  with open(os.path.join(env["out_dir"], "metrics.json")) as f:
    metrics = json.load(f)
  names = {"gate"} | {b.name for b in baselines_lib.baselines(env["config"].eval, 0.0,
                                                             _fitted(metrics))}
  hulls = {n for n, s in metrics["policies"].items() if s["family"].endswith("_hull")}
  assert set(metrics["policies"]) == names | hulls
  assert hulls <= {"threshold_hull", "router_hull"}
  assert {"slm_alone", "llm_alone", "every_2", "fixed_0_2", "random_at_gate_rate",
          "random_0.5", "threshold_-0.5", "threshold_-3", "oracle", "router_0.5", "router_q0.5"} <= names
  assert any(n.startswith("kinds_") for n in names)
  names |= hulls
  assert metrics["num_problems"] == 16
  assert set(metrics["comparison"]) == names - {"gate"}
  for name, c in metrics["comparison"].items():
    assert isinstance(c["dominates"], bool)
    assert c["static"] == (name in ("slm_alone", "llm_alone", "every_2", "fixed_0_2"))
  for s in metrics["policies"].values():
    assert s["num_problems"] == 16
    for key in ("accuracy", "calls", "llm_tokens", "exposed"):
      assert s[key]["ci_low"] <= s[key]["mean"] <= s[key]["ci_high"]
    assert abs(sum(s["action_mix"].values()) - 1.0) < 1e-9
  for name in ("pareto.png", "pareto_llm_tokens.png", "pareto_exposed.png"):
    assert os.path.getsize(os.path.join(env["out_dir"], name)) > 1000


def test_baselines_ask_as_they_should(env):
  p = env["metrics"]["policies"]
  assert p["slm_alone"]["calls"]["mean"] == 0 and p["slm_alone"]["llm_tokens"]["mean"] == 0
  assert p["slm_alone"]["action_mix"]["self"] == 1.0
  # LLM alone asks at every decision (the budget is not binding: budget >= steps).
  assert p["llm_alone"]["call_rate"] == 1.0
  assert p["llm_alone"]["calls"]["mean"] == p["llm_alone"]["decisions"]["mean"] > 0
  assert p["llm_alone"]["exposed"]["mean"] > 0  # the full context carries private numbers
  assert p["oracle"]["calls"]["mean"] <= p["llm_alone"]["calls"]["mean"]
  assert p["every_2"]["calls"]["mean"] <= p["llm_alone"]["calls"]["mean"]
  assert p["random_at_gate_rate"]["value"] == pytest.approx(p["gate"]["call_rate"])
  # A lower threshold on the draft's min log-prob asks less.
  assert p["threshold_-3"]["calls"]["mean"] <= p["threshold_-0.5"]["calls"]["mean"]


def test_run_policy_padding_and_devices_agree(env):
  """Batches of 6 (last one padded, single-device jit) equal one pmapped batch of 16, and a
  padded pmapped batch; rows keep their ids, so even random asking agrees."""
  config, pair = env["config"], env["pair"]
  records = assets_lib.load_records(
      assets_lib.prepare_assets(pair_lib.task_config(config), config.assets_dir,
                                config.vocab_size), config.eval.split, 16)
  episodes = pair_lib.make_episodes(config, pair, records)
  setup = pair_lib.make_setup(config, pair)
  policy = rollout_lib.Policy(kind="random")
  whole = evaluate.run_policy(pair, setup, env["gate"], episodes, policy, batch_size=16,
                              value=0.5)
  pieces = evaluate.run_policy(pair, setup, env["gate"], episodes, policy, batch_size=6,
                               value=0.5)
  assert set(whole) == set(pieces)
  for key in whole:
    assert whole[key].shape == (16,), key
    np.testing.assert_array_equal(whole[key], pieces[key], err_msg=key)
  np.testing.assert_array_equal(
      whole["decisions"], sum(whole[f"action_{a}"] for a in setup.gate.actions))
  assert 0 < whole["calls"].sum() < whole["decisions"].sum()
  # 10 rows pmapped in one batch of 16 (rounded up to the devices): 6 padded rows dropped.
  some = evaluate.run_policy(pair, setup, env["gate"], episodes_lib.select(episodes, range(10)),
                             policy, batch_size=64, value=0.5)
  for key in whole:
    np.testing.assert_array_equal(some[key], whole[key][:10], err_msg=key)


def test_summarize_by_hand():
  per_problem = {
      "correct": np.array([1.0, 0.0, 1.0, 1.0]), "calls": np.array([1, 3, 0, 2]),
      "llm_tokens": np.array([4, 12, 0, 8]), "context_tokens": np.array([10, 30, 0, 20]),
      "exposed": np.array([0, 0, 0, 0]), "overflow": np.array([0, 1, 0, 0]),
      "decisions": np.array([4, 4, 2, 2]),
      "action_self": np.array([3, 1, 2, 0]), "action_ask": np.array([1, 3, 0, 2]),
  }
  s = evaluate.summarize(per_problem)
  half = 1.959963984540054 * np.std([1, 0, 1, 1], ddof=1) / 2  # sqrt(4) = 2
  assert s["accuracy"]["mean"] == pytest.approx(0.75)
  assert s["accuracy"]["ci95"] == pytest.approx(half)
  assert s["accuracy"]["ci_low"] == pytest.approx(0.75 - half)
  assert s["accuracy"]["ci_high"] == pytest.approx(0.75 + half)
  assert s["calls"]["mean"] == pytest.approx(1.5)
  assert s["llm_tokens"]["mean"] == pytest.approx(6.0)
  assert s["exposed"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "ci95": 0.0}
  assert s["call_rate"] == pytest.approx(6 / 12)
  assert s["overflow_rate"] == pytest.approx(1 / 12)
  assert s["action_mix"] == pytest.approx({"self": 0.5, "ask": 0.5})
  assert s["num_problems"] == 4
  one = evaluate.summarize({k: v[:1] for k, v in per_problem.items()})
  assert one["accuracy"]["ci95"] == 0.0


def test_compare_and_table():
  def summary(acc, calls, family):
    return {"accuracy": {"mean": acc, "ci95": 0.1}, "calls": {"mean": calls, "ci95": 0.0},
            "llm_tokens": {"mean": 4 * calls}, "exposed": {"mean": 0.0},
            "call_rate": calls / 4, "family": family}
  policies = {"gate": summary(0.5, 1.0, "gate"), "every_2": summary(0.4, 2.0, "every_k"),
              "llm_alone": summary(0.7, 4.0, "llm_alone"), "slm_alone": summary(0.2, 0.0,
                                                                                 "slm_alone")}
  per_problem = {"gate": {"correct": np.array([1.0, 0.0])},
                 "every_2": {"correct": np.array([0.0, 0.0])},
                 "llm_alone": {"correct": np.array([1.0, 1.0])},
                 "slm_alone": {"correct": np.array([0.0, 0.0])}}
  c = evaluate.compare(policies, per_problem)
  assert c["every_2"]["dominates"] and c["every_2"]["static"]
  assert not c["llm_alone"]["dominates"]  # more accurate, though at more calls
  assert not c["slm_alone"]["dominates"]  # fewer calls than the gate
  assert c["every_2"]["accuracy_gain"]["mean"] == pytest.approx(0.5)
  assert c["llm_alone"]["calls_saved"] == pytest.approx(3.0)
  table = evaluate.results_table({"policies": policies})
  assert table.count("\n") == 1 + len(policies)
  assert "| gate | 50.0 ± 10.0% | 1.00 |" in table


def test_entry_point_needs_exactly_one_source():
  result = subprocess.run([sys.executable, "-m", "experiments.evaluate"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert "exactly one of --workdir" in result.stderr + result.stdout


def test_a_price_conditioned_gate_gets_a_point_per_price(env, tmp_path):
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.gate.price_input = True
  config.costs.per_call_range = (0.01, 0.5)
  config.eval.update(every_k=(), fixed_steps=(), random_rates=(), thresholds=(),
                     call_prices=(0.05, 0.4))
  gate_cfg = gating.GateConfig(**config.gate.to_dict())
  params = gating.init_gate(gate_cfg, env["pair"].slm_cfg.d_model, jax.random.PRNGKey(3))
  params = jax.tree.map(lambda x: x + 0.05, params)  # the output layer starts at zero
  metrics = evaluate.evaluate(config, env["pair"], params, str(tmp_path))
  gates = {n: s for n, s in metrics["policies"].items() if s["family"] == "gate"}
  assert set(gates) == {"gate", "gate@0.05", "gate@0.4"}
  assert gates["gate@0.4"]["value"] == 0.4
  assert not set(gates) & set(metrics["comparison"])


def test_a_mixture_target_calibrates_the_share_of_problems_the_gate_decides(env):
  """mode 'mixture': p = target / the greedy gate's calls on training problems, and the mixed
  gate then spends about the target on held-out problems."""
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.budget_target.update(calls=1.0, mode="mixture")
  assert gate_lib.budget_targets(config) == {}  # no dual ascent: the price stays fixed
  assert gate_lib.mixture_targets(config) == {"calls": 1.0}
  pair = env["pair"]
  params = jax.tree.map(np.asarray, env["gate"])
  params["out"]["bias"] = np.array([0.0, 5.0, 0.0], np.float32)  # the greedy gate always asks
  setup = pair_lib.make_setup(config, pair)
  train = pair_lib.make_episodes(config, pair,
                                 pair_lib.load_records(config, pair, config.rl.split, 16))
  mix = gate_lib.calibrate_mixture(config, pair, setup, params, train)
  spent = mix["gate_spend"]["calls"]
  assert spent > 2 and mix["mix_prob"] == pytest.approx(1.0 / spent) and mix["problems"] == 16
  mixed = dict(params, **{gating.MIX_KEY: np.float32(mix["mix_prob"])})
  test = pair_lib.eval_episodes(config, pair)
  greedy = rollout_lib.Policy(kind="gate", greedy=True)
  full, part = (evaluate.run_policy(pair, setup, p, test, greedy, batch_size=16)
                for p in (params, mixed))
  on = part["calls"] > 0  # problems the gate decided (it asks at every step)
  np.testing.assert_array_equal(part["calls"][on], full["calls"][on])
  assert 0 < on.sum() < len(on) and abs(part["calls"].mean() - 1.0) < 1.0
  with pytest.raises(ValueError, match="budget_target.mode"):
    config_check.check_gate_consistency(gate_configs.get_config("runlocal,target_calls=1,target_mode=x"))


def test_price_calibration_runs_the_gate_on_held_out_training_problems(env):
  """A price-offset gate whose only preference is an ask bias of 1 asks while 2 * price < 1:
  the lowest price at which it spends <= 1 call is 0.5."""
  from collab.train import calibration
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.gate.update(price_input=True, price_offset=True)
  config.costs.per_call_range = (0.01, 1.0)
  config.rl.select_problems = 8
  gate_cfg = gating.GateConfig(**config.gate.to_dict())
  params = jax.tree.map(np.asarray, gating.init_gate(gate_cfg, env["pair"].slm_cfg.d_model,
                                                     jax.random.PRNGKey(3)))
  params["out"]["bias"] = np.array([0.0, 1.0, 0.0], np.float32)
  out = calibration.calibrate(config, env["pair"], params, "calls", 1.0, iters=6)
  assert 0.5 <= out["price"] <= 0.5 * 100 ** (1 / 2 ** 6) and out["met"]
  assert out["spend"]["calls"] == 0 and out["problems"] == 8
  assert out["evaluations"][0]["calls"] > 1  # told 0.01, it asks at every step
  config.rl.select_problems = 0
  with pytest.raises(ValueError, match="select_problems"):
    calibration.calibrate(config, env["pair"], params, "calls", 1.0)
  config.costs.per_call_range = (0.0, 0.0)
  with pytest.raises(ValueError, match="price_min"):
    calibration.calibrate(config, env["pair"], params, "calls", 1.0)


def test_checkpoint_selection_keeps_the_best_step_not_the_last(env, tmp_path):
  """A gate that asks at every step scores -price * calls on problems neither random model
  solves; the earlier checkpoint that never asks scores 0 and is kept."""
  from collab import checkpoint as ckpt_lib
  from collab.train import selection
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.rl.update(select_problems=8, num_steps=4)
  config.costs.per_call = 0.1
  params = jax.tree.map(np.asarray, env["gate"])
  never, always = (dict(params, out=dict(params["out"], bias=np.array(b, np.float32)))
                   for b in ([5.0, 0, 0], [0, 5.0, 0]))
  with ckpt_lib.Checkpointer(tmp_path / "checkpoints", max_to_keep=None) as ckpt:
    for step, p in ((1, always), (2, never), (4, always)):
      ckpt.save(step, {"params": {"gate": p}})
  pair = env["pair"]
  held = pair_lib.make_episodes(config, pair,
                                pair_lib.load_records(config, pair, config.rl.split, 8))
  setup = pair_lib.make_setup(config, pair)
  kept = selection.select_checkpoint(
      config, pair, setup, {"params": {"gate": params}}, str(tmp_path), held, True)
  np.testing.assert_array_equal(kept["out"]["bias"], never["out"]["bias"])
  with open(tmp_path / "selection.json") as f:
    chosen = json.load(f)
  calls = evaluate.run_policy(pair, setup, always, held,
                              rollout_lib.Policy(kind="gate", greedy=True), batch_size=16)
  assert calls["calls"].mean() > 1 and not calls["correct"].any()
  assert chosen["step"] == 2 and chosen["last_step"] == 4 and set(chosen["scores"]) == {"2", "4"}
  assert chosen["scores"]["4"] == pytest.approx(-0.1 * calls["calls"].mean())
  assert chosen["scores"]["2"] == 0.0
  with pytest.raises(ValueError, match="Checkpoint selection scores rewards at fixed prices"):
    config_check.check_gate_consistency(gate_configs.get_config("runlocal,select=8,target_calls=1"))


def test_every_baseline_shares_one_compiled_rollout(env):
  """The policy is traced data: the gate and every baseline of config.eval, at any value, run
  through one compiled rollout per batch shape (single-device jit here: batches of 6)."""
  config, pair = env["config"], env["pair"]
  episodes = pair_lib.eval_episodes(config, pair)
  setup = pair_lib.make_setup(config, pair)
  # A router with spread-out margins (the fitted one of random models asks everywhere).
  noise = jax.random.normal(jax.random.PRNGKey(7), env["gate"]["out"]["kernel"].shape)
  router = dict(env["gate"], out=dict(env["gate"]["out"], kernel=noise * 0.3))
  fitted = fitted_baselines.Fitted((("lookup",), ("lookup", "add")), router,
                                   {"router": {"cutoffs": [{"share": 0.5, "p": 0.75}]}})
  named = [baselines_lib.Baseline("gate", "gate", evaluate.GREEDY_GATE)] + (
      baselines_lib.baselines(config.eval, gate_call_rate=0.3, fitted=fitted))

  def run(b):
    return evaluate.run_policy(pair, setup, env["gate"] if b.params is None else b.params,
                               episodes, b.policy, batch_size=6, value=b.value,
                               value2=b.value2, mix=b.mix)

  before = rollout_lib.rollout._cache_size()  # pylint: disable=protected-access
  outs = {b.name: run(b) for b in named}
  # Two ends of the threshold sweep mixed per problem, to spend halfway between them
  # (random models solve nothing, so the accuracy hull itself is flat here: see
  # test_hull_baselines_mix_the_vertices_around_the_target).
  # (A random model's drafts are unsure: every listed cut-off asks nearly everywhere.)
  a = baselines_lib.Baseline("threshold_never", "threshold", rollout_lib.Policy("threshold"),
                             -1e9)
  b = next(n for n in named if n.name == "threshold_-0.5")
  outs[a.name] = run(a)
  target = (outs[a.name]["calls"].mean() + outs[b.name]["calls"].mean()) / 2
  draws_N = hull_lib.draws(0, episodes["row_id_B"])
  p = hull_lib.mix_at(outs[a.name]["calls"], outs[b.name]["calls"], draws_N, target)
  h = baselines_lib.Baseline("threshold_hull", "threshold_hull", a.policy, a.value, b.value, p)
  outs[h.name] = run(h)
  assert rollout_lib.rollout._cache_size() - before <= 1  # pylint: disable=protected-access
  # ... and the policies still differ: the one program computes what each one asks for.
  assert outs["slm_alone"]["calls"].sum() == 0
  assert outs["llm_alone"]["calls"].sum() == outs["llm_alone"]["decisions"].sum() > 0
  assert len(named) >= 15 and len({int(o["calls"].sum()) for o in outs.values()}) >= 3
  assert 0 < outs["kinds_lookup"]["calls"].sum() < outs["kinds_lookup+add"]["calls"].sum()
  # The router's sweep: a higher cut-off on P(draft wrong) asks less.
  router_calls = [outs[f"router_{p:g}"]["calls"].sum() for p in config.eval.router.thresholds]
  assert router_calls == sorted(router_calls, reverse=True)
  assert router_calls[0] > router_calls[-1]
  assert outs["router_q0.5"]["calls"].sum() == outs["router_0.75"]["calls"].sum()  # same cut-off
  # The hull point is the mix of its two ends, row by row, and spends at most the target.
  assert 0 < p < 1
  want = hull_lib.mixed(outs[a.name], outs[b.name], draws_N, p)
  for key in ("correct", "calls", "llm_tokens"):
    np.testing.assert_array_equal(outs[h.name][key], want[key], err_msg=key)
  assert outs[a.name]["calls"].mean() < outs[h.name]["calls"].mean() <= target


def test_baselines_run_beside_gate_training_give_the_same_metrics(env, tmp_path):
  """run_baselines, with an untrained gate of the gate's shape (as the quickstart runs it
  beside gate training), then evaluate(..., baselines=) with the trained gate: every policy's
  per-problem numbers equal those of the evaluation that runs everything itself."""
  config, pair = env["config"], env["pair"]
  runs = evaluate.run_baselines(config, pair)
  assert "random_at_gate_rate" not in runs.policies and "oracle" in runs.policies
  metrics = evaluate.evaluate(config, pair, env["gate"], str(tmp_path), baselines=runs)
  assert list(metrics["policies"]) == list(env["metrics"]["policies"])
  assert metrics["fitted"] == env["metrics"]["fitted"]
  for name, want in env["metrics"]["policies"].items():
    for key in ("accuracy", "calls", "llm_tokens", "exposed"):
      assert metrics["policies"][name][key] == want[key], (name, key)
  assert metrics["comparison"] == env["metrics"]["comparison"]


def test_hull_baselines_mix_the_vertices_around_the_target():
  """The hull point at a target mixes the hull's vertices on either side of it (skipping a
  point under the hull), and spends at most the target on the problems."""
  def pol(family, acc, calls, exposed=1.0):
    return {"family": family, "accuracy": {"mean": acc}, "calls": {"mean": calls},
            "exposed": {"mean": exposed}}
  calls = {"t_lo": np.zeros(4), "t_mid": np.full(4, 1.0), "t_hi": np.array([4.0, 4, 4, 0])}
  policies = {"t_lo": pol("threshold", 0.2, 0.0), "t_mid": pol("threshold", 0.25, 1.0),
              "t_hi": pol("threshold", 0.8, 3.0), "r": pol("router", 0.5, 2.0)}
  P = rollout_lib.Policy
  named = {"t_lo": baselines_lib.Baseline("t_lo", "threshold", P(kind="threshold"), -5.0),
           "t_mid": baselines_lib.Baseline("t_mid", "threshold", P(kind="threshold"), -1.0),
           "t_hi": baselines_lib.Baseline("t_hi", "threshold", P(kind="threshold"), -0.1),
           "r": baselines_lib.Baseline("r", "router", P(kind="router"), 0.5, params="R")}
  per = {n: {"calls": c} for n, c in calls.items()}
  draws_N = np.array([0.9, 0.1, 0.5, 0.3])
  (h,) = evaluate.hull_baselines(policies, per, named, draws_N, 1.0)  # the router: 2 calls
  assert (h.name, h.family, h.value, h.value2) == ("threshold_hull", "threshold_hull", -5.0, -0.1)
  assert np.mean(np.where(draws_N < h.mix, calls["t_hi"], calls["t_lo"])) == 1.0
  at_end = {b.name: b for b in evaluate.hull_baselines(policies, per, named, draws_N, 5.0)}
  assert at_end["threshold_hull"].mix == 0.0 and at_end["threshold_hull"].value == -0.1
  assert at_end["router_hull"].params == "R"


def test_head_to_head_picks_the_strongest_rival_at_equal_or_fewer_calls():
  def pol(family, acc, calls, exposed=1.0):
    return {"family": family, "accuracy": {"mean": acc}, "calls": {"mean": calls},
            "exposed": {"mean": exposed}}

  def gain(mean, half):
    return {"accuracy_gain": {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}}
  metrics = {"policies": {"gate": pol("gate", 0.6, 2.0), "threshold_-1": pol("threshold", 0.5, 1.5),
                          "threshold_-0.5": pol("threshold", 0.55, 2.0, exposed=3.5),
                          "threshold_-0.1": pol("threshold", 0.9, 4.0),
                          "llm_alone": pol("llm_alone", 1.0, 6.0)},
             "comparison": {"threshold_-1": gain(0.1, 0.05), "threshold_-0.5": gain(0.05, 0.1),
                            "threshold_-0.1": gain(-0.3, 0.05), "llm_alone": gain(-0.4, 0.1)}}
  text = evaluate.head_to_head(metrics)
  assert ("- threshold: threshold_-0.5, 55.0% at 2.00 calls; gain +5.0 [-5.0, +15.0] points: "
          "tie; 3.50 private tokens") in text
  assert "1.00 private tokens sent to the LLM" in text  # the gate's
  assert "llm_alone: every point spends more calls than the gate" in text
  assert "threshold_-0.1" not in text


def test_the_rl_gate_can_start_from_the_supervised_router(env):
  """rl.init='router': gate training's initial params are the router fitted on the training
  split (deterministic), not the seed's fresh head; the fitted info is in metrics.json."""
  from collab import router as router_lib
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.rl.init = "router"
  config.eval.router.steps = 20
  pair = env["pair"]
  start = gate_lib.init_state(config, pair, gate_lib.make_optimizer(config))["params"]["gate"]
  router, info = router_lib.fit(config, pair, pair_lib.make_setup(config, pair))
  assert info["problems"] == config.eval.router.problems and info["decisions"] > 0
  for x, y in zip(jax.tree.leaves(start), jax.tree.leaves(router)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)
  fresh = pair_lib.init_gate(config, pair)
  assert jax.tree.structure(start) == jax.tree.structure(fresh)
  assert not np.allclose(np.asarray(start["out"]["kernel"]), np.asarray(fresh["out"]["kernel"]))
  fitted = env["metrics"]["fitted"]
  assert set(fitted) == {"line_kinds", "router"}
  assert fitted["router"]["split"] == config.rl.split != config.eval.split
  sets = fitted["line_kinds"]["sets"]
  assert [len(s) for s in sets] == list(range(1, len(sets) + 1))  # nested, one kind a round
  assert all(set(a) < set(b) for a, b in zip(sets, sets[1:]))


def test_eval_skip_takes_the_problems_after_the_first_skip(env):
  """config.eval.skip: a slice of the split apart from the problems results are reported on."""
  config = ml_collections.ConfigDict(env["config"].to_dict())
  config.eval.update(num_problems=8, skip=0)
  whole = pair_lib.eval_episodes(config, env["pair"])
  config.eval.update(num_problems=4, skip=4)
  tail = pair_lib.eval_episodes(config, env["pair"])
  np.testing.assert_array_equal(tail["prompt_BxP"], whole["prompt_BxP"][4:])
  assert not np.array_equal(tail["prompt_BxP"], whole["prompt_BxP"][:4])


def test_line_kinds_without_kinds_run_nothing():
  """Imported problems' lines have no kinds (-1): the selection is empty and runs no rollout
  (here a rollout would fail: there is no pair)."""
  setup = types.SimpleNamespace(rollout=types.SimpleNamespace(num_steps=3), draft_kinds=None)
  episodes = {"kind_BxS": np.full((4, 5), -1, np.int32)}
  assert fitted_baselines.choose_line_kinds(None, setup, None, episodes, batch_size=4) == ((), [])
