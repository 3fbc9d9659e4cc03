"""What a user meets at the command line with bad input (docs/bad_input.md): each case runs the
entry point as a subprocess and checks the exit status (2 for an expected error), the one-line
message on stderr (no traceback unless --verbose), and what was or was not written.

Every run but the two evaluations fails at validation, before any training: seconds each.
"""
import json
import os
import shutil
import subprocess
import sys

import jax
import pytest

import fake_models
import xla_env
from collab import export
from collab import pair as pair_lib
from collab.models import hf_io
from collab.models import transformer
from collab.train import gate
from configs.pairs import qwen2_5

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args, devices=1, timeout=300, **env_vars):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
             XLA_FLAGS=xla_env.flags(devices), **env_vars)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _expected_error(result, *fragments):
  """Exit status 2, each fragment in the message, no traceback."""
  assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-4000:])
  assert "Traceback" not in result.stderr, result.stderr
  message = result.stderr
  for fragment in fragments:
    assert fragment in message, (fragment, message)
  return message


# ---------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  """A tiny export (random pair, untrained gate) whose evaluation runs only the gate and the
  fixed baselines on 2 problems."""
  root = tmp_path_factory.mktemp("user_errors")
  config = fake_models.gate_config(root, "runlocal")
  config.eval.update(num_problems=2, batch_size=2, random_rates=(), thresholds=(), every_k=(),
                     fixed_steps=(), call_prices=())
  fake_models.export_random_pair(config)
  pair = pair_lib.load_pair(config)
  workdir = str(root / "gate_run")
  gate.save_gate(workdir, pair_lib.init_gate(config, pair), config, pair)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort())
  return export.write_export(config, workdir, str(root / "export"))


def test_an_export_evaluates_twice_and_results_stay_outside_it(export_dir, tmp_path):
  """Issue 19, item 1: the README's evaluation command, run twice."""
  export_copy = str(tmp_path / "export")
  shutil.copytree(export_dir, export_copy)
  cache = dict(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),  # the second run reuses
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")         # the first's compile
  for _ in range(2):
    result = _run("experiments.evaluate", f"--export_dir={export_copy}", **cache)
    assert result.returncode == 0, result.stderr[-4000:]
  out = export_copy + "_eval"
  assert f"Results in {out}" in result.stdout
  with open(os.path.join(out, "metrics.json")) as f:
    assert "gate" in json.load(f)["policies"]
  export.verify_export(export_copy)  # nothing was added to the export
  result = _run("experiments.evaluate", f"--export_dir={export_copy}",
                f"--out_dir={export_copy}/eval")
  _expected_error(result, "is inside the export", "outside the export")
  assert not os.path.exists(os.path.join(export_copy, "eval"))


def test_a_tampered_export_is_one_message_and_verbose_adds_the_traceback(export_dir, tmp_path):
  """Item 4: a bad export."""
  export_copy = str(tmp_path / "export")
  shutil.copytree(export_dir, export_copy)
  with open(os.path.join(export_copy, "config.json"), "a") as f:
    f.write(" ")
  result = _run("experiments.evaluate", f"--export_dir={export_copy}")
  _expected_error(result, "fails verification", "size mismatch in config.json")
  result = _run("experiments.evaluate", f"--export_dir={export_copy}", "--verbose")
  assert result.returncode == 2 and "Traceback" in result.stderr
  assert "Error: Export" in result.stderr  # the message still ends it


def test_an_export_with_results_inside_says_what_they_are(export_dir, tmp_path):
  """Item 1: an export polluted by results written inside it names them."""
  export_copy = str(tmp_path / "export")
  shutil.copytree(export_dir, export_copy)
  os.makedirs(os.path.join(export_copy, "eval"))
  with open(os.path.join(export_copy, "eval", "metrics.json"), "w") as f:
    f.write("{}")
  with pytest.raises(export.ExportError, match="unexpected file eval/metrics.json .*move it out"):
    export.verify_export(export_copy)


# ---------------------------------------------------------------------------- configs


def test_negative_step_counts_are_refused_before_anything_is_written(tmp_path):
  """Item 2: steps=-3 trained nothing and wrote an untrained gate."""
  workdir = tmp_path / "gate"
  result = _run("experiments.train_gate", "--config=configs/gate.py:runlocal,steps=-3",
                f"--workdir={workdir}")
  _expected_error(result, "config.rl.num_steps=-3 is out of range: expected an integer >= 1")
  assert not workdir.exists()
  workdir = tmp_path / "pre"
  result = _run("experiments.pretrain", "--config=configs/pretrain.py:runlocal,steps=-5",
                f"--workdir={workdir}")
  _expected_error(result, "config.num_steps=-5 is out of range: expected an integer >= 1")
  assert not workdir.exists()


def test_a_config_argument_error_is_one_message():
  """Item 4: a bad config argument (raised while flags parse) without config_flags' traceback."""
  result = _run("experiments.train_gate", "--config=configs/gate.py:runlocal,stepz=3",
                "--workdir=/nonexistent/never_written")
  _expected_error(result, "Unknown config argument 'stepz'", "--helpshort")


def test_a_run_refused_on_devices_leaves_nothing_for_its_fixed_rerun(tmp_path):
  """Item 3: on 3 devices, 8 problems per step do not split; the message names the key and
  the values that do, nothing is written, and the fixed rerun is not taken for another run."""
  pretrain_dir = tmp_path / "pretrain"
  for preset in ("test_tiny", "gpt2_tiny"):  # models that fail to load, after validation
    (pretrain_dir / preset / "model").mkdir(parents=True)
  workdir = tmp_path / "run"
  args = ["--config.pretrain_dir=" + str(pretrain_dir), f"--workdir={workdir}"]
  result = _run("experiments.train_gate", "--config=configs/gate.py:runlocal", *args, devices=3)
  _expected_error(result, "config.rl.problems_per_step=8 (16 rollouts) does not split over 3 "
                  "devices", "config.rl.problems_per_step=6 or 9", "divides 8: 1, 2, 4 or 8")
  assert not workdir.exists()
  result = _run("experiments.train_gate", "--config=configs/gate.py:runlocal",
                "--config.rl.problems_per_step=9", *args, devices=3)
  assert "another config" not in result.stderr, result.stderr
  assert (workdir / "config.json").exists()  # got past validation and the workdir check
  _expected_error(result, str(pretrain_dir / "test_tiny" / "model"))  # then: no model there


def test_a_workdir_that_is_a_file(tmp_path):
  """Item 5: not os.makedirs' 'File exists'."""
  path = tmp_path / "notes.txt"
  path.write_text("x")
  result = _run("experiments.train_gate", "--config=configs/gate.py:runlocal",
                f"--workdir={path}")
  _expected_error(result, f"--workdir={path} is a file, not a directory")
  assert path.read_text() == "x"


def test_a_missing_gate_checkpoint(tmp_path):
  """Item 4: a missing checkpoint."""
  result = _run("experiments.evaluate", "--config=configs/gate.py:runlocal",
                f"--workdir={tmp_path}")
  _expected_error(result, f"No trained gate in --workdir={tmp_path}")


# ---------------------------------------------------------------------------- imported pairs


def _write_jsonl(path, lines):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


GOOD = json.dumps({"question": "What is 3+4?", "answer": "3+4=7\n#### 7"})


def _pair_args(slm_dir, llm_dir, data_dir, workdir):
  return [f"--config=configs/pairs/qwen2_5.py:runlocal,slm_dir={slm_dir},llm_dir={llm_dir},"
          f"data_dir={data_dir}", f"--workdir={workdir}"]


def test_malformed_jsonl_lines_are_all_reported(tmp_path):
  """Item 5: every bad line (not only the first), by file line, without the JSON parser's own
  'line 1 column 2'; '#### 42 apples' refused by line, '#### $1,234' taken as 1234."""
  data = tmp_path / "data"
  _write_jsonl(str(data / "train.jsonl"), [
      GOOD,
      "{not json",
      json.dumps({"question": "q", "answer": "#### $1,234"}),
      json.dumps({"question": "q", "answer": "#### 42 apples"}),
      json.dumps({"question": "q"}),
  ])
  _write_jsonl(str(data / "test.jsonl"), [GOOD])
  (tmp_path / "m").mkdir()
  result = _run("experiments.train_gate",
                *_pair_args(tmp_path / "m", tmp_path / "m", data, tmp_path / "run"))
  path = data / "train.jsonl"
  message = _expected_error(
      result, f"3 malformed lines in {path}",
      f"{path}:2: malformed GSM8K line: not valid JSON", f"{path}:4: malformed GSM8K line: the "
      "'####' answer '42 apples' is not a number", f"{path}:5: malformed GSM8K line: missing")
  assert ":3:" not in message and "line 1 column" not in message
  assert not (tmp_path / "run").exists()


def test_a_truncated_safetensors_file_names_the_file_and_tensor(tmp_path):
  """Item 5: not numpy's 'cannot reshape array of size 762 into shape (32,32)'."""
  cfg = hf_io.config_from_hf(qwen2_5.TINY["slm"])
  model = tmp_path / "slm"
  hf_io.save_hf(str(model), jax.device_get(transformer.init_params(cfg, jax.random.PRNGKey(0))),
                cfg)
  weights = model / hf_io.WEIGHTS
  data = weights.read_bytes()
  weights.write_bytes(data[:len(data) // 2])
  _write_jsonl(str(tmp_path / "data" / "train.jsonl"), [GOOD])
  _write_jsonl(str(tmp_path / "data" / "test.jsonl"), [GOOD])
  result = _run("experiments.train_gate",
                *_pair_args(model, model, tmp_path / "data", tmp_path / "run"))
  message = _expected_error(result, f"{weights}: truncated: tensor ", "which has "
                            f"{len(data) // 2} bytes")
  assert "reshape" not in message
