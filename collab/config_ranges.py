"""How a numeric setting is checked: a `Range` of valid values, the common ones (POSITIVE,
PROBABILITY, ...), and `check_ranges`, which holds a config's numbers to a table of them and
raises `errors.ConfigError` naming the first key out of range. The tables of this project's
settings are in collab/config_check.py."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

import ml_collections

from collab import errors


@dataclasses.dataclass(frozen=True)
class Range:
  """Valid values of a numeric field: an interval, integers only when `integer`.

  `each`: the field is a tuple of such numbers (nested tuples too, e.g. eval.fixed_steps)."""
  low: float | None = None
  high: float | None = None
  low_open: bool = False   # low itself is excluded
  high_open: bool = False  # high itself is excluded
  integer: bool = False
  each: bool = False
  why: str = ""            # added to the message: why the range is what it is

  def contains(self, x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
      return False
    if self.integer and (not isinstance(x, int) and not float(x).is_integer()):
      return False
    if not math.isfinite(x):
      return False
    if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
      return False
    if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
      return False
    return True

  def describe(self) -> str:
    kind = ("integers" if self.integer else "numbers") if self.each else (
        "an integer" if self.integer else "a number")
    lo = None if self.low is None else _fmt(self.low)
    hi = None if self.high is None else _fmt(self.high)
    if lo is not None and hi is not None:
      text = (f"{kind} in {'(' if self.low_open else '['}{lo}, {hi}"
              f"{')' if self.high_open else ']'}")
    elif lo is not None:
      text = f"{kind} {'>' if self.low_open else '>='} {lo}"
    elif hi is not None:
      text = f"{kind} {'<' if self.high_open else '<='} {hi}"
    else:
      text = f"finite {kind}" if self.each else f"a finite {kind[2:]}"
    if self.each:
      text = "a tuple of " + text
    return text + (f" ({self.why})" if self.why else "")

  def bad_value(self) -> float:
    """A value outside the range (for tests)."""
    if self.low is not None:
      return self.low if self.low_open else self.low - 1
    if self.high is not None:
      return self.high if self.high_open else self.high + 1
    return float("nan")


def _fmt(x: float) -> str:
  return str(int(x)) if float(x).is_integer() else str(x)


def count(low: int = 1, why: str = "") -> Range:
  return Range(low=low, integer=True, why=why)


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
PROBABILITY = Range(low=0, high=1)
FINITE = Range()
SEED = count(0)


def numeric_leaves(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{dotted key: value} of every number (or tuple holding numbers) in a config."""
  out = {}
  for key, value in dict(config).items():
    name = f"{prefix}{key}"
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(numeric_leaves(value, name + "."))
    elif _numbers(value):
      out[name] = value
  return out


def _numbers(value) -> list:
  """The numbers in value (a number, or nested tuples/lists of them); bools are not numbers."""
  if isinstance(value, bool):
    return []
  if isinstance(value, (int, float)):
    return [value]
  if isinstance(value, (tuple, list)):
    return [x for v in value for x in _numbers(v)]
  return []


def _get(config, key: str):
  node = config
  for part in key.split("."):
    if not hasattr(node, "get") or part not in node:
      return None
    node = node[part]
  return node


def check_ranges(config: Mapping[str, Any], ranges: Mapping[str, Range],
                 skip: Iterable[str] = ()) -> None:
  """ConfigError for the first field of `ranges` that `config` holds outside its range.

  Fields the config lacks are skipped (a config may leave a field at the code's default)."""
  skip = tuple(skip)
  for key, rng in ranges.items():
    value = _get(config, key)
    if value is None or key.startswith(skip):
      continue
    if rng.each:
      if not isinstance(value, (tuple, list)):
        raise errors.ConfigError(f"config.{key}={value!r} is out of range: expected "
                                 f"{rng.describe()}")
      bad = [x for x in _flat(value) if not rng.contains(x)]
    else:
      bad = [] if rng.contains(value) else [value]
    if bad:
      raise errors.ConfigError(f"config.{key}={value!r} is out of range: expected "
                               f"{rng.describe()}")


def _flat(value):
  if isinstance(value, (tuple, list)):
    return [x for v in value for x in _flat(v)]
  return [value]
