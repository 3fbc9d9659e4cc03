"""TFDS builder (array_record) for GSM8K-style JSONL files in a local directory.

Each line of `{split}.jsonl` (train and test; validation and sealed optional) is a JSON object
with `question` and `answer`, the worked solution whose last line is `#### <number>`. Examples get
the task builder's feature names: `question`, `steps` (the worked lines with `<<...>>`
calculator annotations removed, then the line `answer <number>`, so the last step is the
answer line as in the generated task), `answer` (the number as plain text: `#### $1,234` gives
1234; a final line that is not a number, such as `#### 42 apples`, is refused), `text`.
Malformed lines are reported together, each by file and line number (`read_jsonl`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import tensorflow_datasets as tfds

from collab import errors

REQUIRED_SPLITS = ("train", "test")
# sealed: problems kept for headline numbers only (collab/data/gsm_symbolic.py `--sealed`).
OPTIONAL_SPLITS = ("validation", "sealed")
_CALC_RE = re.compile(r"<<[^>]*>>")


# A final answer as GSM8K-style files write it: an optional sign and currency symbol, digits
# with optional thousands commas, an optional decimal part ("#### $1,234" -> "1234").
_NUMBER_RE = re.compile(r"^([-+]?)[$€£]?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?$")
MAX_REPORTED = 20  # bad lines listed in one error


def normalize_answer(text: str) -> str:
  """The number of a '####' line as plain digits ('-3', '1234', '2.5'); DataError if it is
  anything else ('42 apples', '1/2', '')."""
  text = text.strip()
  match = _NUMBER_RE.match(text)
  if not match:
    raise errors.DataError(f"the '####' answer {text!r} is not a number (expected digits, "
                           "optionally with a sign, a currency symbol, thousands commas or a "
                           "decimal part, e.g. '#### 1,234')")
  sign, digits, decimals = match.groups()
  return ("-" if sign == "-" else "") + digits.replace(",", "") + (decimals or "")


def parse_solution(solution: str) -> tuple[list[str], str]:
  """(worked lines without annotations, final number) of a GSM8K answer; DataError if none."""
  lines = solution.split("\n")
  final = [i for i, line in enumerate(lines) if line.strip().startswith("####")]
  if not final:
    raise errors.DataError("the answer has no '#### <number>' line")
  if not lines[final[-1]].strip()[4:].strip():
    raise errors.DataError("the '####' line has no number")
  number = normalize_answer(lines[final[-1]].strip()[4:])
  steps = [_CALC_RE.sub("", line).strip() for line in lines[:final[-1]]]
  return [s for s in steps if s], number


def to_example(question: str, solution: str) -> dict:
  worked, number = parse_solution(solution)
  question = question.strip()
  steps = worked + [f"answer {number}"]
  return {"question": question, "steps": steps, "answer": number,
          "text": "\n".join([question] + steps)}


def _parse_line(line: str, keep: tuple[str, ...] = ()) -> dict:
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:  # each line is parsed alone: its column, not its line
    raise errors.DataError(f"not valid JSON ({e.msg} at column {e.colno})") from None
  if not isinstance(record, dict):
    raise errors.DataError(f"not a JSON object (a {type(record).__name__})")
  missing = [k for k in ("question", "answer") if not isinstance(record.get(k), str)]
  if missing:
    raise errors.DataError(f"missing or non-string keys {missing}")
  example = to_example(record["question"], record["answer"])
  example.update({k: record[k] for k in keep if k in record})
  return example


def read_jsonl(path: str, keep: tuple[str, ...] = ()) -> list[dict]:
  """Examples of one JSONL file (with the record's `keep` keys copied over where present).
  Malformed lines raise one DataError that lists them all (up to MAX_REPORTED), each as
  `path:line: malformed GSM8K line: reason`."""
  examples, bad, num_bad = [], [], 0
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        examples.append(_parse_line(line, keep))
      except errors.DataError as e:
        num_bad += 1
        if len(bad) < MAX_REPORTED:
          bad.append(f"{path}:{lineno}: malformed GSM8K line: {e}")
  if num_bad:
    more = f"\n  ... and {num_bad - len(bad)} more" if num_bad > len(bad) else ""
    raise errors.DataError(f"{num_bad} malformed line{'s' if num_bad > 1 else ''} in {path}:\n  "
                           + "\n  ".join(bad) + more)
  return examples


def check_source_dir(source_dir: str) -> None:
  """The JSONL files of a data directory exist and parse (before a run writes anything)."""
  if not os.path.isdir(source_dir):
    raise errors.DataError(f"GSM8K-style data directory {source_dir} does not exist (it needs "
                           f"{', '.join(s + '.jsonl' for s in REQUIRED_SPLITS)})")
  for split in REQUIRED_SPLITS + OPTIONAL_SPLITS:
    path = os.path.join(source_dir, f"{split}.jsonl")
    if os.path.exists(path):
      read_jsonl(path)
    elif split in REQUIRED_SPLITS:
      raise FileNotFoundError(f"GSM8K-style data needs {path}")


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
