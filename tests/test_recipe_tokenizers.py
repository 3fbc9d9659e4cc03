"""Recipes with another tokenizer (collab/train/recipes.py: test_tiny_uni, gpt2_tiny_uni, a
SentencePiece unigram model on the task's corpus) paired with default-tokenizer presets: each
model pretrained a few steps, the pair built by load_pair with a handoff (collab/handoff.py),
both directions; gate training and evaluation through it; a helper that writes a known line
gives what it gives in a same-tokenizer pair; the default recipes' configs and files as they
were before the choice existed."""
import dataclasses
import hashlib
import json
import math
import os

import jax
import numpy as np
import pytest

import fake_models
from collab import config_check
from collab import errors
from collab import evaluate
from collab import export
from collab import pair as pair_lib
from collab import rollout as rollout_lib
from collab.data import assets as assets_lib
from collab.data import tokenizer as tokenizer_lib
from collab.train import gate as gate_lib
from collab.train import pretrain
from collab.train import recipes
from configs import gate as gate_configs

# The recipes that existed before recipes chose tokenizers, and the sha256 of their pretraining
# configs (default and runlocal, JSON with sorted keys) as the commit before wrote them: their
# configs, and so their workdirs' config.json, must not change.
DEFAULT_RECIPES = ("gpt2_m", "gpt2_tiny", "llm_fallible", "llm_l", "llm_m", "llm_s", "llm_s_p1",
                   "llm_s_p2", "slm_arith", "slm_l", "slm_m", "slm_s", "slm_s_p1", "slm_s_p2",
                   "test_tiny", "test_tiny_arith", "test_tiny_fallible")
DEFAULT_CONFIGS_SHA256 = "77bf588faa9536a986548d20b54b9377efdc50c0c67a09dddb5fcc9a00f04e88"
MODELS = ("test_tiny", "gpt2_tiny", "test_tiny_uni", "gpt2_tiny_uni")


def _config(root, slm, llm):
  config = fake_models.gate_config(root, f"runlocal,slm={slm},llm={llm}")
  config.eval.update(num_problems=8, batch_size=8)
  return config


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """Each model's recipe pretrained 3 steps on a small task (the path studies take when a
  preset is missing, pretrain.ensure_pretrained, with fewer steps)."""
  root = tmp_path_factory.mktemp("uni")
  base = _config(root, "test_tiny", "gpt2_tiny")
  for name in MODELS:
    pre = recipes.pretrain_config(name, runlocal=True, steps=3)
    pre.update(assets_dir=base.assets_dir, task=base.task)
    pre.eval.update(num_problems=4, batch_size=4)
    pretrain.train(pre, pair_lib.model_dir(base, name))
  return root


def test_default_recipes_keep_their_configs_and_tokenizer_file():
  configs = {f"{name}:{runlocal}": json.loads(recipes.pretrain_config(
      name, runlocal=runlocal).to_json_best_effort(sort_keys=True))
             for name in DEFAULT_RECIPES for runlocal in (False, True)}
  assert set(DEFAULT_RECIPES) | {"gpt2_uni", "slm_s_uni", "test_tiny_uni", "gpt2_tiny_uni",
                                 "wp_slm", "wp_llm", "wp_tiny", "wp_slm_p1", "wp_slm_p2",
                                 "wp_llm_p1", "wp_llm_p2"} == set(recipes.RECIPES)
  digest = hashlib.sha256(json.dumps(configs, sort_keys=True).encode()).hexdigest()
  assert digest == DEFAULT_CONFIGS_SHA256
  for name in DEFAULT_RECIPES:
    assert "tokenizer_type" not in configs[f"{name}:False"]
    assert "tokenizer_type" not in gate_configs.get_config(f"slm={name}")
  gate = gate_configs.get_config("slm=slm_s,llm=gpt2_uni")  # the task is in the SLM's ids
  assert (gate.vocab_size, gate.prompt_len, "tokenizer_type" in gate) == (512, 32, False)
  assert assets_lib.tokenizer_file(512) == "tokenizer_v512.model"
  assert assets_lib.tokenizer_file(512, "unigram") == "tokenizer_unigram_v512.model"
  uni = recipes.pretrain_config("gpt2_uni")
  assert (uni.preset, uni.tokenizer_type, uni.seq_len) == ("gpt2_m", "unigram", 144)
  assert (uni.num_steps, uni.batch_size, uni.fact_coverage) == (6000, 32, 1.0)
  assert uni.eval.max_new_tokens == uni.seq_len  # a unigram solution writes up to 99 tokens
  gate = gate_configs.get_config("slm=slm_s_uni,llm=llm_s")
  assert (gate.tokenizer_type, gate.prompt_len, gate.rollout.step_tokens) == ("unigram", 40, 24)


def test_each_tokenizer_has_its_own_file_and_runs_keep_theirs(root):
  config = _config(root, "test_tiny", "gpt2_tiny_uni")
  task_dir = os.path.dirname(assets_lib.prepare_assets(
      pair_lib.task_config(config), config.assets_dir, 512).tokenizer_path)
  assert sorted(f for f in os.listdir(task_dir) if f.endswith(".model")) == [
      "tokenizer_unigram_v512.model", "tokenizer_v512.model"]
  toks = {f: tokenizer_lib.Tokenizer.load(os.path.join(task_dir, f))
          for f in ("tokenizer_v512.model", "tokenizer_unigram_v512.model")}
  assert toks["tokenizer_v512.model"].fingerprint != toks[
      "tokenizer_unigram_v512.model"].fingerprint
  for name in MODELS:
    workdir = pair_lib.model_dir(config, name)
    with open(os.path.join(workdir, "config.json")) as f:
      written = json.load(f)
    file = assets_lib.tokenizer_file(512, written.get("tokenizer_type", "bpe"))
    assert ("tokenizer_type" in written) == name.endswith("_uni")
    _, _, tok = pair_lib.load_model(workdir)
    assert tok.fingerprint == toks[file].fingerprint


@pytest.mark.parametrize("slm,llm", [("test_tiny", "gpt2_tiny_uni"),
                                     ("test_tiny_uni", "gpt2_tiny")])
def test_a_pair_of_presets_with_two_tokenizers(root, slm, llm):
  """Either direction: the LLM keeps its own tokenizer and vocabulary, its prompts are its
  own encoding of the question (redacted: no private token), its steps sized by its tokens
  per SLM token on the task's training lines."""
  config = _config(root, slm, llm)
  pair = pair_lib.load_pair(config)
  slm_tok, llm_tok = pair.tokenizer, pair.llm_tokenizer
  assert llm_tok is not None and llm_tok.fingerprint != slm_tok.fingerprint
  assert (pair.slm_cfg.vocab_size, pair.llm_cfg.vocab_size) == (slm_tok.vocab_size,
                                                                  llm_tok.vocab_size)
  ratio = (sum(map(len, llm_tok.encode_batch(pair_lib.sample_lines(config))))
           / sum(map(len, slm_tok.encode_batch(pair_lib.sample_lines(config)))))
  assert pair.llm_step_ratio == pytest.approx(max(1.0, ratio))
  assert ratio > 1.2 if llm.endswith("_uni") else ratio < 0.8  # unigram writes more tokens
  records = pair_lib.load_records(config, pair, "test", 8)
  batch = pair_lib.make_episodes(config, pair, records)
  private = [r for r, rec in enumerate(records) if "<priv>" in rec["question"]]
  assert private
  for r, rec in enumerate(records):
    n, nr = batch["llm_prompt_len_B"][r], batch["llm_redacted_prompt_len_B"][r]
    full, red = batch["llm_prompt_BxP"][r, :n].tolist(), batch["llm_redacted_prompt_BxP"][r, :nr]
    assert full == [llm_tok.bos_id] + llm_tok.encode(rec["question"]) + [llm_tok.sep_id]
    assert llm_tok.decode(full) == slm_tok.decode(batch["prompt_BxP"][r])
    assert not np.isin(red, [llm_tok.priv_open_id, llm_tok.priv_close_id]).any()
    assert (llm_tok.redacted_id in red.tolist()) == (r in private)
  assert batch["llm_prompt_BxP"].shape[1] == pair_lib.llm_prompt_len(config, pair) >= (
      config.prompt_len)
  hand = pair_lib.make_setup(config, pair).handoff
  assert hand is not None
  assert hand.llm_step_tokens == math.ceil(config.rollout.step_tokens * pair.llm_step_ratio)


def test_same_tokenizer_presets_go_the_old_way(root):
  config = _config(root, "test_tiny_uni", "gpt2_tiny_uni")
  pair = pair_lib.load_pair(config)
  assert pair.llm_tokenizer is None and pair_lib.make_setup(config, pair).handoff is None
  batch = pair_lib.make_episodes(config, pair, pair_lib.load_records(config, pair, "test", 2))
  assert not any(k.startswith("llm_") for k in batch)


def test_gate_training_evaluation_and_export(root):
  config = _config(root, "test_tiny", "gpt2_tiny_uni")
  config.rl.num_steps = 2
  workdir = str(root / "gate_mixed")
  gate_lib.train(config, workdir)
  pair = pair_lib.load_pair(config)
  gate_params, _ = pair_lib.load_gate(workdir)
  policies = evaluate.evaluate(config, pair, gate_params, str(root / "eval_mixed"))["policies"]
  assert {"gate", "slm_alone", "llm_alone", "random_0.5", "threshold_-1"} <= set(policies)
  assert policies["slm_alone"]["calls"]["mean"] == 0
  llm_alone = policies["llm_alone"]
  assert llm_alone["calls"]["mean"] == config.rollout.num_steps
  assert llm_alone["llm_tokens"]["mean"] > 0
  # The export holds both tokenizers and rebuilds the same pair and rollout setup.
  config2, pair2, _ = export.load_export(export.write_export(config, workdir,
                                                             str(root / "export_mixed")))
  assert pair2.llm_tokenizer.fingerprint == pair.llm_tokenizer.fingerprint
  assert pair2.llm_step_ratio == pair.llm_step_ratio
  assert pair_lib.make_setup(config2, pair2) == pair_lib.make_setup(config, pair)
  assert pair_lib.llm_prompt_len(config2, pair2) == pair_lib.llm_prompt_len(config, pair)


SLM_LINE, HELPER_LINE = "price=14", "answer=7"  # what the chain SLM and helper write


def test_a_gate_trains_with_several_llms_in_turn(root):
  """train_llms: the gate's training steps take the LLMs in turn, each through its own pair
  (here one of each tokenizer); the saved gate names them all."""
  config = fake_models.gate_config(root, "runlocal,slm=test_tiny,llm=gpt2_tiny,"
                                         "train_llms=gpt2_tiny_uni,steps=4")
  config.log_every = 1
  config_check.check_gate_training(config)
  workdir = str(root / "gate_two_llms")
  gate_lib.train(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [r for r in map(json.loads, f) if "train_llm" in r]
  assert [r["train_llm"] for r in rows] == [0, 1, 0, 1]
  # The same-tokenizer helper writes at most step_tokens per call; gpt2_tiny_uni's steps are
  # longer (its tokens per SLM token), and its calls use them.
  per_call = {w: [r["llm_tokens"] / r["calls"] for r in rows if r["train_llm"] == w
                  and r["calls"] > 0] for w in (0, 1)}
  assert per_call[0] and max(per_call[0]) <= config.rollout.step_tokens
  assert max(per_call[1]) > config.rollout.step_tokens
  _, metadata = pair_lib.load_gate(workdir)
  assert metadata["train_llms"] == ["gpt2_tiny", "gpt2_tiny_uni"]
  for bad in ("gpt2_tiny", "gpt2_tiny_uni:gpt2_tiny_uni"):
    with pytest.raises(errors.ConfigError, match="extra_llms"):
      config_check.check_gate_training(fake_models.gate_config(
          root, f"runlocal,slm=test_tiny,llm=gpt2_tiny,train_llms={bad}"))


def test_a_helper_writes_what_it_writes_in_a_same_tokenizer_pair(root):
  """The presets' tokenizers, episodes and setups; the models replaced by chains (an SLM that
  writes SLM_LINE, a helper that writes HELPER_LINE) so that the text is known: with the
  helper in the unigram tokenizer (gpt2_tiny_uni's pair), every token, decision and call of
  the SLM's side is what it is with the helper in the SLM's tokenizer (gpt2_tiny's pair), for
  random asks of either kind; redacted asks expose nothing, full asks of a private question
  do (counted in the helper's tokens)."""
  runs = {}
  for llm in ("gpt2_tiny", "gpt2_tiny_uni"):
    config = _config(root, "test_tiny", llm)
    pair = pair_lib.load_pair(config)
    slm_tok, llm_tok = pair.tokenizer, pair.llm_tokenizer or pair.tokenizer
    slm_cfg, slm = fake_models.chain_model(slm_tok.encode(SLM_LINE), slm_tok.sep_id,
                                           slm_tok.vocab_size)
    llm_cfg, helper = fake_models.chain_model(llm_tok.encode(HELPER_LINE), llm_tok.sep_id,
                                              llm_tok.vocab_size)
    pair = dataclasses.replace(pair, slm_params=slm, slm_cfg=slm_cfg, llm_params=helper,
                               llm_cfg=llm_cfg)
    records = pair_lib.load_records(config, pair, "test", 8)
    batch = pair_lib.make_episodes(config, pair, records)
    setup = pair_lib.make_setup(config, pair)
    gate = pair_lib.init_gate(config, pair)
    for kind in ("ask", "ask_redacted"):
      args = rollout_lib.Policy(kind="random", ask_kind=kind).args(
          config.rollout.num_steps, setup.gate.actions, 0.5)
      runs[llm, kind] = jax.device_get(rollout_lib.rollout(
          slm, helper, gate, batch, jax.random.PRNGKey(0), args, setup=setup))
  private_B = np.array(["<priv>" in r["question"] for r in records])
  assert private_B.any() and not private_B.all()
  for kind in ("ask", "ask_redacted"):
    (same_steps, same), (steps, mixed) = runs["gpt2_tiny", kind], runs["gpt2_tiny_uni", kind]
    for field in ("tokens_BxL", "length_B", "writer_BxL", "calls_B", "overflow_B",
                  "correct_B"):
      np.testing.assert_array_equal(getattr(mixed, field), getattr(same, field),
                                    err_msg=field)
    for field in ("routed", "overflow", "action", "valid"):
      np.testing.assert_array_equal(getattr(steps, field), getattr(same_steps, field))
    assert 0 < int(mixed.calls_B.sum()) < steps.valid.sum() and not mixed.overflow_B.any()
    for b in range(len(records)):
      written = slm_tok.decode(mixed.tokens_BxL[b, batch["prompt_len_B"][b]:mixed.length_B[b]])
      want = [HELPER_LINE if steps.routed[s, b] else SLM_LINE
              for s in range(steps.routed.shape[0]) if steps.valid[s, b]]
      assert written.split("\n")[:len(want)] == want
    private_asks = steps.routed & private_B[None]
    assert private_asks.any()
    if kind == "ask":  # <priv> digits </priv>, in the helper's tokens
      assert (steps.exposed[private_asks] > 0).all()
    assert (steps.exposed[steps.routed & ~private_B[None]] == 0).all()
    assert kind == "ask" or int(mixed.exposed_B.sum()) == 0


def test_bad_input_is_refused_clearly(root):
  # The task's tokenizer must be the SLM's: a config naming another one is refused.
  config = _config(root, "test_tiny_uni", "gpt2_tiny")
  pair = pair_lib.load_pair(config)
  del config["tokenizer_type"]
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="tokenizer_type='bpe' must "
                     "be the SLM's recipe's"):
    pair_lib.load_records(config, pair, "test", 2)
  config = _config(root, "test_tiny", "gpt2_tiny_uni")
  config.rollout.granularity = "tokens"
  with pytest.raises(errors.ConfigError, match="granularity"):
    pair_lib.load_pair(config)
  pre = recipes.pretrain_config("test_tiny_uni", runlocal=True)
  pre.tokenizer_type = "wordpiece"
  with pytest.raises(errors.ConfigError, match="tokenizer_type='wordpiece'; valid: bpe, unigram"):
    config_check.check_pretraining(pre)
  with pytest.raises(errors.ConfigError, match="wordpiece"):
    assets_lib.prepare_assets(pair_lib.task_config(pre), str(root / "never"), 512, "wordpiece")
  assert not os.path.exists(root / "never")
