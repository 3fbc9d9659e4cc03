"""Bad input fails early and clearly, and never damages an existing checkpoint or export.

Cases: unknown config keys and badly typed values, a wrong preset name, a missing or corrupt
checkpoint, a gate checkpoint written with another tokenizer, NaN in a loss (stop or skip), a
workdir left by another config (refused, or resumed / overwritten when told), a failed export.
Covered elsewhere: a pretraining checkpoint or export with another tokenizer
(test_pretrain.py, test_tokenizer.py), malformed GSM8K lines (test_tfds_builders.py), damaged
or edited evaluation exports (test_export.py), corrupt orbax steps (test_checkpoint.py).
Each test that damages something checks the files it must not touch, byte for byte.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import shutil

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import fake_models
from collab import checkpoint as ckpt_lib
from collab.data import tokenizer as tokenizer_lib
from collab.train import gate
from collab.train import metrics as metrics_lib
from collab.train import pretrain
from collab import pair as pair_lib
from configs import gate as gate_configs
from configs import pretrain as pretrain_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(*dirs) -> dict[str, str]:
  """sha256 of every file under `dirs` (missing dirs are empty)."""
  out = {}
  for d in dirs:
    for path in sorted(glob.glob(os.path.join(d, "**"), recursive=True)):
      if os.path.isfile(path):
        out[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
  return out


@pytest.fixture(scope="module")
def assets_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("assets"))


def _pre_config(assets_dir, steps, **overrides):
  config = pretrain_configs.get_config(f"runlocal,steps={steps}")
  config.assets_dir = assets_dir
  config.task.num_train = 300  # a smaller data set builds faster
  config.ckpt_every = config.log_every = 2
  config.eval.num_problems = 8
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def pretrained(assets_dir, tmp_path_factory):
  """A finished 4-step run (checkpoints 2 and 4, model/ export) to copy and damage."""
  workdir = str(tmp_path_factory.mktemp("pre") / "run")
  pretrain.train(_pre_config(assets_dir, 4), workdir)
  return workdir


@pytest.fixture
def run_copy(pretrained, tmp_path):
  path = str(tmp_path / "run")
  shutil.copytree(pretrained, path)
  return path


def _run_files(workdir):
  return _snapshot(os.path.join(workdir, "checkpoints"), os.path.join(workdir, "model"))


# --------------------------------------------------------------------------- configs


def test_unknown_or_badly_typed_config_arguments():
  with pytest.raises(ValueError, match="Unknown config argument 'stepz'"):
    pretrain_configs.get_config("runlocal,stepz=3")
  with pytest.raises(ValueError, match="'steps' expects a int, got 'many'"):
    pretrain_configs.get_config("steps=many")
  with pytest.raises(ValueError, match="'call_cost' expects a float"):
    gate_configs.get_config("call_cost=cheap")
  # On the command line, the locked config refuses keys it does not have.
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
  with pytest.raises(flags.UnrecognizedFlagError, match="config.rl.num_stepz"):
    fv(["prog", f"--config={ROOT}/configs/gate.py:runlocal", "--config.rl.num_stepz=3"])


def test_unknown_config_keys_are_named_before_anything_is_written(assets_dir, tmp_path):
  config = _pre_config(assets_dir, 2)
  config.task.num_trian = 5
  workdir = str(tmp_path / "typo")
  with pytest.raises(ValueError, match=r"Unknown key\(s\) \['num_trian'\] in config.task"):
    pretrain.train(config, workdir)
  config = gate_configs.get_config("runlocal")
  config.gate.hiden_dim = 8
  with pytest.raises(ValueError, match=r"\['hiden_dim'\] in config.gate; valid: \['actions'"):
    gate.train(config, workdir)
  config = _pre_config(assets_dir, 2, on_nonfinite="ignore")
  with pytest.raises(ValueError, match="on_nonfinite must be one of"):
    pretrain.train(config, workdir)
  assert not os.path.exists(workdir)


def test_wrong_preset_name(assets_dir, tmp_path):
  with pytest.raises(ValueError, match="Unknown pretraining preset 'slm_xxl'"):
    pretrain_configs.get_config("model=slm_xxl")
  config = _pre_config(assets_dir, 2)
  config.preset = config.model = "slm_xxl"  # edited after the config file checked it
  workdir = str(tmp_path / "w")
  with pytest.raises(ValueError, match="Unknown model preset 'slm_xxl'"):
    pretrain.train(config, workdir)
  config = gate_configs.get_config("runlocal,llm=llm_xxl")
  config.pretrain_dir = str(tmp_path / "pretrain")
  with pytest.raises(ValueError, match="Unknown pretraining preset 'llm_xxl'"):
    gate.train(config, workdir)
  assert not os.path.exists(workdir) and not os.path.exists(config.pretrain_dir)


# --------------------------------------------------------------------- checkpoints


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_checkpoint_stops_with_a_way_out(assets_dir, run_copy):
  for path in glob.glob(f"{run_copy}/checkpoints/4/state/**/d/*", recursive=True):
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  before = _run_files(run_copy)
  with pytest.raises(ckpt_lib.CheckpointRestoreError,
                     match=r"step 4 at .*Older saved steps: \[2\]; move .* to resume from step 2"):
    pretrain.train(_pre_config(assets_dir, 6), run_copy)
  assert _run_files(run_copy) == before  # nothing deleted, nothing new saved
  # Doing what the message says resumes from step 2.
  os.rename(f"{run_copy}/checkpoints/4", f"{run_copy}/damaged_step_4")
  assert pretrain.train(_pre_config(assets_dir, 6), run_copy, stop_after_steps=1) is None
  with ckpt_lib.Checkpointer(f"{run_copy}/checkpoints") as ckpt:
    assert ckpt.all_steps() == [2, 3]


def test_missing_checkpoint_or_export_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"No params export found at {tmp_path}/nothing"):
    pair_lib.load_model(str(tmp_path / "nothing"))
  with pytest.raises(FileNotFoundError, match=f"{tmp_path}/nothing/gate"):
    pair_lib.load_gate(str(tmp_path / "nothing"))
  with ckpt_lib.Checkpointer(tmp_path / "ckpt") as ckpt:
    with pytest.raises(FileNotFoundError, match="No checkpoint found in"):
      ckpt.restore(target={"x": np.zeros(2)})


def test_failed_export_keeps_the_previous_one(run_copy, monkeypatch):
  model_dir = os.path.join(run_copy, "model")
  before = _snapshot(model_dir)
  params, metadata = ckpt_lib.load_params(model_dir)
  with pytest.raises(TypeError, match="not JSON"):
    ckpt_lib.save_params(model_dir, params, metadata={"f": object()}, overwrite=True)
  # A crash while the tokenizer is copied into a new model/ export.
  def broken_copy(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr(pretrain.shutil, "copyfile", broken_copy)
  with pytest.raises(OSError, match="disk full"):
    pretrain.export_model(run_copy, params, metadata, None)
  assert _snapshot(model_dir) == before
  pair_lib.load_model(run_copy)
  # The next export replaces it, and leaves no staging directory behind.
  monkeypatch.undo()
  pretrain.export_model(run_copy, params, metadata, None)
  assert sorted(os.listdir(run_copy)) == sorted(
      ["checkpoints", "config.json", "eval.json", "metrics.jsonl", "model", "tb",
       "tokenizer.model"])
  pair_lib.load_model(run_copy)


# --------------------------------------------------------------------------- NaN


class _NanFrom:
  """The pretraining batches, with a NaN loss mask from step `first` on (a NaN loss)."""

  def __init__(self, dataset, first):
    self.dataset, self.first = dataset, first

  def __len__(self):
    return len(self.dataset)

  def __getitem__(self, step):
    batch = dict(self.dataset[step])
    if step >= self.first:
      batch["loss_mask_BxT"] = batch["loss_mask_BxT"] * np.float32(np.nan)
    return batch


def _inject_nan(monkeypatch, first):
  make = pretrain.pipeline.make_lm_dataset
  monkeypatch.setattr(pretrain.pipeline, "make_lm_dataset",
                      lambda *a, **kw: _NanFrom(make(*a, **kw), first))


def test_nan_loss_stops_and_keeps_the_last_checkpoint(assets_dir, run_copy, monkeypatch):
  _inject_nan(monkeypatch, first=5)  # step index 5 is the 6th step
  before = _run_files(run_copy)
  with pytest.raises(FloatingPointError, match=r"at step 6 .*last checkpoint \(step 4\) is "
                     r"kept.*on_nonfinite='skip'"):
    pretrain.train(_pre_config(assets_dir, 8), run_copy)
  # Step 5 was finite but is no checkpoint step (ckpt_every=2): nothing changed on disk.
  assert _run_files(run_copy) == before


def test_nan_loss_skipped_leaves_params_untouched(assets_dir, run_copy, monkeypatch):
  """With on_nonfinite='skip', steps 5..8 (all NaN) change nothing: the export equals step 4."""
  _inject_nan(monkeypatch, first=4)
  config = _pre_config(assets_dir, 8, on_nonfinite="skip")  # may change on resume
  with ckpt_lib.Checkpointer(f"{run_copy}/checkpoints") as ckpt:
    step4 = ckpt.restore(4, target=None)[0]["params"]
  pretrain.train(config, run_copy)
  final = pair_lib.load_model(run_copy)[0]
  for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(step4)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert metrics_lib.read_metrics(run_copy)[-2]["skipped_steps"] == 4


# ------------------------------------------------------------------------ workdirs


def test_workdir_of_another_config_is_refused_unless_told(assets_dir, run_copy, capsys):
  other = _pre_config(assets_dir, 4, learning_rate=1e-4)
  before = _snapshot(run_copy)
  with pytest.raises(ValueError, match=r"another config \(differs in \['learning_rate'\]\).*"
                     r"--resume.*--overwrite"):
    pretrain.train(other, run_copy)
  assert _snapshot(run_copy) == before  # config.json included
  # --resume: the run goes on from its last checkpoint under the new config.
  pretrain.train(_pre_config(assets_dir, 6, learning_rate=1e-4), run_copy,
                 workdir_mode="resume", stop_after_steps=1)
  assert "Resumed from step 4" in capsys.readouterr().out
  assert json.load(open(f"{run_copy}/config.json"))["learning_rate"] == 1e-4
  # --overwrite: the old run is deleted and a new one starts at step 0.
  pretrain.train(_pre_config(assets_dir, 6), run_copy, workdir_mode="overwrite",
                 stop_after_steps=2)
  out = capsys.readouterr().out
  assert "Overwrite: deleted" in out and "Resumed" not in out
  assert sorted(os.listdir(f"{run_copy}/checkpoints")) == ["2"]
  assert not os.path.exists(f"{run_copy}/model")


# ---------------------------------------------------------------------------- gate


@pytest.fixture(scope="module")
def gate_run(assets_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("gate")
  config = fake_models.gate_config(root, "runlocal,steps=2")
  config.assets_dir = assets_dir
  fake_models.export_random_pair(config)
  workdir = str(root / "run")
  gate.train(config, workdir)
  return config, workdir


def test_gate_refuses_another_config_and_another_tokenizer(gate_run, tmp_path):
  config, trained = gate_run
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir)
  before = _snapshot(workdir)
  other = gate_configs.get_config("runlocal,steps=2,call_cost=0.5")
  other.update(assets_dir=config.assets_dir, pretrain_dir=config.pretrain_dir)
  other.task.num_train, other.rl.num_train_problems = 300, 16
  with pytest.raises(ValueError, match=r"differs in \['costs.per_call'\]"):
    gate.train(other, workdir)
  assert _snapshot(workdir) == before
  # A checkpoint whose tokenizer is not the pair's: resuming it is refused.
  path = f"{workdir}/checkpoints/2/extra/metadata"  # the checkpoint's JSON item
  text = open(path).read()
  open(path, "w").write(text.replace(json.loads(text)["tokenizer_fingerprint"], "0" * 64))
  before = _snapshot(workdir)
  config = config.copy_and_resolve_references()
  config.rl.num_steps = 4
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="checkpoints"):
    gate.train(config, workdir)
  assert {k: v for k, v in _snapshot(workdir).items() if "config.json" not in k} == {
      k: v for k, v in before.items() if "config.json" not in k}


def test_gate_nan_loss_stops(gate_run, tmp_path, monkeypatch):
  config, trained = gate_run
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir)
  before = _snapshot(f"{workdir}/checkpoints", f"{workdir}/gate")
  reward = pair_lib.reward_config(config)
  nan_reward = dataclasses.replace(reward, cost_per_private_token=float("nan"))
  monkeypatch.setattr(pair_lib, "reward_config", lambda c: nan_reward)
  config = config.copy_and_resolve_references()
  config.rl.num_steps = 4
  with pytest.raises(FloatingPointError, match=r"at step 3 .*last checkpoint \(step 2\)"):
    gate.train(config, workdir)
  assert _snapshot(f"{workdir}/checkpoints", f"{workdir}/gate") == before
