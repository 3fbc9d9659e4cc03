"""The supervised router (the approach of CITER, R2R and Co-LLM): the gate's own head and
features, trained with cross-entropy to predict that the SLM's draft of a line differs from the
reference line, then operated at a sweep of cut-offs on its predicted probability
(`Policy(kind="router")`): fixed ones, and the ones at which it would ask at given shares of
its training decisions (quantiles of its own scores: where the SLM is wrong on nearly every
line, every fixed cut-off asks nearly everywhere).

Its params have the gate's structure (`pair.init_gate`), so the router runs through the gate's
compiled rollout with its params in the gate's place, and an RL gate can start from them
(configs/gate.py `init=router`). Only the logit margin ask - self is trained: P(draft differs) =
sigmoid(logit_ask - logit_self).

Features and labels come from rollouts of training problems (never the test split): with
`collect='oracle'` the LLM writes every line the SLM would get wrong, so each draft is judged in
a correct context, as a router meets it when it asks well (teacher forcing); with 'slm_alone'
the SLM writes everything, and after its first mistake later drafts are judged against a
reference it has left.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from collab import gating
from collab import pair as pair_lib
from collab import policy_runs
from collab import rollout as rollout_lib

COLLECT = {"oracle": rollout_lib.Policy(kind="oracle"),
           "slm_alone": rollout_lib.Policy(kind="self")}


def collect(pair: pair_lib.Pair, setup: rollout_lib.Setup, params, episodes, *,
            collect_with: str, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Every valid decision's features and label: hidden_NxD, scalars_NxF, label_N (the draft
  differs from the reference step)."""
  if collect_with not in COLLECT:
    raise ValueError(f"router collect={collect_with!r}; valid: {tuple(COLLECT)}")
  per = policy_runs.run_policy(pair, setup, params, episodes, COLLECT[collect_with],
                               batch_size=batch_size, rng_seed=seed, name="router features",
                               step_fields=("hidden", "scalars", "draft_differs", "valid"))
  valid_BxS = per["step_valid"].astype(bool)
  return {"hidden_NxD": per["step_hidden"][valid_BxS].astype(np.float32),
          "scalars_NxF": per["step_scalars"][valid_BxS].astype(np.float32),
          "label_N": per["step_draft_differs"][valid_BxS].astype(np.float32)}


def margin(params, gate_cfg: gating.GateConfig, hidden_NxD, scalars_NxF, ask: str = "ask"):
  """The router's logit of P(draft differs): logit_ask - logit_self."""
  logits_NxA = gating.gate_logits(params, gate_cfg, hidden_NxD, scalars_NxF)
  return logits_NxA[:, gate_cfg.actions.index(ask)] - logits_NxA[:, 0]


def bce(params, gate_cfg, data) -> jax.Array:
  z_N = margin(params, gate_cfg, data["hidden_NxD"], data["scalars_NxF"])
  return optax.sigmoid_binary_cross_entropy(z_N, data["label_N"]).mean()


def cutoffs(params, gate_cfg: gating.GateConfig, data: dict[str, np.ndarray],
            shares) -> list[dict[str, float]]:
  """For each share s, the probability cut-off above which the router asks at a share s of
  `data`'s decisions (its scores' 1 - s quantile), as [{'share': s, 'p': p}]."""
  z_N = np.asarray(margin(params, gate_cfg, data["hidden_NxD"], data["scalars_NxF"]))
  out = []
  for share in shares:
    z = float(np.quantile(z_N, 1.0 - float(share)))
    p = float(np.clip(1.0 / (1.0 + np.exp(-z)), 1e-6, 1 - 1e-6))
    out.append({"share": float(share), "p": p})
  return out


def train(params, gate_cfg: gating.GateConfig, data: dict[str, np.ndarray], *, steps: int,
          lr: float, batch: int = 512, seed: int = 0, holdout: float = 0.2,
          eval_every: int = 10) -> tuple[Any, dict[str, Any]]:
  """Adam on the cross-entropy, minibatches of `batch` decisions. A `holdout` share of the
  decisions is kept out, scored every `eval_every` steps, and the params that score best on it
  are kept (early stopping: the head reads the SLM's whole hidden state and overfits a few
  hundred problems). Returns (params, info: losses, the step kept, label rate)."""
  n = len(data["label_N"])
  if n < 2:
    raise ValueError(f"The router needs at least 2 decisions to train on, got {n}")
  rng = np.random.default_rng(seed)
  order = rng.permutation(n)
  n_held = int(round(holdout * n)) if n >= 10 else 0
  held = {k: v[order[:n_held]] for k, v in data.items()}
  fit = {k: v[order[n_held:]] for k, v in data.items()}
  tx = optax.adam(lr)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, mb):
    loss, grads = jax.value_and_grad(bce)(params, gate_cfg, mb)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  m = len(fit["label_N"])
  batch = min(batch, m)
  held_loss = jax.jit(lambda p: bce(p, gate_cfg, held)) if n_held else None
  first = float(bce(params, gate_cfg, fit))
  best = (float(held_loss(params)), 0, params) if n_held else None
  held_first = best[0] if n_held else None
  for i in range(1, steps + 1):
    rows = rng.choice(m, size=batch, replace=False)
    params, opt_state, _ = step(params, opt_state, {k: v[rows] for k, v in fit.items()})
    if n_held and (i % eval_every == 0 or i == steps):
      loss = float(held_loss(params))
      if loss < best[0]:
        best = (loss, i, params)
  kept = steps
  if n_held:
    _, kept, params = best
  info = {"decisions": n, "held_out": n_held, "label_rate": float(data["label_N"].mean()),
          "steps": steps, "step_kept": kept, "train_loss_start": first,
          "train_loss_end": float(bce(params, gate_cfg, fit)),
          "held_out_loss_start": held_first,
          "held_out_loss_end": float(held_loss(params)) if n_held else None}
  return params, info


def fit(config: ml_collections.ConfigDict, pair: pair_lib.Pair, setup: rollout_lib.Setup
        ) -> tuple[Any, dict[str, Any]]:
  """The router of config.eval.router: features from rollouts of the first `problems` problems
  of the gate's training split (config.rl.split), then `steps` Adam steps. Starts from the
  gate's initialisation for this seed. Returns (params, info)."""
  rcfg = config.eval.router
  records = pair_lib.load_records(config, pair, config.rl.split, int(rcfg.problems))
  episodes = pair_lib.make_episodes(config, pair, records)
  params = jax.tree.map(jnp.asarray, pair_lib.init_gate(config, pair))
  print(f"  router: collecting features on {len(records)} {config.rl.split} problems "
        f"({rcfg.collect})", flush=True)
  data = collect(pair, setup, params, episodes, collect_with=rcfg.collect,
                 batch_size=config.eval.batch_size, seed=config.seed)
  params, info = train(params, setup.gate, data, steps=int(rcfg.steps), lr=float(rcfg.lr),
                       seed=config.seed)
  info.update(problems=len(records), split=config.rl.split, collect=rcfg.collect,
              cutoffs=cutoffs(params, setup.gate, data, rcfg.get("ask_shares", ())))
  held = ("" if info["held_out_loss_end"] is None else
          f", held out {info['held_out_loss_start']:.3f} -> {info['held_out_loss_end']:.3f}")
  print(f"  router: {info['decisions']} decisions, {100 * info['label_rate']:.1f}% drafts "
        f"wrong; loss {info['train_loss_start']:.3f} -> {info['train_loss_end']:.3f}{held} "
        f"(step {info['step_kept']} of {info['steps']} kept)", flush=True)
  return params, info
