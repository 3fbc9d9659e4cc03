"""Harder worlds (docs/worlds.md): held-out knowledge, a fallible LLM, an SLM sound at
arithmetic. Each option's property, checked on the data or facts it produces."""
import dataclasses
import importlib.util
import os

import numpy as np
import pytest

from collab import config_check
from collab import config_ranges
from collab import errors
from collab import hf_pair
from collab.data import pipeline
from collab.data import task as task_lib
from collab.data import tfds_task
from collab.data import tokenizer as tokenizer_lib
from collab.train import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = task_lib.TaskConfig(num_train=400, num_validation=200, num_test=200)
HELD = dataclasses.replace(CFG, heldout_entities=0.25)


def _gate_config(arg):
  path = os.path.join(ROOT, "configs", "gate.py")
  spec = importlib.util.spec_from_file_location("gate_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# ------------------------------------------------------------------ held-out knowledge


def test_heldout_test_lookups_never_occur_in_gate_training_problems():
  splits = task_lib.generate_splits(HELD)
  heldout_E = task_lib.World(HELD).heldout_mask()
  assert heldout_E.sum() == 50
  test_ents = {e for p in splits["test"] for e in p.entity_ids}
  gate_train_ents = {e for p in splits["validation"] for e in p.entity_ids}
  assert len(splits["test"]) == 200 and len(splits["validation"]) == 200
  assert test_ents and not test_ents & gate_train_ents
  assert heldout_E[sorted(test_ents)].all() and not heldout_E[sorted(gate_train_ents)].any()
  lookups = {s.entity for p in splits["test"] for s in p.steps if s.kind == "lookup"}
  assert lookups == test_ents
  # Pretraining data is the default world's, held-out entities included, so the SLM's
  # coverage applies to them as before (and the tokenizer's corpus is unchanged).
  assert splits["train"] == task_lib.generate_split(CFG, "train")
  assert heldout_E[[e for p in splits["train"] for e in p.entity_ids]].any()
  known_E = task_lib.World(HELD).known_mask(0.4)
  assert 0 < (known_E & heldout_E).sum() < heldout_E.sum()


def test_heldout_world_trains_the_default_worlds_tokenizer():
  # Models pretrained for the default world serve the held-out one: same corpus, same ids.
  tokens = [tokenizer_lib.train_tokenizer(task_lib.corpus_texts(c, 300), vocab_size=256)
            for c in (CFG, HELD)]
  assert tokens[0].fingerprint == tokens[1].fingerprint


def test_heldout_off_keeps_the_default_world_and_its_name():
  default = task_lib.generate_splits(CFG)
  assert task_lib.generate_splits(dataclasses.replace(CFG, heldout_entities=0.0)) == default
  test_ents = {e for p in default["test"] for e in p.entity_ids}
  assert test_ents & {e for p in default["validation"] for e in p.entity_ids}
  assert tfds_task.config_name(HELD) != tfds_task.config_name(CFG)
  assert "heldout_entities" not in recipes.task_defaults()


def test_gate_config_heldout_arg_and_its_checks():
  config = _gate_config("runlocal,heldout=0.25")
  assert config.task.heldout_entities == 0.25
  assert "heldout_entities" not in _gate_config("runlocal").task
  config.task.heldout_entities = 1.0
  with pytest.raises(errors.ConfigError, match="heldout_entities"):
    config_ranges.check_ranges(config, config_check.GATE)
  with pytest.raises(ValueError, match="heldout_entities"):
    task_lib.World(dataclasses.replace(CFG, heldout_entities=1.0)).heldout_mask()


def test_gate_config_eval_split_sealed_and_its_check():
  assert _gate_config("runlocal").eval.split == "test"
  config = _gate_config("runlocal,eval_split=sealed")
  assert config.eval.split == task_lib.SEALED
  config_check.check_gate(config)
  config.eval.split = "holdout"
  with pytest.raises(errors.ConfigError, match="eval.split='holdout'; valid: .*sealed"):
    config_check.check_gate(config)
  # JSONL problems (data_dir) have their own splits; a sealed.jsonl that is not there is a
  # clear error when the problems are read.
  config.data_dir = "/data/gsm8k"
  with pytest.raises(errors.ConfigError, match="valid: train, validation, test, sealed$"):
    config_check.check_gate(config)
  config.eval.split = task_lib.SEALED
  config_check.check_gate(config)
  with pytest.raises(errors.DataError, match="sealed.jsonl does not exist.*make word-problems"):
    hf_pair.gsm8k_records(config, "sealed")


# ------------------------------------------------------------------ a fallible LLM


def test_fallible_llm_knows_the_requested_facts_partly_disjoint_from_the_slm():
  world = task_lib.World(task_lib.TaskConfig())
  slm_E = recipes.known_mask(recipes.pretrain_config("slm_s"), world)
  llm_E = recipes.known_mask(recipes.pretrain_config("llm_fallible"), world)
  assert (slm_E.sum(), llm_E.sum()) == (80, 140)
  assert (llm_E & slm_E).sum() == 40       # overlap 0.5 of the SLM's 80
  assert (slm_E & ~llm_E).sum() == 40      # facts where asking hurts
  assert (~slm_E & ~llm_E).sum() == 20     # facts neither knows
  # The default LLMs know everything; the recipes without the option have no such keys.
  assert recipes.known_mask(recipes.pretrain_config("llm_s"), world).all()
  assert "fact_overlap" not in recipes.pretrain_config("llm_s")


@pytest.mark.parametrize("coverage,overlap", [(0.3, 0.0), (0.7, 1.0), (0.5, 0.25)])
def test_overlapping_mask_sizes(coverage, overlap):
  world = task_lib.World(task_lib.TaskConfig())
  ref_E = world.known_mask(0.4)
  known_E = world.known_mask_overlapping(coverage, 0.4, overlap)
  assert known_E.sum() == round(coverage * 200)
  assert (known_E & ref_E).sum() == round(overlap * 80)
  np.testing.assert_array_equal(known_E, world.known_mask_overlapping(coverage, 0.4, overlap))


def test_overlap_that_cannot_fit_is_a_config_error():
  config = recipes.pretrain_config("llm_fallible", runlocal=True)
  config.fact_overlap = 0.0  # 140 facts, none of the SLM's 80: only 120 outside them
  config.task.num_entities = 200
  with pytest.raises(errors.ConfigError, match="lower the overlap"):
    config_check.check_pretraining(config)
  config.fact_overlap = -0.5
  with pytest.raises(errors.ConfigError, match="fact_overlap"):
    config_check.check_pretraining(config)


# ------------------------------------------------------------------ an SLM sound at arithmetic


@pytest.fixture(scope="module")
def tok():
  return tokenizer_lib.train_tokenizer(task_lib.corpus_texts(CFG, 400), vocab_size=256)


def test_arith_weight_weights_arithmetic_lines_only(tok):
  problems = task_lib.generate_split(CFG, "train")[:64]
  plain = pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=64, seed=0)[0]
  heavy = pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=64, seed=0,
                                   arith_weight=3.0)[0]
  np.testing.assert_array_equal(plain["tokens_BxT"], heavy["tokens_BxT"])
  ratio = heavy["loss_mask_BxT"][plain["loss_mask_BxT"] > 0] / plain["loss_mask_BxT"][
      plain["loss_mask_BxT"] > 0]
  assert set(np.unique(ratio)) == {1.0, 3.0}
  by_text = {p.text(): p for p in problems}
  for tokens_T, w_T in zip(heavy["tokens_BxT"], heavy["loss_mask_BxT"]):
    p = by_text[tok.decode(tokens_T[1:])]
    arith = [s.text for s in p.steps if task_lib.step_category(s.kind) == "arith"]
    assert tok.decode(tokens_T[w_T == 3.0]).replace(" ", "") == "".join(arith).replace(" ", "")
  with pytest.raises(ValueError, match="arith_weight"):
    pipeline.make_lm_dataset(problems, tok, seq_len=128, batch_size=8, seed=0, arith_weight=0)


def test_slm_arith_recipe_keeps_the_slm_facts_and_trains_arithmetic_harder():
  world = task_lib.World(task_lib.TaskConfig())
  base, arith = recipes.pretrain_config("slm_s"), recipes.pretrain_config("slm_arith")
  np.testing.assert_array_equal(recipes.known_mask(base, world),
                                recipes.known_mask(arith, world))
  assert arith.preset == base.preset and arith.arith_weight == 3.0
  assert arith.num_steps >= recipes.get_recipe("llm_l").num_steps
  assert "arith_weight" not in base
  arith.arith_weight = 0.0
  with pytest.raises(errors.ConfigError, match="arith_weight"):
    config_check.check_pretraining(arith)


def test_worlds_never_share_study_baselines():
  from collab.studies import runner
  default, held = _gate_config("runlocal"), _gate_config("runlocal,heldout=0.25")
  assert runner.baseline_key(default) == "test_tiny__gpt2_tiny__line16x8_b8"
  assert runner.baseline_key(held) == "test_tiny__gpt2_tiny__line16x8_b8__heldout_entities0.25"


def test_worlds_study_gate_args_name_their_settings():
  from configs.studies import worlds
  runs = worlds.get_config("worlds=fallible,gate=steps=480:init=router,seeds=1").runs
  assert [r["name"] for r in runs] == ["fallible+steps480+initrouter__s0"]
  assert runs[0]["arg"].endswith("steps=480,init=router,seed=0")
  assert [r["name"] for r in worlds.get_config("worlds=arith,seeds=1").runs] == ["arith__s0"]


def test_pretrain_config_args_set_overlap_and_arith_weight():
  path = os.path.join(ROOT, "configs", "pretrain.py")
  spec = importlib.util.spec_from_file_location("pretrain_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("model=llm_s,coverage=0.6,overlap=0.25")
  assert (config.fact_coverage, config.fact_overlap, config.overlap_coverage) == (0.6, 0.25, 0.4)
  world = task_lib.World(task_lib.TaskConfig())
  known_E = recipes.known_mask(config, world)
  assert known_E.sum() == 120 and (known_E & world.known_mask(0.4)).sum() == 20
  assert "fact_overlap" not in module.get_config("model=llm_fallible,overlap=-1")
  assert module.get_config("model=slm_s,arith_weight=2").arith_weight == 2.0


def test_headline_word_problems_run_one_pair_per_pretraining_seed_on_request():
  from configs.studies import headline
  runs = headline.get_config("worlds=word_problems").runs
  assert [r["name"] for r in runs] == [f"word_problems__s{s}" for s in range(3)]
  assert all(r["arg"].startswith("slm=wp_slm,llm=wp_llm,") for r in runs)
  runs = headline.get_config("worlds=word_problems,wp_pretrain_seeds=3,data_dir=/wp").runs
  assert [r["name"] for r in runs] == [f"word_problems_p{p}__s{p}" for p in range(3)]
  assert runs[2]["arg"].startswith("slm=wp_slm_p2,llm=wp_llm_p2,")
  assert runs[2]["arg"].endswith(",data_dir=/wp,seed=2")
  assert recipes.get_recipe("wp_llm_p2") == dataclasses.replace(recipes.get_recipe("wp_llm"),
                                                                seed=2)


def test_headline_gate_arg_adds_gate_args_and_names_the_settings():
  from configs.studies import headline
  runs = headline.get_config("worlds=fallible,gate=draft_states=True:steps=480").runs
  assert [r["name"] for r in runs] == [f"fallible+draft_statesTrue+steps480__s{s}"
                                       for s in range(3)]
  assert all(r["arg"].startswith("slm=slm_s,llm=llm_fallible,") for r in runs)
  assert runs[0]["arg"].endswith(",draft_states=True,steps=480,seed=0")
  runs = headline.get_config("worlds=default,pretrain_seeds=2,gate=draft_states=True").runs
  assert [r["setting"] for r in runs] == [f"default_p{p}+draft_statesTrue" for p in range(2)]
  assert runs[1]["arg"].startswith("slm=slm_s_p1,llm=llm_s_p1,")
