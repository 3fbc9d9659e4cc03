"""The evaluation export: round trip, manifest verification, atomic no-overwrite, rollout."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import fake_models
import xla_env
from collab import export
from collab import rollout as rollout_lib
from collab.data import assets as assets_lib
from collab.train import gate
from collab import pair as pair_lib


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  config = fake_models.gate_config(root, "runlocal,steps=2")
  fake_models.export_random_pair(config)
  workdir = str(root / "gate")
  gate.train(config, workdir)
  path = export.write_export(config, workdir, str(root / "out" / "export"))
  return dict(config=config, workdir=workdir, path=path, root=root)


@pytest.fixture
def copy(trained, tmp_path):
  """A private copy of the export for a test to damage."""
  path = str(tmp_path / "export")
  shutil.copytree(trained["path"], path)
  return path


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip(trained):
  config, pair, gate_params = export.load_export(trained["path"])
  original = pair_lib.load_pair(trained["config"])
  _assert_trees_equal(gate_params, pair_lib.load_gate(trained["workdir"])[0])
  _assert_trees_equal(pair.slm_params, original.slm_params)
  _assert_trees_equal(pair.llm_params, original.llm_params)
  assert (pair.slm_cfg, pair.llm_cfg) == (original.slm_cfg, original.llm_cfg)
  assert pair.tokenizer.fingerprint == original.tokenizer.fingerprint
  assert config.to_dict() == trained["config"].to_dict()  # tuples came back as tuples
  hash(pair_lib.make_setup(config, pair))
  # A complete export, and no temp directories left beside it.
  assert os.listdir(os.path.dirname(trained["path"])) == ["export"]
  info = json.load(open(os.path.join(trained["path"], "export.json")))
  assert info["format_version"] == export.FORMAT_VERSION and "package_version" in info


def test_rollout_from_export(trained):
  config, pair, gate_params = export.load_export(trained["path"])
  assets = assets_lib.prepare_assets(pair_lib.task_config(config), config.assets_dir,
                                     config.vocab_size)
  batch = pair_lib.make_episodes(config, pair, assets_lib.load_records(assets, "test", 2))
  setup = pair_lib.make_setup(config, pair)
  policy = rollout_lib.Policy(kind="gate").args(setup.rollout.num_steps, setup.gate.actions)
  steps, final = rollout_lib.rollout(pair.slm_params, pair.llm_params, gate_params, batch,
                                     jax.random.PRNGKey(0), policy, setup=setup)
  assert steps.action.shape == (config.rollout.num_steps, 2)
  assert final.correct_B.shape == (2,)


def _find(path):
  """A file of the slm params (the largest one: its array data)."""
  files = [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(path, "slm")) for n in ns]
  return max(files, key=os.path.getsize)


def test_flipped_byte_is_caught(copy):
  target = _find(copy)
  data = bytearray(open(target, "rb").read())
  data[len(data) // 2] ^= 1
  open(target, "wb").write(bytes(data))
  with pytest.raises(export.ExportError, match="sha256 mismatch in slm/"):
    export.load_export(copy)


def test_truncated_file_is_caught(copy):
  target = _find(copy)
  with open(target, "r+b") as f:
    f.truncate(os.path.getsize(target) - 1)
  with pytest.raises(export.ExportError, match="size mismatch in slm/"):
    export.load_export(copy)


def test_missing_file_is_caught(copy):
  os.remove(os.path.join(copy, "tokenizer.model"))
  with pytest.raises(export.ExportError, match="missing file tokenizer.model"):
    export.load_export(copy)


def test_extra_file_is_caught(copy):
  open(os.path.join(copy, "gate", "notes.txt"), "w").write("hi")
  with pytest.raises(export.ExportError, match="unexpected file gate/notes.txt"):
    export.load_export(copy)


def test_edited_manifest_is_caught(copy):
  path = os.path.join(copy, "manifest.json")
  manifest = json.load(open(path))
  manifest["files"]["config.json"]["sha256"] = "0" * 64
  json.dump(manifest, open(path, "w"))
  with pytest.raises(export.ExportError, match="sha256 mismatch in config.json"):
    export.load_export(copy)
  manifest["format_version"] = 99
  json.dump(manifest, open(path, "w"))
  with pytest.raises(export.ExportError, match="unknown export format version 99"):
    export.load_export(copy)
  open(path, "w").write("{not json")
  with pytest.raises(export.ExportError, match="unreadable manifest"):
    export.load_export(copy)
  os.remove(path)
  with pytest.raises(export.ExportError, match="missing manifest.json"):
    export.load_export(copy)


def test_refuses_to_overwrite(trained, tmp_path):
  config, workdir = trained["config"], trained["workdir"]
  with pytest.raises(FileExistsError, match="overwrite=True"):
    export.write_export(config, workdir, trained["path"])
  not_an_export = tmp_path / "home"
  not_an_export.mkdir()
  (not_an_export / "precious.txt").write_text("x")
  with pytest.raises(FileExistsError, match="not an export"):
    export.write_export(config, workdir, str(not_an_export), overwrite=True)
  # Overwriting an export replaces it with a verified one.
  path = str(tmp_path / "export")
  shutil.copytree(trained["path"], path)
  os.remove(os.path.join(path, "config.json"))
  export.write_export(config, workdir, path, overwrite=True)
  export.verify_export(path)
  assert sorted(os.listdir(tmp_path)) == ["export", "home"]


def test_command_line_in_a_one_device_process(trained, tmp_path):
  """The CLI reads WORKDIR/config.json, and exports a gate trained on 8 devices from 1."""
  env = dict(os.environ, XLA_FLAGS=xla_env.flags(), JAX_PLATFORMS="cpu")
  out = str(tmp_path / "cli")
  subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={trained['workdir']}",
                  f"--export_dir={out}"], check=True, env=env, capture_output=True,
                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  config, _, gate_params = export.load_export(out)
  assert config.to_dict() == trained["config"].to_dict()
  _assert_trees_equal(gate_params, pair_lib.load_gate(trained["workdir"])[0])
