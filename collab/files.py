"""File helpers shared by every layer (imports nothing from collab)."""
import hashlib


def sha256(path: str) -> str:
  """Hex sha256 of a file, read in 4 MiB chunks (model files run to hundreds of MB)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()
