"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)

jax.config.update("jax_threefry_partitionable", True)

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
