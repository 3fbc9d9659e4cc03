"""TFDS builders: write array_record, read back with as_data_source, compare to the source."""
import dataclasses
import json
import os

import numpy as np
import pytest

from collab.data import task as task_lib
from collab.data import tfds_gsm8k
from collab.data import tfds_task

CFG = task_lib.TaskConfig(num_train=300, num_validation=40, num_test=30, private_prob=0.5)


def _s(x):
  return x.decode() if isinstance(x, bytes) else x


def test_task_builder_round_trip(tmp_path):
  data_dir = str(tmp_path / "tfds")
  builder = tfds_task.build_task_dataset(CFG, data_dir)
  assert builder.builder_config.task == CFG
  for split in task_lib.SPLITS:
    source = tfds_task.load_task_source(CFG, data_dir, split)
    problems = task_lib.generate_split(CFG, split)
    assert len(source) == len(problems) == CFG.split_size(split)
    for i in (0, len(problems) // 2, len(problems) - 1):
      ex, p = source[i], problems[i]
      assert _s(ex["text"]) == p.text() and _s(ex["question"]) == p.question
      assert [_s(s) for s in ex["steps"]] == list(p.step_texts)
      assert [_s(s) for s in ex["step_kinds"]] == list(p.step_kinds)
      assert np.asarray(ex["entity_ids"]).tolist() == list(p.entity_ids)
      assert int(ex["answer"]) == p.answer and bool(ex["has_private"]) == p.has_private


def test_task_configs_never_collide_and_are_reused(tmp_path):
  data_dir = str(tmp_path / "tfds")
  other = dataclasses.replace(CFG, world_seed=7)
  assert tfds_task.config_name(other) != tfds_task.config_name(CFG)
  assert tfds_task.config_name(CFG) == tfds_task.config_name(dataclasses.replace(CFG))
  a = tfds_task.load_task_source(CFG, data_dir, "test")
  b = tfds_task.load_task_source(other, data_dir, "test")
  assert _s(a[0]["text"]) != _s(b[0]["text"])
  prepared = os.path.join(data_dir, "collab_task", tfds_task.config_name(CFG))
  mtime = os.path.getmtime(prepared)
  tfds_task.build_task_dataset(CFG, data_dir)  # reuse: nothing rewritten
  assert os.path.getmtime(prepared) == mtime
  # The default TaskConfig is the registered config: it must build by name too.
  assert tfds_task.make_builder(task_lib.TaskConfig(), data_dir).builder_config.name == (
      tfds_task.config_name(task_lib.TaskConfig()))


GSM_ROWS = {
    "train": [
        {"question": "Ann has 3 apples and buys 4. How many?",
         "answer": "She has 3+4=<<3+4=7>>7 apples.\n#### 7"},
        {"question": "A shop sells 1,200 pens at $2.",
         "answer": "Revenue is 1,200*2=<<1200*2=2400>>2,400.\n\nSo it earns 2,400.\n#### 2,400"},
    ],
    "test": [{"question": "What is 5-8?", "answer": "5-8=<<5-8=-3>>-3\n#### -3"}],
}


def _write(dirname, rows_by_split):
  os.makedirs(dirname, exist_ok=True)
  for split, rows in rows_by_split.items():
    with open(os.path.join(dirname, f"{split}.jsonl"), "w") as f:
      for row in rows:
        f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


def test_gsm8k_builder_round_trip(tmp_path):
  src = str(tmp_path / "gsm")
  _write(src, GSM_ROWS)
  data_dir = str(tmp_path / "tfds")
  train = tfds_gsm8k.load_gsm8k_source(src, data_dir, "train")
  assert len(train) == 2
  ex = train[1]
  assert _s(ex["question"]) == GSM_ROWS["train"][1]["question"]
  assert [_s(s) for s in ex["steps"]] == ["Revenue is 1,200*2=2,400.", "So it earns 2,400.",
                                          "answer 2400"]
  assert _s(ex["answer"]) == "2400"
  assert _s(ex["text"]) == "\n".join([_s(ex["question"])] + [_s(s) for s in ex["steps"]])
  assert [_s(s) for s in train[0]["steps"]] == ["She has 3+4=7 apples.", "answer 7"]
  test = tfds_gsm8k.load_gsm8k_source(src, data_dir, "test")
  assert _s(test[0]["answer"]) == "-3"
  with pytest.raises(ValueError, match="Unknown split"):
    tfds_gsm8k.load_gsm8k_source(src, data_dir, "validation")  # optional split absent
  # Editing the files gives a new builder config, never stale data.
  _write(src, {"test": GSM_ROWS["test"] * 2})
  assert len(tfds_gsm8k.load_gsm8k_source(src, data_dir, "test")) == 2


@pytest.mark.parametrize("bad,reason", [
    ("{not json", "malformed"),
    (json.dumps({"question": "q"}), "missing"),
    (json.dumps({"question": "q", "answer": "no final line"}), "####"),
    (json.dumps(["a", "b"]), "JSON object"),
])
def test_gsm8k_malformed_line_names_file_and_line(tmp_path, bad, reason):
  src = str(tmp_path / "gsm")
  _write(src, {"train": [GSM_ROWS["train"][0], "", bad], "test": GSM_ROWS["test"]})
  path = os.path.join(os.path.abspath(src), "train.jsonl")
  with pytest.raises(ValueError, match=reason) as err:
    tfds_gsm8k.load_gsm8k_source(src, str(tmp_path / "tfds"), "train")
  assert f"{path}:3:" in str(err.value)


def test_gsm8k_missing_required_split(tmp_path):
  src = str(tmp_path / "gsm")
  _write(src, {"train": GSM_ROWS["train"]})
  with pytest.raises(FileNotFoundError, match="test.jsonl"):
    tfds_gsm8k.load_gsm8k_source(src, str(tmp_path / "tfds"), "train")
