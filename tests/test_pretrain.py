"""A runlocal pretraining run lowers the loss, evaluates, and resumes exactly from a checkpoint."""
import json
import os

import jax
import numpy as np

from collab.train import metrics as metrics_lib
from collab.train import pretrain
from collab import pair as pair_lib
from configs import pretrain as pretrain_configs


def _config(tmp_path, steps):
  config = pretrain_configs.get_config(f"runlocal,steps={steps}")
  config.assets_dir = str(tmp_path / "assets")
  config.ckpt_every = 10
  return config


def _final_params(workdir):
  params, _, _ = pair_lib.load_model(workdir)
  return params


def test_runlocal_pretraining_learns_and_resumes(tmp_path):
  config = _config(tmp_path, steps=40)
  config.learning_rate = 1e-2
  full_dir = str(tmp_path / "full")
  results = pretrain.train(config, full_dir)
  rows = metrics_lib.read_metrics(full_dir)
  losses = [r["loss"] for r in rows if "loss" in r]
  assert losses[-1] < 0.8 * losses[0], losses
  assert 0.0 <= results["final_accuracy"] <= 1.0
  assert results["step_count/lookup"] > 0 and "step_accuracy/arith" in results
  with open(os.path.join(full_dir, "eval.json")) as f:
    assert json.load(f)["model"] == "test_tiny"

  # Interrupted after 20 steps, then resumed: same final parameters as the uninterrupted run.
  split_dir = str(tmp_path / "split")
  assert pretrain.train(config, split_dir, stop_after_steps=20) is None
  assert pretrain.train(config, split_dir)["final_accuracy"] == results["final_accuracy"]
  full = _final_params(full_dir)
  split = _final_params(split_dir)
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(split)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpoint_with_another_tokenizer_is_a_clear_error(tmp_path):
  import pytest
  from collab.data import task as task_lib
  from collab.data import tokenizer as tokenizer_lib
  config = _config(tmp_path, steps=2)
  workdir = str(tmp_path / "run")
  pretrain.train(config, workdir)
  other = tokenizer_lib.train_tokenizer(
      task_lib.corpus_texts(task_lib.TaskConfig(world_seed=5, num_train=100), 200),
      vocab_size=200)
  other.save(os.path.join(workdir, "model", "tokenizer.model"))
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="model"):
    pair_lib.load_model(workdir)
  # Resuming training when the shared tokenizer changed is refused too.
  tok_path = [p for p in os.listdir(config.assets_dir)][0]
  tok_file = os.path.join(config.assets_dir, tok_path, f"tokenizer_v{config.vocab_size}.model")
  other.save(tok_file)
  config.num_steps = 4
  with pytest.raises(tokenizer_lib.TokenizerMismatchError, match="checkpoints"):
    pretrain.train(config, workdir)
