"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)

jax.config.update("jax_threefry_partitionable", True)
# Persistent compilation cache: tests that build the same rollout or train step (same HLO) in
# different tests compile it once. Inside the tree, so CI keeps it with its other caches.
jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
