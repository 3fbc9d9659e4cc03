"""TFDS builder (array_record) for GSM8K-style JSONL files in a local directory.

Each line of `{split}.jsonl` (train and test; validation optional) is a JSON object with
`question` and `answer`, the worked solution whose last line is `#### <number>`. Examples get
the task builder's feature names: `question`, `steps` (the worked lines with `<<...>>`
calculator annotations removed, then the line `answer <number>`, so the last step is the
answer line as in the generated task), `answer` (the number as text, commas stripped), `text`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import tensorflow_datasets as tfds

REQUIRED_SPLITS = ("train", "test")
OPTIONAL_SPLITS = ("validation",)
_CALC_RE = re.compile(r"<<[^>]*>>")


def parse_solution(solution: str) -> tuple[list[str], str]:
  """(worked lines without annotations, final number) of a GSM8K answer; ValueError if none."""
  lines = solution.split("\n")
  final = [i for i, line in enumerate(lines) if line.strip().startswith("####")]
  if not final:
    raise ValueError("the answer has no '#### <number>' line")
  number = lines[final[-1]].strip()[4:].strip().replace(",", "")
  if not number:
    raise ValueError("the '####' line has no number")
  steps = [_CALC_RE.sub("", line).strip() for line in lines[:final[-1]]]
  return [s for s in steps if s], number


def to_example(question: str, solution: str) -> dict:
  worked, number = parse_solution(solution)
  question = question.strip()
  steps = worked + [f"answer {number}"]
  return {"question": question, "steps": steps, "answer": number,
          "text": "\n".join([question] + steps)}


def read_jsonl(path: str) -> list[dict]:
  """Examples of one JSONL file; a malformed line raises ValueError naming file and line."""
  examples = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        if not isinstance(record, dict):
          raise ValueError("not a JSON object")
        missing = [k for k in ("question", "answer") if not isinstance(record.get(k), str)]
        if missing:
          raise ValueError(f"missing or non-string keys {missing}")
        examples.append(to_example(record["question"], record["answer"]))
      except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}:{lineno}: malformed GSM8K line: {e}") from e
  return examples


def _files_digest(source_dir: str) -> str:
  """Hash of the JSONL files' bytes: edited files get a fresh builder config, not stale data."""
  h = hashlib.sha256()
  for split in REQUIRED_SPLITS + OPTIONAL_SPLITS:
    path = os.path.join(source_dir, f"{split}.jsonl")
    if os.path.exists(path):
      h.update(split.encode())
      with open(path, "rb") as f:
        h.update(f.read())
  return h.hexdigest()[:10]


@dataclasses.dataclass(eq=False)
class Gsm8kJsonlConfig(tfds.core.BuilderConfig):
  source_dir: str = ""  # directory of {split}.jsonl; empty: the builder's manual_dir


class Gsm8kJsonl(tfds.core.GeneratorBasedBuilder):
  """GSM8K-style math word problems from local JSONL files."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [Gsm8kJsonlConfig(name="manual", description="JSONL in manual_dir")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place train.jsonl and test.jsonl (GSM8K format) in manual_dir."
  code_path = None  # see CollabTask: no checksums file, no importlib_resources lookup

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "question": tfds.features.Text(),
            "steps": tfds.features.Sequence(tfds.features.Text()),
            "answer": tfds.features.Text(),
            "text": tfds.features.Text(),
        }),
        supervised_keys=None,
        disable_shuffling=True)  # source[i] is the i-th line's example

  def _split_generators(self, dl_manager):
    source_dir = self.builder_config.source_dir or str(dl_manager.manual_dir)
    splits = {}
    for split in REQUIRED_SPLITS + OPTIONAL_SPLITS:
      path = os.path.join(source_dir, f"{split}.jsonl")
      if not os.path.exists(path):
        if split in REQUIRED_SPLITS:
          raise FileNotFoundError(f"GSM8K-style data needs {path}")
        continue
      # Parsed eagerly so a malformed line fails before anything is written.
      splits[split] = self._generate_examples(read_jsonl(path))
    return splits

  def _generate_examples(self, examples):
    for i, example in enumerate(examples):
      yield i, example


def make_builder(source_dir: str, data_dir: str) -> Gsm8kJsonl:
  """Builder of the JSONL files in source_dir; its config name hashes the files' contents."""
  source_dir = os.path.abspath(source_dir)
  config = Gsm8kJsonlConfig(name="d" + _files_digest(source_dir), source_dir=source_dir,
                            description=f"JSONL files in {source_dir}")
  return Gsm8kJsonl(config=config, data_dir=data_dir, file_format="array_record")


def load_gsm8k_source(source_dir: str, data_dir: str, split: str):
  """Prepares (once) and returns the random-access source of one split."""
  builder = make_builder(source_dir, data_dir)
  builder.download_and_prepare()
  return builder.as_data_source(split)
