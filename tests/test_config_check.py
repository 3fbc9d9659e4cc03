"""Range checks of every numeric config field (collab/config_check.py), the device split's
message, and the entry points' error path (collab/errors.py) in process.

The same checks through the command lines: tests/test_user_errors.py.
"""
import math
import sys

import pytest

from collab import config_check
from collab import config_ranges
from collab import errors
from collab.data import tfds_gsm8k
from collab.studies import runner
from configs import gate as gate_configs
from configs import pretrain as pretrain_configs
from configs.pairs import qwen2_5
from configs.studies import scaling


def _set(config, key, value):
  node = config
  *parents, leaf = key.split(".")
  for part in parents:
    node = node[part]
  node[leaf] = value


def _bad(rng, value):
  """An out-of-range value of a field's own shape (a tuple field gets a tuple)."""
  bad = rng.bad_value()
  if rng.integer and not math.isnan(bad):
    bad = int(bad)
  if rng.each:
    return (bad,) if not isinstance(value[0], tuple) else ((bad,),)
  return bad


GATE_DEFAULTS = {"gate": gate_configs.get_config(), "gate:runlocal":
                 gate_configs.get_config("runlocal"), "pair:runlocal":
                 qwen2_5.get_config("runlocal")}
PRETRAIN_DEFAULTS = {"pretrain": pretrain_configs.get_config(),
                     "pretrain:runlocal": pretrain_configs.get_config("runlocal")}


@pytest.mark.parametrize("name", sorted(GATE_DEFAULTS) + sorted(PRETRAIN_DEFAULTS))
def test_every_numeric_field_has_a_range_and_the_defaults_are_in_it(name):
  config = {**GATE_DEFAULTS, **PRETRAIN_DEFAULTS}[name]
  ranges = config_check.GATE if name in GATE_DEFAULTS else config_check.PRETRAIN
  fields = config_ranges.numeric_leaves(config)
  # Architecture fields of imported pairs are checked against each checkpoint's config.json.
  unchecked = sorted(k for k in fields if k not in ranges and not k.startswith("models."))
  assert not unchecked, f"numeric fields without a range in config_check: {unchecked}"
  config_ranges.check_ranges(config, ranges)


def _cases():
  for name, config in {**GATE_DEFAULTS, **PRETRAIN_DEFAULTS}.items():
    if name.endswith("runlocal") and name != "pair:runlocal":
      continue  # the same fields as the full configs
    ranges = config_check.GATE if name in GATE_DEFAULTS else config_check.PRETRAIN
    for key in config_ranges.numeric_leaves(config):
      if key in ranges:
        yield pytest.param(name, key, id=f"{name}:{key}")


@pytest.mark.parametrize("name,key", list(_cases()))
def test_a_bad_value_of_each_field_is_refused_naming_key_value_and_range(name, key):
  source = {**GATE_DEFAULTS, **PRETRAIN_DEFAULTS}[name]
  config = type(source)(source.to_dict())  # unlocked copy
  ranges = config_check.GATE if name in GATE_DEFAULTS else config_check.PRETRAIN
  rng = ranges[key]
  value = config_ranges.numeric_leaves(config)[key]
  bad = _bad(rng, value)
  _set(config, key, bad)
  with pytest.raises(errors.ConfigError) as err:
    config_ranges.check_ranges(config, ranges)
  stored = config_ranges.numeric_leaves(config)[key]  # as the ConfigDict holds it
  assert str(err.value) == (f"config.{key}={stored!r} is out of range: expected "
                            f"{rng.describe()}")


def test_range_messages_read_as_ranges():
  assert config_ranges.count(1).describe() == "an integer >= 1"
  assert config_ranges.PROBABILITY.describe() == "a number in [0, 1]"
  assert config_ranges.POSITIVE.describe() == "a number > 0"
  assert config_ranges.FINITE.describe() == "a finite number"
  assert config_check.GATE["eval.every_k"].describe() == "a tuple of integers >= 1"
  assert "group of 1" in config_check.GATE["rl.group_size"].describe()


@pytest.mark.parametrize("arg,message", [
    ("runlocal,steps=-3", "config.rl.num_steps=-3 is out of range: expected an integer >= 1"),
    ("runlocal,call_cost=-0.5", "config.costs.per_call=-0.5 is out of range: expected a "
     "number >= 0"),
    ("runlocal,explore=1.5", "config.gate.explore=1.5 is out of range: expected a number in "
     "[0, 1]"),
    ("runlocal,budget=-1", "config.rollout.budget=-1 is out of range"),
    ("eval_problems=-2", "config.eval.num_problems=-2"),
    ("runlocal,entropy=nan", "config.rl.entropy_coef=nan"),
])
def test_gate_config_arguments_out_of_range(arg, message):
  with pytest.raises(errors.ConfigError, match=message.replace("[", r"\[").replace(
      "]", r"\]").replace(".", r"\.")):
    config_check.check_gate(gate_configs.get_config(arg))


def test_pretrain_steps_below_one_and_items_out_of_order():
  with pytest.raises(errors.ConfigError, match=r"config\.num_steps=-5 is out of range"):
    config_check.check_pretraining(pretrain_configs.get_config("runlocal,steps=-5"))
  with pytest.raises(errors.ConfigError, match=r"config\.fact_coverage=1\.5"):
    config_check.check_pretraining(pretrain_configs.get_config("runlocal,coverage=1.5"))
  config = pretrain_configs.get_config("runlocal")
  config.task.min_items = 3
  with pytest.raises(errors.ConfigError, match="min_items <= max_items"):
    config_check.check_pretraining(config)


def test_held_out_problems_must_leave_training_problems():
  config = gate_configs.get_config("runlocal,select=64")
  with pytest.raises(errors.ConfigError, match=r"select_problems=64 is out of range: expected "
                     r"an integer in \[0, 64\)"):
    config_check.check_gate(config)


def test_the_trainers_own_config_errors_become_config_errors():
  config = gate_configs.get_config("runlocal,credit=bogus")
  with pytest.raises(errors.ConfigError, match="credit"):
    config_check.check_gate(config)


def test_device_split_names_the_key_and_the_values_that_divide(monkeypatch):
  import jax
  monkeypatch.setattr(jax, "device_count", lambda: 3)
  config = gate_configs.get_config("runlocal")
  config.rl.problems_per_step, config.rl.group_size = 16, 2
  with pytest.raises(errors.ConfigError) as err:
    config_check.check_device_split(config)
  message = str(err.value)
  assert "config.rl.problems_per_step=16 (32 rollouts) does not split over 3 devices" in message
  assert "config.rl.problems_per_step=15 or 18" in message
  assert "divides 16: 1, 2, 4, 8 or 16" in message
  config.rl.problems_per_step = 18
  config_check.check_device_split(config)


def test_device_split_with_a_model_mesh(monkeypatch):
  import jax
  monkeypatch.setattr(jax, "device_count", lambda: 8)
  config = qwen2_5.get_config("runlocal")
  config.mesh.model = 2
  config.rl.problems_per_step = 6
  with pytest.raises(errors.ConfigError, match=r"4 data shards \(8 devices / mesh.model=2\)"):
    config_check.check_device_split(config)
  config.mesh.model = 3
  with pytest.raises(errors.ConfigError, match="mesh.model=3 must divide the 8 devices"):
    config_check.check_device_split(config)


def test_study_runs_are_checked_up_front():
  config = scaling.get_config("runlocal")
  runner.check_study(config)
  config.runs[-1]["arg"] += ",call_cost=-1"
  with pytest.raises(errors.ConfigError,
                     match=r"study run '.*' \(arg .*\): config\.costs\.per_call=-1\.0"):
    runner.check_study(config)
  config = scaling.get_config("runlocal")
  config.seeds = (0, -1)
  with pytest.raises(errors.ConfigError, match=r"config\.seeds=\(0, -1\)"):
    runner.check_study(config)


def test_a_workdir_that_is_a_file(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(errors.ConfigError, match="is a file, not a directory"):
    config_check.check_workdir(str(path))


@pytest.mark.parametrize("text,number", [
    ("42", "42"), ("$1,234", "1234"), ("-3", "-3"), ("1,200.50", "1200.50"), ("+7", "7"),
    ("-$5", "-5"), (" 12 ", "12")])
def test_gsm8k_answers_are_normalised(text, number):
  assert tfds_gsm8k.normalize_answer(text) == number


@pytest.mark.parametrize("text", ["42 apples", "12,34", "1/2", "about 5", "$"])
def test_gsm8k_answers_that_are_not_numbers_are_refused(text):
  with pytest.raises(errors.DataError, match="is not a number"):
    tfds_gsm8k.normalize_answer(text)


def test_config_flag_errors_lose_the_traceback():
  message = ("flag --config=configs/gate.py:foo=1: Error whilst parsing config file:\n\n"
             "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\n"
             "collab.errors.ConfigError: Unknown config argument 'foo'")
  assert errors.flag_error_message(message) == (
      "flag --config=configs/gate.py:foo=1: Unknown config argument 'foo'")
  assert errors.flag_error_message("flag --x: bad") == "flag --x: bad"


def test_error_path_exit_status_and_traceback(capsys, monkeypatch):
  def expected(argv):
    raise errors.ConfigError("config.rl.num_steps=-3 is out of range")

  def bug(argv):
    raise KeyError("a bug")

  monkeypatch.setattr(sys, "argv", ["prog"])
  with pytest.raises(SystemExit) as exit_:
    errors.wrap(expected)(["prog"])
  assert exit_.value.code == errors.EXIT_EXPECTED
  err = capsys.readouterr().err
  assert "Error: config.rl.num_steps=-3 is out of range" in err and "Traceback" not in err
  monkeypatch.setattr(sys, "argv", ["prog", "--verbose"])
  with pytest.raises(SystemExit):
    errors.wrap(expected)(["prog"])
  assert "Traceback" in capsys.readouterr().err
  with pytest.raises(KeyError):  # a bug keeps its traceback (absl prints it, status 1)
    errors.wrap(bug)(["prog"])


def test_library_errors_are_user_errors():
  from collab import checkpoint
  from collab import export
  from collab.data import tokenizer
  from collab.models import hf_io
  for cls in (export.ExportError, checkpoint.CheckpointRestoreError,
              tokenizer.TokenizerMismatchError, hf_io.HFImportError):
    assert issubclass(cls, errors.UserError)
  for cls in (FileNotFoundError, NotADirectoryError, FloatingPointError):
    assert errors.is_expected(cls("x"))
  assert not errors.is_expected(KeyError("x"))
  assert not errors.is_expected(ValueError("cannot reshape array"))


def test_imported_pair_takes_checkpoint_directories_or_gguf_files(tmp_path):
  import ml_collections  # pylint: disable=g-import-not-at-top
  data = tmp_path / "gsm"
  data.mkdir()
  for split in ("train", "test"):
    (data / f"{split}.jsonl").write_text('{"question": "1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n')
  gguf, ckpt = tmp_path / "m.gguf", tmp_path / "ckpt"
  gguf.write_bytes(b"GGUF")
  ckpt.mkdir()
  for slm, llm in ((gguf, ckpt), (ckpt, gguf)):
    config_check.check_data(ml_collections.ConfigDict(
        dict(slm_hf_dir=str(slm), llm_hf_dir=str(llm), data_dir=str(data))))
  with pytest.raises(errors.ConfigError, match="no such directory or GGUF file"):
    config_check.check_data(ml_collections.ConfigDict(
        dict(slm_hf_dir=str(tmp_path / "absent.gguf"), llm_hf_dir=str(ckpt),
             data_dir=str(data))))
