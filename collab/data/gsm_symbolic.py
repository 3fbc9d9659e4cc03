"""GSM-Symbolic problems as GSM8K-style JSONL splits (train, validation, test, sealed).

    make gsm-symbolic      # = python -m collab.data.gsm_symbolic --out .cache/gsm_symbolic/jsonl
    python -m collab.data.gsm_symbolic --out DIR --train 2000 --validation 200 --test 500 \
        --seed 0 --difficulty 1.0 --heldout 10

Each generator of reasoning-gym's gsm_symbolic (collab/data/reasoning_gym_wheel.py) is a GSM8K
test question with its names and numbers drawn at random; its worked answer has one step per
line and ends with `#### N`, the format collab/data/tfds_gsm8k.py reads. Records keep the
generator id, the seed that drew them and the difficulty.

Determinism and disjointness:
- A record is `generator(random.Random(item_seed), difficulty)`. Each (seed, split) owns the
  item seeds [base, base + SEED_STRIDE) with base = (3 * seed + split index) * SEED_STRIDE, so
  no two splits, and no two `--seed`s, draw from the same seeds.
- Generators take turns in a seeded order, so every split covers them evenly. A draw whose
  question is already in this or an earlier split (train, validation, test, then sealed), or
  that the generator fails on, is replaced by the generator's next seed: no question is in two
  splits.
- `heldout=K`: K generators, chosen by the seed, write only the test split; train and
  validation use the others (a distribution shift: test questions come from GSM8K questions
  never seen in training).
- `sealed=N` (default 0: none): fresh problems of the training generators (all of them without
  `heldout`), from item seeds of their own, for headline numbers only: the in-distribution
  split that no choice of method or setting was made on (validation is where choices are made).
  Its seed range starts at (SEALED_BLOCK + seed) * SEED_STRIDE, above every other split's for
  any seed below SEALED_BLOCK / 3.
- `difficulty` scales the generators' number ranges (1.0: the GSM8K-like ranges; 2.0 about
  doubles the upper bounds). reasoning-gym itself accepts only 1.0; below 1.0 some generators'
  rejection loops never end, so it is refused (`--probe 1.0,0.5,0.3` shows how many generators
  finish, fail or hang at each value).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import signal
import sys
from typing import Callable, Sequence

from collab import errors
from collab.data import reasoning_gym_wheel

SPLITS = ("train", "validation", "test", "sealed")
SEED_STRIDE = 1_000_000  # item seeds per (seed, split)
SEALED_BLOCK = 3000  # the sealed split's seed ranges start at this many strides
MAX_REJECTS = 200  # consecutive failed or duplicate draws of one generator before giving up
DEFAULT_OUT = os.path.join(reasoning_gym_wheel.cache_dir(), "jsonl")

Generator = Callable[[random.Random, float], dict]


@dataclasses.dataclass(frozen=True)
class Spec:
  """What to write: problems per split, the seed, the difficulty, held-out generators."""
  train: int = 2000
  validation: int = 200
  test: int = 500
  seed: int = 0
  difficulty: float = 1.0
  heldout: int = 0
  sealed: int = 0

  def sizes(self) -> dict[str, int]:
    return {"train": self.train, "validation": self.validation, "test": self.test,
            "sealed": self.sealed}

  def check(self, num_generators: int) -> None:
    for split, n in self.sizes().items():
      if not 0 <= n < SEED_STRIDE // 2:
        raise errors.ConfigError(f"{split}={n}: expected 0 <= n < {SEED_STRIDE // 2}")
    if self.train < 1 or self.test < 1:
      raise errors.ConfigError("train and test need at least one problem each")
    if not 0 <= self.seed < SEALED_BLOCK // 3:
      raise errors.ConfigError(f"seed={self.seed}: expected 0 <= seed < {SEALED_BLOCK // 3}")
    if not self.difficulty >= 1.0:
      raise errors.ConfigError(
          f"difficulty={self.difficulty}: expected >= 1.0 (1.0: GSM8K-like number ranges; "
          "below 1.0 some generators never finish)")
    if not 0 <= self.heldout < num_generators:
      raise errors.ConfigError(f"heldout={self.heldout}: expected 0 <= heldout < "
                               f"{num_generators} (the number of generators)")


def seed_base(seed: int, split: str) -> int:
  if split == "sealed":
    return (SEALED_BLOCK + seed) * SEED_STRIDE
  return (3 * seed + SPLITS.index(split)) * SEED_STRIDE


def assign_generators(ids: Sequence[int], seed: int, heldout: int) -> dict[str, list[int]]:
  """Generator ids per split: with heldout=K, K ids (drawn by the seed) only for test; the
  sealed split draws from the training generators."""
  ids = sorted(ids)
  if not heldout:
    return {split: list(ids) for split in SPLITS}
  held = sorted(random.Random(f"gsm-symbolic-heldout-{seed}").sample(ids, heldout))
  rest = [i for i in ids if i not in held]
  return {"train": rest, "validation": rest, "test": held, "sealed": rest}


def canonical_solution(cot: str, answer: str) -> str:
  """The worked answer with its `#### N` line written as the generator's answer ('#### 16.0'
  becomes '#### 16' when the answer is '16'); DataError when the two disagree."""
  lines = cot.rstrip().split("\n")
  if not lines[-1].strip().startswith("####"):
    raise errors.DataError(f"the worked answer does not end with a '#### N' line: {cot!r}")
  written = lines[-1].strip()[4:].strip()
  try:
    same = float(written.replace(",", "")) == float(answer.replace(",", ""))
  except ValueError:
    same = False
  if not same:
    raise errors.DataError(f"the worked answer ends with '#### {written}' but the answer is "
                           f"{answer!r}")
  return "\n".join(lines[:-1] + [f"#### {answer}"])


def draw(generator: Generator, gid: int, item_seed: int, difficulty: float) -> dict:
  """One record: the generator's question and worked answer, and where they came from."""
  example = generator(random.Random(item_seed), difficulty)
  answer = str(example["answer"])
  return {"question": example["question"].strip(),
          "answer": canonical_solution(example["metadata"]["answer_cot"], answer),
          "value": answer, "generator": gid, "seed": item_seed, "difficulty": difficulty}


def make_split(generators: dict[int, Generator], ids: Sequence[int], n: int, base: int,
               difficulty: float, taken: set[str]) -> list[dict]:
  """n records from the generators `ids` in turns, item seeds base, base + 1, ...; questions in
  `taken` are skipped and the split's own are added to it."""
  order = list(ids)
  random.Random(base).shuffle(order)
  records, next_seed = [], base
  for k in range(n):
    gid, last_error = order[k % len(order)], "duplicate questions only"
    for _ in range(MAX_REJECTS):
      item_seed, next_seed = next_seed, next_seed + 1
      if item_seed >= base + SEED_STRIDE:
        raise errors.DataError(f"the split starting at seed {base} used up its "
                               f"{SEED_STRIDE} seeds")
      try:
        record = draw(generators[gid], gid, item_seed, difficulty)
      except Exception as e:  # pylint: disable=broad-except
        last_error = f"{type(e).__name__}: {e}"  # a generator's own failure: next seed
        continue
      if record["question"] not in taken:
        taken.add(record["question"])
        records.append(record)
        break
    else:
      raise errors.DataError(
          f"generator {gid} gave no new question in {MAX_REJECTS} draws at difficulty "
          f"{difficulty} (last: {last_error}); ask for fewer problems or hold it out")
  return records


def make_splits(generators: dict[int, Generator], spec: Spec) -> dict[str, list[dict]]:
  spec.check(len(generators))
  per_split = assign_generators(list(generators), spec.seed, spec.heldout)
  taken: set[str] = set()
  return {split: make_split(generators, per_split[split], n, seed_base(spec.seed, split),
                            spec.difficulty, taken)
          for split, n in spec.sizes().items() if n}


def write_splits(out_dir: str, splits: dict[str, list[dict]], info: dict) -> None:
  """{split}.jsonl (one record a line) and info.json; each file replaced whole. A split with
  no records is removed, so no stale file of an earlier run stays beside the new ones."""
  os.makedirs(out_dir, exist_ok=True)

  def write(name: str, text: str) -> None:
    tmp = os.path.join(out_dir, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(tmp, os.path.join(out_dir, name))

  for split in SPLITS:
    if split in splits:
      write(f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in splits[split]))
    elif os.path.exists(os.path.join(out_dir, f"{split}.jsonl")):
      os.remove(os.path.join(out_dir, f"{split}.jsonl"))
  write("info.json", json.dumps(info, indent=2) + "\n")


def build(out_dir: str, spec: Spec, generators: dict[int, Generator],
          source: dict | None = None) -> dict[str, list[dict]]:
  """Draws the splits of spec and writes them to out_dir with an info.json that records the
  spec, the source and the generators of each split."""
  splits = make_splits(generators, spec)
  info = dict(source=source or {}, spec=dataclasses.asdict(spec),
              seed_ranges={s: [seed_base(spec.seed, s), seed_base(spec.seed, s) + SEED_STRIDE]
                           for s in splits},
              generators={s: sorted({r["generator"] for r in rs}) for s, rs in splits.items()},
              counts={s: len(rs) for s, rs in splits.items()})
  write_splits(out_dir, splits, info)
  return splits


def probe(generators: dict[int, Generator], difficulty: float, seeds: int = 5,
          timeout_s: float = 0.5) -> dict:
  """What a difficulty does to the generators (`--probe`): per generator, `seeds` draws (item
  seeds 0, 1, ...) that finish within timeout_s each; counts of generators that finish every
  draw, fail one (raise) or hang one, and the median digit count of the largest number of
  the finished draws' worked answers. Uses SIGALRM: main thread only."""
  def hang(*_):
    raise TimeoutError

  previous = signal.signal(signal.SIGALRM, hang)
  ok, failed, hung, digits = [], [], [], []
  try:
    for gid, generator in sorted(generators.items()):
      try:
        for item_seed in range(seeds):
          signal.setitimer(signal.ITIMER_REAL, timeout_s)
          try:
            cot = generator(random.Random(item_seed), difficulty)["metadata"]["answer_cot"]
          finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
          digits.append(max(len(n) for n in re.findall(r"\d+", cot)))
        ok.append(gid)
      except TimeoutError:
        hung.append(gid)
      except Exception:  # pylint: disable=broad-except
        failed.append(gid)
  finally:
    signal.signal(signal.SIGALRM, previous)
  return dict(difficulty=difficulty, generators=len(generators), finish=len(ok),
              fail=len(failed), hang=len(hung), hung=hung,
              median_digits_of_largest=float(sorted(digits)[len(digits) // 2]) if digits
              else None)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default=DEFAULT_OUT, help="folder of the JSONL files")
  for field in dataclasses.fields(Spec):
    p.add_argument(f"--{field.name}", type=type(field.default), default=field.default)
  p.add_argument("--wheel", default="", help="the reasoning-gym wheel (default: fetched into "
                 f"{os.path.join(reasoning_gym_wheel.cache_dir(), 'wheels')})")
  p.add_argument("--probe", default="", help="comma list of difficulties: print what each "
                 "does to the generators (gsm_symbolic.probe) and write nothing")
  args = p.parse_args(argv)
  if args.probe:
    generators = reasoning_gym_wheel.load_generators(args.wheel or reasoning_gym_wheel.fetch())
    for d in args.probe.split(","):
      print(json.dumps(probe(generators, float(d))))
    return
  spec = Spec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Spec)})
  wheel = args.wheel or reasoning_gym_wheel.fetch()
  generators = reasoning_gym_wheel.load_generators(wheel)
  source = dict(package=reasoning_gym_wheel.REQUIREMENT, licence=reasoning_gym_wheel.LICENCE,
                wheel=os.path.basename(wheel), sha256=reasoning_gym_wheel.WHEEL_SHA256)
  splits = build(args.out, spec, generators, source)
  for split, records in splits.items():
    gens = len({r["generator"] for r in records})
    print(f"{split}: {len(records)} problems from {gens} generators -> "
          f"{os.path.join(args.out, split + '.jsonl')}")


if __name__ == "__main__":
  errors.wrap(main)(sys.argv[1:])
