"""Every config file loads, with its documented arguments, and bad arguments are clear errors."""
import glob
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True))
# Files starting with "_" are helpers shared by configs, not configs.
CONFIG_FILES = [f for f in CONFIG_FILES if not os.path.basename(f).startswith("_")]


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_config_loads(path):
  module = _load(path)
  # DERIVED: reads its architectures from the checkpoints named; without them (hf.py names
  # none, smollm2.py those of `make real-models`) a clear error.
  if getattr(module, "DERIVED", False) and getattr(module, "missing", lambda: "none named")():
    with pytest.raises(ValueError, match="slm_dir is required|does not exist"):
      module.get_config(None)
    return
  for arg in (None, "runlocal"):
    config = module.get_config(arg)
    assert config.to_json_best_effort()
  if hasattr(module, "get_sweep"):
    for item in module.get_sweep():
      assert module.get_config(item["config"].split(":", 1)[1])


def test_pretrain_config_args():
  module = _load(os.path.join(ROOT, "configs", "pretrain.py"))
  config = module.get_config("model=llm_s,coverage=0.25,steps=7")
  assert (config.model, config.fact_coverage, config.num_steps) == ("llm_s", 0.25, 7)
  with pytest.raises(ValueError, match="Unknown config argument 'modle'"):
    module.get_config("modle=slm_s")
  with pytest.raises(ValueError, match="Unknown pretraining preset 'slm_xxl'"):
    module.get_config("model=slm_xxl")


def test_constraints_selection_and_its_last_step_control_share_one_gate():
  from collab.studies import runner
  module = _load(os.path.join(ROOT, "configs", "studies", "constraints.py"))
  arg = "call_costs=,token_costs=,privacy_costs=,price_range=0.01:1,eval_prices=0.1:0.5,select=200"
  picked, last = (runner.runs_of(module.get_config(a)) for a in (arg, arg + ",last=True"))
  assert [r.train_name for r in picked] == [r.train_name for r in last]
  assert {r.train_name for r in picked} == {f"cond0.01-1-sel200__s{s}" for s in range(3)}
  assert {r.gate_dir for r in picked} == {"gate"} and {r.gate_dir for r in last} == {"gate_last"}
  assert all("select=200" in r.arg for r in picked)
  with pytest.raises(ValueError, match="last=True evaluates the last step"):
    module.get_config("price_range=0.01:1,last=True")


def test_budget_price_mode_tells_one_gate_per_seed_a_price_per_target():
  from collab.studies import runner
  module = _load(os.path.join(ROOT, "configs", "studies", "budget.py"))
  runs = runner.runs_of(module.get_config("calls=1:2,tokens=10,mode=price+dual,select=100"))
  priced = [r for r in runs if r.price_target]
  assert {r.train_name for r in priced} == {f"cond0.01-1_sel100__s{s}" for s in range(3)}
  assert {(r.setting, r.price_target) for r in priced} == {
      ("calls=1_price", ("calls", 1.0)), ("calls=2_price", ("calls", 2.0)),
      ("tokens=10_price", ("llm_tokens", 10.0))}
  assert all("price_offset=True" in r.arg and "select=100" in r.arg for r in priced)
  assert len({r.arg for r in priced}) == 3  # one training config per seed, whatever the target
  assert sum(1 for r in runs if "target_calls" in r.arg) == 6  # dual: a gate per target and seed
  mixed = runner.runs_of(module.get_config("calls=1,tokens=,price_calls=0.5:3,mode=price+dual"))
  assert sorted({r.price_target for r in mixed if r.price_target}) == [("calls", 0.5),
                                                                      ("calls", 3.0)]
  assert {r.setting for r in mixed if not r.price_target} == {"calls=1"}
  with pytest.raises(ValueError, match="mode must be"):
    module.get_config("mode=dual+bogus")


def test_first_seed_adds_new_seeds_beside_a_finished_run():
  module = _load(os.path.join(ROOT, "configs", "studies", "granularity.py"))
  config = module.get_config("seeds=2,first_seed=3,step_tokens=8")
  assert config.seeds == (3, 4)
  assert [r["name"] for r in config.runs] == ["line__s3", "line__s4", "tokens8__s3", "tokens8__s4"]
  assert all(r["arg"].endswith(f",seed={r['name'][-1]}") for r in config.runs)
