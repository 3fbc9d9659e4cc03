"""Compiles many distinct small programs in one process and reports its memory mappings.

Reproducer for the XLA CPU compiler crash in long test processes (docs/xla_crash.md). Every
program is a new compile: a jitted train-step-like function whose static width changes, a
`lax.scan` and a `lax.while_loop` of a new length, and a `pmap` over the fake devices. Every
`--every` compiles it prints the compiles so far, the lines of /proc/self/maps, VmRSS and
/proc/sys/vm/max_map_count.

  python tests/tools/xla_many_compiles.py --programs 400 --devices 8
  python tests/tools/xla_many_compiles.py --programs 400 --drop-refs          # no references kept
  python tests/tools/xla_many_compiles.py --programs 400 --clear-every 50     # jax.clear_caches()
  python tests/tools/xla_many_compiles.py --programs 200 --headroom 300       # crash near the limit
  python tests/tools/xla_many_compiles.py --headroom 12000 --pytest -q -p no:cacheprovider \
      tests/test_evaluate.py                       # a real test file, 12000 mappings left

--headroom N first fills the process's mapping table with anonymous one-page mappings until
only N mappings are left below vm.max_map_count (the same as lowering the limit, for this
process only), so the compiles after it run into the limit.
"""
import argparse
import gc
import mmap
import os
import sys
import time


def maps_count():
  with open("/proc/self/maps") as f:
    return sum(1 for _ in f)


def rss_mb():
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def max_map_count():
  try:
    with open("/proc/sys/vm/max_map_count") as f:
      return int(f.read())
  except OSError:
    return -1


def fill_maps(headroom, limit=0):
  """Anonymous mappings, alternately readable and not so the kernel cannot merge neighbours,
  until `headroom` mappings are left below `limit` (0: vm.max_map_count). They stay."""
  import ctypes
  libc = ctypes.CDLL(None, use_errno=True)
  libc.mmap.restype = ctypes.c_void_p
  libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                        ctypes.c_int, ctypes.c_long]
  n = (limit or max_map_count()) - headroom - maps_count()
  page = mmap.PAGESIZE
  PROT_NONE = 0
  # One big reservation, then every other page made PROT_READ: each mprotect splits off two
  # mappings (the readable page and the rest), and neighbours never merge.
  n //= 2
  size = 2 * (n + 1) * page
  base = libc.mmap(None, size, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
  if base in (None, ctypes.c_void_p(-1).value):
    raise OSError(ctypes.get_errno(), "mmap reservation failed")
  libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
  for i in range(n):
    if libc.mprotect(base + 2 * i * page, page, mmap.PROT_READ) != 0:
      raise OSError(ctypes.get_errno(), f"mprotect failed after {i} split mappings")
  return base


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--programs", type=int, default=400, help="distinct programs to compile")
  p.add_argument("--devices", type=int, default=8, help="fake CPU devices (XLA_FLAGS)")
  p.add_argument("--every", type=int, default=25, help="print a line every N compiles")
  p.add_argument("--clear-every", type=int, default=0,
                 help="jax.clear_caches() + gc.collect() every N compiles (0: never)")
  p.add_argument("--drop-refs", action="store_true",
                 help="keep no reference to the jitted functions and their outputs")
  p.add_argument("--headroom", type=int, default=0,
                 help="first fill the mapping table to this many mappings below the limit")
  p.add_argument("--limit", type=int, default=0,
                 help="count --headroom from this many mappings, not from vm.max_map_count")
  p.add_argument("--kinds", default="jit,scan,while,pmap",
                 help="program kinds, cycled: jit, scan, while, pmap")
  p.add_argument("--pytest", nargs=argparse.REMAINDER,
                 help="instead of the programs above, run pytest on these arguments in this "
                      "process (after --headroom's filling)")
  args = p.parse_args()

  if args.pytest is not None:
    # Before jax is imported: tests/conftest.py sets XLA_FLAGS and the compilation cache.
    if args.headroom:
      before = maps_count()
      fill_maps(args.headroom, args.limit)
      print(f"filled the mapping table: {before} -> {maps_count()} of {max_map_count()}",
            flush=True)
    sys.path.insert(0, os.getcwd())  # as `python -m pytest` has it
    import pytest
    return pytest.main(args.pytest)

  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.devices}").strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import functools
  import jax
  import jax.numpy as jnp
  from jax import lax

  ndev = jax.local_device_count()

  def mlp_step(width, params, x):
    def loss(params):
      h = jnp.tanh(x[:, :width] @ params["w1"][:width])
      return jnp.mean((h @ params["w2"]) ** 2)
    l, g = jax.value_and_grad(loss)(params)
    return l, jax.tree.map(lambda p, g: p - 1e-2 * g, params, g)

  def make(kind, i):
    """(function, its arguments): a program no earlier iteration compiled."""
    params = {"w1": jnp.ones((64, 32)), "w2": jnp.ones((32, 8))}
    x = jnp.ones((4, 64))
    width = 1 + i % 64
    if kind == "jit":
      f = jax.jit(functools.partial(mlp_step, width))
      return f, (params, x + i)
    if kind == "scan":
      def f(params, x):
        def body(c, _):
          l, c = mlp_step(width, c, x)
          return c, l
        return lax.scan(body, params, None, length=2 + i)
      return jax.jit(f), (params, x)
    if kind == "while":
      def f(x):
        return lax.while_loop(lambda c: c[0] < 3 + i, lambda c: (c[0] + 1, jnp.sin(c[1]) * 1.01),
                              (0, x))
      return jax.jit(f), (x,)
    if kind == "pmap":
      f = jax.pmap(lambda x: lax.psum(jnp.sum(x[:, :width] ** 2), "d"), axis_name="d")
      return f, (jnp.ones((ndev, 4, 64)) + i,)
    raise ValueError(kind)

  if args.headroom:
    before = maps_count()
    fill_maps(args.headroom, args.limit)
    print(f"filled the mapping table: {before} -> {maps_count()} of {max_map_count()}",
          flush=True)

  kinds = args.kinds.split(",")
  kept = []
  base_maps, base_rss = maps_count(), rss_mb()
  print(f"devices={ndev} jax={jax.__version__} max_map_count={max_map_count()} "
        f"start: maps={base_maps} rss={base_rss:.0f}MB", flush=True)
  t0 = time.time()
  for i in range(1, args.programs + 1):
    kind = kinds[(i - 1) % len(kinds)]
    f, a = make(kind, i)
    out = f(*a)
    jax.block_until_ready(out)
    if not args.drop_refs:
      kept.append((f, out))
    del f, a, out
    if args.clear_every and i % args.clear_every == 0:
      jax.clear_caches()
      gc.collect()
    if i % args.every == 0 or i == args.programs:
      m = maps_count()
      print(f"compiles={i:5d} maps={m:6d} (+{(m - base_maps) / i:.1f}/compile) "
            f"rss={rss_mb():6.0f}MB limit={max_map_count()} t={time.time() - t0:.0f}s",
            flush=True)
  kept.clear()
  jax.clear_caches()
  gc.collect()
  print(f"after clear_caches+gc: maps={maps_count()} rss={rss_mb():.0f}MB", flush=True)


if __name__ == "__main__":
  sys.exit(main())
