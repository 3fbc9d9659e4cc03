"""Running one policy through the collaborative rollout on every row of an episode batch:
fixed-size batches (pmapped over local devices, or on a model mesh, or split over processes),
per-problem arrays back. Shared by evaluation, checkpoint selection, calibration and the
fitted baselines (collab/fitted_baselines.py)."""
from __future__ import annotations

import time

import jax
import numpy as np

from collab import pair as pair_lib
from collab import parallel
from collab import rollout as rollout_lib



def _batches(num_rows: int, batch_size: int):
  """Row indices of fixed-size batches; the last is padded by repeating its final row.
  Yields (rows_B, num_real)."""
  for start in range(0, num_rows, batch_size):
    rows_B = np.minimum(np.arange(start, start + batch_size), num_rows - 1)
    yield rows_B, min(batch_size, num_rows - start)


def _per_problem(steps: rollout_lib.Step, final: rollout_lib.Final, actions,
                 step_fields: tuple[str, ...] = ()) -> dict:
  """Per-problem numpy arrays from one batch. Step records are S x B (single device) or
  n x S x B/n (pmap): the decision axis is -2 either way, and rows flatten to B. Each of
  `step_fields` is kept per decision as `step_<field>`, B x S (x D)."""
  action_xSxB, valid_xSxB = np.asarray(steps.action), np.asarray(steps.valid)
  rows = lambda x: np.asarray(x).reshape(-1)
  S = action_xSxB.shape[-2]
  lead = action_xSxB.ndim - 2  # 1 under pmap (the device axis), else 0
  out = {
      "correct": rows(final.correct_B).astype(np.float64),
      "calls": rows(final.calls_B), "llm_tokens": rows(final.llm_tokens_B),
      "context_tokens": rows(final.context_tokens_B), "exposed": rows(final.exposed_B),
      "overflow": rows(final.overflow_B), "decisions": rows(valid_xSxB.sum(-2)),
  }
  for a, name in enumerate(actions):
    out[f"action_{name}"] = rows(((action_xSxB == a) & valid_xSxB).sum(-2))
  for field in step_fields:
    x = np.asarray(getattr(steps, field))  # [n x] S x B' x ...
    x = np.moveaxis(x, lead, lead + 1)     # [n x] B' x S x ...
    out[f"step_{field}"] = x.reshape((-1, S) + x.shape[lead + 2:])
  return out


def run_policy(pair: pair_lib.Pair, setup: rollout_lib.Setup, gate_params,
               episodes: dict[str, np.ndarray], policy: rollout_lib.Policy, *,
               batch_size: int, value: float = 0.0, rng_seed: int = 0,
               call_price: float | None = None, mesh: parallel.ModelMesh | None = None,
               name: str = "", progress_every_s: float = 30.0, value2: float | None = None,
               mix: float = 0.0, step_fields: tuple[str, ...] = ()
               ) -> dict[str, np.ndarray]:
  """Runs `policy` on every episode row; returns per-problem arrays (length N each).

  Keys: correct, calls, llm_tokens, context_tokens, exposed, overflow, decisions (valid steps)
  and action_<kind> (decisions that chose each request kind). Batches have a fixed size and the
  policy and `value` are traced, so one compile serves every policy of a setup; with
  several local devices and a batch that splits evenly, batches are pmapped. Rows keep their
  global row_id, so sampled policies give the same result however the rows are batched.
  value2, mix: each row uses value2 with probability mix (Policy.args), one draw per row id.
  step_fields: Step records kept per decision as `step_<field>` (N x S ...), e.g. the
  features and labels a supervised router trains on.
  call_price: the call price a price-conditioned gate is told (every row).
  mesh: run model-sharded on it (`parallel.model_mesh`) instead of pmapped.
  A policy that runs longer than progress_every_s prints its batches done and an ETA.
  """
  policy_args = policy.args(setup.rollout.num_steps, setup.gate.actions, value, value2, mix)
  if call_price is not None:
    episodes = dict(episodes, call_price_B=np.full(len(episodes["row_id_B"]), call_price,
                                                   np.float32))
  num_rows = total_rows = len(episodes["row_id_B"])
  if jax.process_count() > 1:  # this process's share of the rows; gathered at the end
    local = _process_rows(total_rows)
    episodes = {k: v[local] for k, v in episodes.items()}
    num_rows = len(local)
  n_dev = mesh.data if mesh else parallel.num_devices()
  # No bigger than needed, but a multiple of the devices when the batch was one.
  batch_size = min(batch_size, -(-num_rows // n_dev) * n_dev if batch_size % n_dev == 0
                   else num_rows)
  if mesh and batch_size % n_dev:
    raise ValueError(f"eval.batch_size={batch_size} must split over the mesh's {n_dev} data "
                     "shards")
  use_pmap = not mesh and n_dev > 1 and batch_size % n_dev == 0
  rng = jax.random.PRNGKey(rng_seed)
  if use_pmap:
    fn = parallel.pmapped_rollout(setup)
    models = [parallel.replicate(p) for p in (pair.slm_params, pair.llm_params, gate_params)]
  else:  # one jit; on a mesh, laid out by its arguments' shardings
    fn = lambda *args: rollout_lib.rollout(*args, setup=setup)
    models = ([mesh.replicate(pair.slm_params), mesh.shard_model(pair.llm_params),
               mesh.replicate(gate_params)] if mesh
              else [pair.slm_params, pair.llm_params, gate_params])
  parts, t0, last_print = [], time.time(), time.time()
  num_batches = -(-num_rows // batch_size)
  for i, (rows_B, num_real) in enumerate(_batches(num_rows, batch_size)):
    batch = {k: v[rows_B] for k, v in episodes.items()}
    if mesh:
      batch = mesh.shard_batch(batch)
    elif use_pmap:
      batch = parallel.shard(batch, n_dev)
    steps, final = fn(*models, batch, rng, policy_args)
    part = _per_problem(steps, final, setup.gate.actions, step_fields)
    parts.append({k: v[:num_real] for k, v in part.items()})
    if time.time() - last_print > progress_every_s and i + 1 < num_batches:
      last_print = time.time()
      eta = (last_print - t0) / (i + 1) * (num_batches - i - 1)
      print(f"    {name or policy.kind}: batch {i + 1}/{num_batches}, ETA {eta:.0f} s",
            flush=True)
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    # Every process holds an equal share (padded), so the gather stacks P x share in process
    # order: the rows in their global order, then the padding dropped.
    gathered = multihost_utils.process_allgather(out)
    out = {k: np.asarray(v).reshape((-1,) + v.shape[2:])[:total_rows]
           for k, v in gathered.items()}
  return out


def _process_rows(num_rows: int) -> np.ndarray:
  """This process's contiguous share of the rows, padded to ceil(N / P) by repeating the last
  row, so every process runs the same number of batches of the same shape (pmap spans every
  process's devices and needs them in step)."""
  share = -(-num_rows // jax.process_count())
  start = jax.process_index() * share
  return np.minimum(np.arange(start, start + share), num_rows - 1)
