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
  import sys  # noqa: E402
  sys.modules["torch"] = None  # `import torch` raises ImportError
