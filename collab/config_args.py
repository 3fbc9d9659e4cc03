"""Parsing of the `arg` string that big_vision-style config files receive.

`configs/x.py:get_config("model=slm_s,runlocal")` gets arg="model=slm_s,runlocal": a comma list of
`key=value` pairs and bare flags (a bare flag means True). Values keep the type of the default.
"""
from __future__ import annotations

import ml_collections


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
      raise ValueError(
          f"Unknown config argument {key!r} in {arg!r}; valid: {sorted(defaults)}")
    default = defaults[key]
    if not sep:  # bare flag
      if not isinstance(default, bool):
        raise ValueError(f"Config argument {key!r} needs a value ({key}=...)")
      parsed[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"Config argument {key!r} expects true/false, got {value!r}")
      parsed[key] = value.lower() in ("true", "1")
    elif default is None:
      parsed[key] = value
    else:
      parsed[key] = type(default)(value)
  return parsed
