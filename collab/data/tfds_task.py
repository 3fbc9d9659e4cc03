"""TFDS builder (array_record, no TensorFlow needed) for the generated task.

Each TaskConfig gets its own builder config named by a hash of its fields, so datasets with
different knobs never collide in one data_dir: `data_dir/collab_task/<name>/1.0.0/`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import tensorflow_datasets as tfds

from collab.data import task as task_lib


def _fields_json(task_cfg: task_lib.TaskConfig) -> str:
  """The TaskConfig's fields as JSON. Options at their off value are left out, so a world
  without them keeps its name (and its data and tokenizer) whichever options exist."""
  return json.dumps({k: v for k, v in dataclasses.asdict(task_cfg).items()
                     if not (k in task_lib.OFF_OPTIONS and v == task_lib.OFF_OPTIONS[k])}, sort_keys=True)


def config_name(task_cfg: task_lib.TaskConfig) -> str:
  """Short stable name of a TaskConfig: 't' + 10 hex digits of a hash of its fields."""
  fields = _fields_json(task_cfg)
  return "t" + hashlib.sha256(fields.encode()).hexdigest()[:10]


@dataclasses.dataclass(eq=False)
class CollabTaskConfig(tfds.core.BuilderConfig):
  task: task_lib.TaskConfig = task_lib.TaskConfig()


def make_config(task_cfg: task_lib.TaskConfig) -> CollabTaskConfig:
  return CollabTaskConfig(name=config_name(task_cfg), task=task_cfg,
                          description=_fields_json(task_cfg))


class CollabTask(tfds.core.GeneratorBasedBuilder):
  """Generated shopping problems (collab/data/task.py), one example per problem."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [make_config(task_lib.TaskConfig())]
  # Nothing is downloaded, so no checksums file lives beside the code; a None code_path also
  # keeps tfds from importing `importlib_resources` (not a dependency) to look for one.
  code_path = None

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "question": tfds.features.Text(),
            "steps": tfds.features.Sequence(tfds.features.Text()),
            "step_kinds": tfds.features.Sequence(tfds.features.Text()),
            "entity_ids": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
            "answer": tfds.features.Scalar(dtype=np.int64),
            "has_private": tfds.features.Scalar(dtype=np.bool_),
        }),
        supervised_keys=None,
        disable_shuffling=True)  # source[i] is the i-th generated problem

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download: the data is generated
    problems = task_lib.generate_splits(self.builder_config.task)
    return {split: self._generate_examples(problems[split]) for split in task_lib.SPLITS
            if problems[split]}

  def _generate_examples(self, problems):
    for i, p in enumerate(problems):
      yield i, example(p)


def example(p: task_lib.Problem) -> dict:
  """A problem as this data set's example (its features)."""
  return {"text": p.text(), "question": p.question, "steps": list(p.step_texts),
          "step_kinds": list(p.step_kinds), "entity_ids": list(p.entity_ids),
          "answer": p.answer, "has_private": p.has_private}


def make_builder(task_cfg: task_lib.TaskConfig, data_dir: str) -> CollabTask:
  config = make_config(task_cfg)
  # tfds refuses a config object that shares the name of a registered one: pass the name.
  config = config.name if config.name in CollabTask.builder_configs else config
  return CollabTask(config=config, data_dir=data_dir, file_format="array_record")


def build_task_dataset(task_cfg: task_lib.TaskConfig, data_dir: str) -> CollabTask:
  """Prepares the dataset of task_cfg under data_dir once; later calls reuse it."""
  builder = make_builder(task_cfg, data_dir)
  builder.download_and_prepare()  # a no-op when the prepared data is already there
  return builder


def load_task_source(task_cfg: task_lib.TaskConfig, data_dir: str, split: str):
  """Random-access source of one split (len, [i] -> dict of numpy values / bytes)."""
  return build_task_dataset(task_cfg, data_dir).as_data_source(task_lib._check_split(split))
