"""Procedural shopping task: a fixed world of priced entities, problems solved line by line.

A problem (shown most-significant digit first; with `lsd_first` every number is reversed):

    buy 3 bako , 2 tilu ; have <priv>295</priv> ; left ?
    price bako = 12        <- look-up: needs the world's fact (help is worth it if unseen)
    3 * 12 = 36            <- arithmetic: everything needed is in the context
    price tilu = 7
    2 * 7 = 14
    36 + 14 = 50
    <priv>295</priv> - 50 = 245
    answer 245

The balance is private (`<priv>` spans); a redacted request replaces each span with
`<redacted>`, so a helper can still look prices up but cannot subtract. Without a private
balance the question ends in `; total ?` and the answer is the sum.

Held-out knowledge (`heldout_entities` > 0): a seeded share of the entities is held out;
test problems buy only held-out entities and validation problems (the gate's training
problems) none, so no look-up of a test problem occurs in a gate-training problem. The train
split (pretraining) is unchanged and holds every entity.

The sealed split (`SEALED`) holds the headline numbers only: problems of the test split's
hash region (so never a training or validation problem) drawn from their own candidate stream,
minus every problem of the test split, which settings were chosen on. It is generated on
request (never part of the TFDS data set) and has the test split's size.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Iterable, Sequence

import numpy as np

SPLITS = ("train", "validation", "test")
SEALED = "sealed"
# Candidate streams (the second word of the rng seed; 0, 1, 3, 4 seed the world itself).
_STREAM, _SEALED_STREAM = 2, 5
STEP_KINDS = ("lookup", "mul", "add", "sub", "answer")
PRIV_OPEN, PRIV_CLOSE, REDACTED = "<priv>", "</priv>", "<redacted>"

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
# Split membership is a pure function of the problem (a hash), with fixed shares, so a
# problem can never move between splits whatever the requested split sizes are.
_HELD_OUT_SHARE = {"test": 1 / 16, "validation": 1 / 16}
_BLOCK = 4096  # candidates drawn per block; fixed so the candidate stream never changes
_PRIV_RE = re.compile(re.escape(PRIV_OPEN) + r".*?" + re.escape(PRIV_CLOSE), re.S)
_ANSWER_RE = re.compile(r"^\s*answer (\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  world_seed: int = 0
  num_entities: int = 200
  price_max: int = 49           # prices are 1..price_max
  min_items: int = 1
  max_items: int = 2
  qty_max: int = 5              # quantities are 1..qty_max
  balance_digits: int = 3       # digits of the private balance
  private_prob: float = 0.5     # share of problems with a private balance
  lsd_first: bool = True        # numbers written least-significant digit first
  # Sums, differences and the answer are zero-padded to this many digits (0: no padding):
  # aligned digits make multi-digit addition and subtraction learnable for tiny models.
  arith_width: int = 3
  num_train: int = 50000
  num_validation: int = 1000
  num_test: int = 1000
  # Share of entities held out for the test split (0: off); see the module docstring.
  heldout_entities: float = 0.0

  def split_size(self, split: str) -> int:
    return {"train": self.num_train, "validation": self.num_validation,
            "test": self.num_test, SEALED: self.num_test}[_check_split(split)]


# Options of the harder worlds and their off values: configs and data names leave an option
# out while it is off, so a world without it is named and configured as before it existed.
OFF_OPTIONS = {"heldout_entities": 0.0}


def _check_split(split: str) -> str:
  if split not in SPLITS + (SEALED,):
    raise ValueError(f"Unknown split {split!r}; valid: {SPLITS + (SEALED,)}")
  return split


def format_number(n: int, lsd_first: bool, width: int = 0) -> str:
  """Decimal digits of n >= 0, zero-padded to `width`, reversed when lsd_first
  (12 -> '21', 50 -> '05'; width 3: 12 -> '210')."""
  s = str(int(n)).zfill(width)
  return s[::-1] if lsd_first else s


def parse_number(s: str, lsd_first: bool) -> int:
  """Inverse of format_number; raises ValueError on anything but digits."""
  s = s.strip()
  if not s.isdigit() or not s.isascii():
    raise ValueError(f"Not a number: {s!r}")
  return int(s[::-1] if lsd_first else s)


def step_category(kind: str) -> str:
  """Coarse step class: 'lookup' (needs a fact), 'arith' (mul/add/sub), 'answer'."""
  if kind in ("mul", "add", "sub"):
    return "arith"
  if kind in ("lookup", "answer"):
    return kind
  raise ValueError(f"Unknown step kind {kind!r}; valid: {STEP_KINDS}")


def redacted(text: str) -> str:
  """Replaces each whole private span (markers included) with `<redacted>`."""
  return _PRIV_RE.sub(REDACTED, text)


def _entity_names(num_entities: int, rng: np.random.Generator) -> list[str]:
  syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
  space = len(syllables) ** 2
  if num_entities > space:
    raise ValueError(f"num_entities={num_entities} exceeds the {space} two-syllable names")
  picks = rng.choice(space, size=num_entities, replace=False)
  return [syllables[i // len(syllables)] + syllables[i % len(syllables)] for i in picks]


class World:
  """Entities (distinct two-syllable names) and one integer price each, from world_seed."""

  def __init__(self, cfg: TaskConfig):
    if cfg.price_max < 1:
      raise ValueError(f"price_max must be >= 1, got {cfg.price_max}")
    self.cfg = cfg
    rng = np.random.default_rng([cfg.world_seed, 0])
    self.names: tuple[str, ...] = tuple(_entity_names(cfg.num_entities, rng))
    self.prices_E: np.ndarray = rng.integers(1, cfg.price_max + 1, size=cfg.num_entities)
    self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}

  def __len__(self) -> int:
    return len(self.names)

  def price(self, entity: int) -> int:
    return int(self.prices_E[entity])

  def known_mask(self, coverage: float, coverage_seed: int = 0) -> np.ndarray:
    """bool[E]: entities whose facts a model with this coverage is trained on.

    One fixed random ranking per (world_seed, coverage_seed); coverage c keeps the first
    round(c * E), so masks are nested across coverages.
    """
    if not 0.0 <= coverage <= 1.0:
      raise ValueError(f"coverage must be in [0, 1], got {coverage}")
    rank_E = np.random.default_rng([self.cfg.world_seed, 1, coverage_seed]).permutation(
        len(self))
    return rank_E < int(round(coverage * len(self)))

  def known_mask_overlapping(self, coverage: float, reference: float, overlap: float,
                             coverage_seed: int = 0) -> np.ndarray:
    """bool[E]: round(coverage * E) known entities, of which round(overlap * |R|) lie in
    R = known_mask(reference, coverage_seed) and the rest outside it.

    A fallible helper: with overlap < 1 it lacks facts that a model of coverage `reference`
    knows, and knows others that model lacks. Raises ValueError when the counts cannot fit.
    """
    for name, v in (("coverage", coverage), ("reference", reference), ("overlap", overlap)):
      if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    ref_E = self.known_mask(reference, coverage_seed)
    n_known = int(round(coverage * len(self)))
    n_in = int(round(overlap * ref_E.sum()))
    n_out = n_known - n_in
    if not 0 <= n_out <= (~ref_E).sum():
      raise ValueError(
          f"coverage {coverage} with overlap {overlap} of a reference coverage {reference} "
          f"needs {n_in} of the reference's {int(ref_E.sum())} known entities and {n_out} of "
          f"the other {int((~ref_E).sum())}: lower the overlap or change the coverage")
    rank_E = np.random.default_rng([self.cfg.world_seed, 4, coverage_seed]).permutation(
        len(self))
    known_E = np.zeros(len(self), bool)
    for inside, n in ((True, n_in), (False, n_out)):
      ids = np.flatnonzero(ref_E == inside)
      known_E[ids[np.argsort(rank_E[ids])[:n]]] = True
    return known_E

  def heldout_mask(self) -> np.ndarray:
    """bool[E]: the round(heldout_entities * E) entities only test problems buy."""
    share = self.cfg.heldout_entities
    if not 0.0 <= share < 1.0:
      raise ValueError(f"heldout_entities must be in [0, 1), got {share}")
    rank_E = np.random.default_rng([self.cfg.world_seed, 3]).permutation(len(self))
    return rank_E < int(round(share * len(self)))


@dataclasses.dataclass(frozen=True)
class Step:
  text: str
  kind: str         # one of STEP_KINDS
  entity: int = -1  # the looked-up entity for 'lookup' steps, else -1


@dataclasses.dataclass(frozen=True)
class Problem:
  question: str
  steps: tuple[Step, ...]
  answer: int
  entity_ids: tuple[int, ...]   # in item (and look-up) order
  quantities: tuple[int, ...]
  has_private: bool
  balance: int = -1             # the private balance, -1 when none

  def text(self) -> str:
    return "\n".join([self.question] + [s.text for s in self.steps])

  @property
  def private_values(self) -> tuple[int, ...]:
    return (self.balance,) if self.has_private else ()

  @property
  def step_texts(self) -> tuple[str, ...]:
    return tuple(s.text for s in self.steps)

  @property
  def step_kinds(self) -> tuple[str, ...]:
    return tuple(s.kind for s in self.steps)


def make_problem(world: World, entity_ids: Sequence[int], quantities: Sequence[int],
                 balance: int | None) -> Problem:
  """The problem buying quantities[i] of entity_ids[i], with an optional private balance."""
  lsd = world.cfg.lsd_first
  num = lambda n: format_number(n, lsd)  # noqa: E731
  wide = lambda n: format_number(n, lsd, world.cfg.arith_width)  # noqa: E731
  items = " , ".join(f"{num(q)} {world.names[e]}" for e, q in zip(entity_ids, quantities))
  steps, subtotals = [], []
  for e, q in zip(entity_ids, quantities):
    p = world.price(e)
    steps.append(Step(f"price {world.names[e]} = {num(p)}", "lookup", int(e)))
    steps.append(Step(f"{num(q)} * {num(p)} = {num(q * p)}", "mul"))
    subtotals.append(q * p)
  total = subtotals[0]
  for sub in subtotals[1:]:
    steps.append(Step(f"{wide(total)} + {wide(sub)} = {wide(total + sub)}", "add"))
    total += sub
  if balance is None:
    question, answer = f"buy {items} ; total ?", total
  else:
    if balance < total:
      raise ValueError(f"balance {balance} < total {total}")
    priv = f"{PRIV_OPEN}{num(balance)}{PRIV_CLOSE}"
    question, answer = f"buy {items} ; have {priv} ; left ?", balance - total
    steps.append(Step(f"{priv} - {wide(total)} = {wide(answer)}", "sub"))
  steps.append(Step(f"answer {wide(answer)}", "answer"))
  return Problem(question, tuple(steps), int(answer), tuple(int(e) for e in entity_ids),
                 tuple(int(q) for q in quantities), balance is not None,
                 -1 if balance is None else int(balance))


def _split_of(key: str) -> str:
  """Split of a canonical problem key, by a hash: fixed shares, independent of split sizes."""
  u = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") / 2**64
  if u < _HELD_OUT_SHARE["test"]:
    return "test"
  if u < _HELD_OUT_SHARE["test"] + _HELD_OUT_SHARE["validation"]:
    return "validation"
  return "train"


def _candidates(cfg: TaskConfig, world: World, stream: int = _STREAM) -> Iterable[tuple]:
  """Endless seeded stream of (entity_ids, quantities, balance | None), drawn in blocks."""
  if not 1 <= cfg.min_items <= cfg.max_items <= cfg.num_entities:
    raise ValueError(f"Need 1 <= min_items <= max_items <= num_entities, got {cfg}")
  rng = np.random.default_rng([cfg.world_seed, stream])
  lo_bal = 10 ** (cfg.balance_digits - 1) if cfg.balance_digits > 1 else 0
  hi_bal = 10 ** cfg.balance_digits - 1
  m = cfg.max_items
  while True:
    n_items_N = rng.integers(cfg.min_items, m + 1, size=_BLOCK)
    ents_NxM = rng.integers(0, cfg.num_entities, size=(_BLOCK, m))
    qtys_NxM = rng.integers(1, cfg.qty_max + 1, size=(_BLOCK, m))
    private_N = rng.random(_BLOCK) < cfg.private_prob
    bal_u_N = rng.random(_BLOCK)
    totals_NxM = qtys_NxM * world.prices_E[ents_NxM]
    for i in range(_BLOCK):
      k = int(n_items_N[i])
      ents = ents_NxM[i, :k].tolist()
      if len(set(ents)) < k:
        continue  # an item appears once per problem
      balance = None
      if private_N[i]:
        lo = max(lo_bal, int(totals_NxM[i, :k].sum()))  # balance >= total: answer >= 0
        hi = max(hi_bal, lo)
        balance = lo + int(bal_u_N[i] * (hi - lo + 1))
      yield ents, qtys_NxM[i, :k].tolist(), balance


def generate_splits(cfg: TaskConfig, splits: Sequence[str] = SPLITS) -> dict[str, list[Problem]]:
  """Problems of the requested splits: deterministic, disjoint, deduplicated.

  One seeded candidate stream; each candidate goes to the split its canonical key hashes to
  (items sorted, so reorderings of one purchase are one problem) and is kept while that split
  still needs problems. A split of size n is a prefix of the same split of any larger size.
  SEALED, when requested, comes from its own stream (module docstring).
  """
  world = World(cfg)
  need = {s: cfg.split_size(s) for s in map(_check_split, splits) if s != SEALED}
  out = _draw(cfg, world, need, _STREAM, _split_of)
  if SEALED in splits:
    test = out.get("test") or _draw(cfg, world, {"test": cfg.num_test}, _STREAM, _split_of)["test"]
    touched = {_key(p.entity_ids, p.quantities, p.balance if p.has_private else None)
               for p in test}
    route = lambda key: SEALED if _split_of(key) == "test" and key not in touched else None  # noqa: E731
    out[SEALED] = _draw(cfg, world, {SEALED: cfg.num_test}, _SEALED_STREAM, route)[SEALED]
  return {s: out[s] for s in splits}


def _key(ents, qtys, balance) -> str:
  return ",".join(f"{e}x{q}" for e, q in sorted(zip(ents, qtys))) + f";{balance}"


def _draw(cfg: TaskConfig, world: World, need: dict[str, int], stream: int,
          route) -> dict[str, list[Problem]]:
  """Candidates of `stream` routed by route(key) -> split | None, kept while needed."""
  heldout_E = world.heldout_mask()
  out: dict[str, list[Problem]] = {s: [] for s in need}
  seen: set[str] = set()
  # The draw limit only decides when to give up; from the config, so that one split requested
  # alone is found exactly when it is found with the others.
  max_draws = 50 * (cfg.num_train + cfg.num_validation + 2 * cfg.num_test) + 100_000
  for draws, (ents, qtys, balance) in enumerate(_candidates(cfg, world, stream)):
    if all(len(out[s]) >= n for s, n in need.items()):
      break
    if draws >= max_draws:
      got = {s: len(v) for s, v in out.items()}
      raise ValueError(f"Problem space too small for the requested splits {need} "
                       f"(got {got} after {draws} draws); raise num_entities/qty_max/max_items"
                       + (" or heldout_entities." if heldout_E.any() else "."))
    key = _key(ents, qtys, balance)
    split = route(key)
    if split not in need or len(out[split]) >= need[split] or key in seen:
      continue
    if heldout_E.any() and split != "train":
      held = heldout_E[ents]
      if not (held.all() if split in ("test", SEALED) else not held.any()):
        continue
    seen.add(key)
    out[split].append(make_problem(world, ents, qtys, balance))
  return out


def generate_split(cfg: TaskConfig, split: str) -> list[Problem]:
  return generate_splits(cfg, (split,))[split]


def corpus_texts(cfg: TaskConfig, n: int) -> list[str]:
  """Texts for tokenizer training: n training problems, plus a few of the other question
  form (private vs total) when cfg never produces it, so every keyword gets pieces."""
  texts = [p.text() for p in generate_split(dataclasses.replace(cfg, num_train=n), "train")]
  if cfg.private_prob in (0.0, 1.0):
    other = dataclasses.replace(cfg, private_prob=1.0 - cfg.private_prob,
                                num_train=max(1, n // 100))
    texts += [p.text() for p in generate_split(other, "train")]
  texts += [redacted(t) for t in texts[: max(1, n // 100)]]
  return texts


_QUESTION_RE = re.compile(r"^buy (?P<items>.+?) ; (?:total \?|have .+ ; (?P<left>left) \?)$")


def plan_kinds(question: str) -> tuple[str, ...] | None:
  """The step kinds a solution of `question` has, in order, read from the question alone
  (its items and whether it holds a balance): what a solver knows before writing a line.
  None for a question of another format."""
  m = _QUESTION_RE.match(question.strip()) if isinstance(question, str) else None
  if m is None:
    return None
  n = len(m.group("items").split(" , "))
  return (("lookup", "mul") * n + ("add",) * (n - 1) + (("sub",) if m.group("left") else ())
          + ("answer",))


def parse_answer(text: str, lsd_first: bool = True) -> int | None:
  """The number of the last `answer N` line of a generated text, or None if there is none."""
  if not isinstance(text, str):
    return None
  for line in reversed(text.split("\n")):
    m = _ANSWER_RE.match(line)
    if m:
      return parse_number(m.group(1), lsd_first)
  return None


def check_problem(world: World, problem: Problem) -> None:
  """Raises AssertionError unless every number in the problem agrees with the world."""
  total = sum(q * world.price(e) for e, q in zip(problem.entity_ids, problem.quantities))
  expected = problem.balance - total if problem.has_private else total
  assert problem.answer == expected >= 0, (problem, expected)
  assert parse_answer(problem.text(), world.cfg.lsd_first) == expected, problem
