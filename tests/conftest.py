"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""
import os

import xla_env

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_env.flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# A persistent compilation cache inside the tree, shared by every test process and by the
# entry points the tests launch (they inherit the environment): test files that build the
# same tiny models compile each program once per machine. Set COLLAB_TEST_JAX_CACHE= (empty)
# to turn it off.
_CACHE = os.environ.get("COLLAB_TEST_JAX_CACHE", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax_tests"))
if _CACHE:
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gc  # noqa: E402

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import pytest  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
  """Frees every compiled program when a test module ends. XLA's CPU JIT keeps about three
  memory mappings per compiled object for as long as its executable lives, and a process
  that reaches vm.max_map_count (65530) crashes inside the compiler (docs/xla_crash.md)."""
  yield
  jax.clear_caches()
  gc.collect()

# Imported now, not lazily by its pytest plugin in the terminal summary: on CPython 3.11.7 a
# garbage cycle collected while `ast.parse` runs (orbax leaves one with a raising __del__ after
# a failed restore) makes the assertion rewriter's parse fail with "SystemError: AST
# constructor recursion depth mismatch", and the whole pytest process exits 1 after its tests
# passed (seen with tests/test_checkpoint.py).
import hypothesis  # noqa: E402,F401

# tensorboardX imports torch when it is installed, and XLA compilation crashed in processes
# with torch loaded; the Makefile runs the tests that need torch separately and blocks it here.
if os.environ.get("COLLAB_BLOCK_TORCH") == "1":
  import importlib.abc  # noqa: E402
  import sys  # noqa: E402

  class _BlockTorch(importlib.abc.MetaPathFinder):
    """`import torch` raises ModuleNotFoundError. (A None entry in sys.modules would also
    block it, but scipy then finds the key and reads attributes off None.)"""

    def find_spec(self, fullname, path=None, target=None):
      if fullname == "torch" or fullname.startswith("torch."):
        raise ModuleNotFoundError(f"torch is blocked in this test process: {fullname}")
      return None

  sys.meta_path.insert(0, _BlockTorch())
