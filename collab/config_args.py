"""Parsing of the `arg` string that big_vision-style config files receive.

`configs/x.py:get_config("model=slm_s,runlocal")` gets arg="model=slm_s,runlocal": a comma list of
`key=value` pairs and bare flags (a bare flag means True). Values keep the type of the default.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any, Mapping, TypeVar

import ml_collections

from collab import errors

T = TypeVar("T")


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Returns a ConfigDict of `defaults` overridden by `arg`; unknown keys are an error."""
  parsed = ml_collections.ConfigDict(defaults)
  if not arg:
    return parsed
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, value = item.partition("=")
    if key not in defaults:
      raise errors.ConfigError(
          f"Unknown config argument {key!r} in {arg!r}; valid: {sorted(defaults)}")
    default = defaults[key]
    if not sep:  # bare flag
      if not isinstance(default, bool):
        raise errors.ConfigError(f"Config argument {key!r} needs a value ({key}=...)")
      parsed[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise errors.ConfigError(f"Config argument {key!r} expects true/false, got {value!r}")
      parsed[key] = value.lower() in ("true", "1")
    elif default is None:
      parsed[key] = value
    else:
      try:
        parsed[key] = type(default)(value)
      except ValueError:
        raise errors.ConfigError(f"Config argument {key!r} expects a {type(default).__name__}, "
                                 f"got {value!r} in {arg!r}") from None
  return parsed


def to_dataclass(cls: type[T], section: Mapping[str, Any] | None, where: str) -> T:
  """`cls(**section)`, with unknown keys reported by name (a typo would otherwise surface as
  a TypeError from deep inside the run, or be silently dropped)."""
  values = dict(section.to_dict() if hasattr(section, "to_dict") else section or {})
  valid = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(values) - set(valid))
  if unknown:
    raise errors.ConfigError(f"Unknown key(s) {unknown} in {where}; valid: {valid}")
  return cls(**values)


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file named by path, as `--config=path:arg` loads it (a study
  names the gate config its runs use). Relative paths are read from the working directory."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Config file {path} does not exist (paths are relative to "
                            f"{os.getcwd()})")
  spec = importlib.util.spec_from_file_location(
      "_config_" + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
