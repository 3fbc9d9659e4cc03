"""XLA flags for test processes and for the entry points the tests launch.

Tests compile many small programs and run each for moments: LLVM's optimisation passes are
most of XLA's CPU compile time and buy little on tiny models (about a third of a compile-bound
file's CPU time, tests/test_rollout.py). COLLAB_TEST_XLA_OPT=1 keeps them.
"""
import os

FAST_COMPILE = ("" if os.environ.get("COLLAB_TEST_XLA_OPT") == "1" else
                "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")


def flags(devices: int | None = None) -> str:
  """XLA_FLAGS with the test compile flags and `devices` fake CPU devices."""
  fake = f" --xla_force_host_platform_device_count={devices}" if devices else ""
  return (FAST_COMPILE + fake).strip()
