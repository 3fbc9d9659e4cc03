"""The collaborative rollout in PyTorch/transformers, on the same weights: the peer baseline.

Both models are exported with collab.models.hf_io and loaded into transformers' Llama model. The
loop is generate-style, as peer code writes it (Co-LLM, RelayLLM): one forward call per token
with a DynamicCache, greedy decoding, a host loop over steps and tokens that exits when every row
has ended its step. The decisions are the same as the jitted rollout's (collab.rollout): the gate
is the same MLP on the same features (its weights copied to torch), baselines decide on the host.

How it differs from the JAX implementations, as transformers code naturally would:
  - padding is an attention mask: right-padded prompts, rows that ended their step feed a pad
    token that is masked out, and a routed row's draft stays in the SLM cache, masked out,
    before the LLM's step is appended (one chunked forward call over the batch);
  - each LLM call prefills the asking rows' contexts afresh (as `generate` on those rows
    would), then decodes the step; only the asking rows run.
"""
from __future__ import annotations

import os
import tempfile

import jax
import numpy as np

from benchmarks import python_loop
from collab import rollout as rollout_lib
from collab.models import hf_io

try:  # optional: the `parity` extra
  import torch
  import transformers
  IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - depends on the environment
  torch = transformers = None
  IMPORT_ERROR = f"{type(e).__name__}: {e}"


def unavailable_reason(setup: rollout_lib.Setup, policy: rollout_lib.Policy) -> str | None:
  """Why the torch baseline cannot run here (None when it can)."""
  if IMPORT_ERROR:
    return f"torch/transformers not importable ({IMPORT_ERROR}); install the 'parity' extra"
  for name, cfg in (("SLM", setup.slm), ("LLM", setup.llm)):
    if cfg.arch != "llama":
      return f"the {name} is arch={cfg.arch!r}; only llama-arch models load into transformers"
  if setup.rollout.slm_temperature or setup.rollout.llm_temperature:
    return "the torch baseline decodes greedily"
  if policy.kind == "gate" and not policy.greedy:
    return "the torch baseline takes greedy gate decisions"
  return None


def device() -> str:
  """Where torch runs: the GPU when this torch build sees one, else the CPU."""
  return "cuda" if torch.cuda.is_available() else "cpu"


def to_torch_model(params, cfg):
  """transformers' LlamaForCausalLM holding `params` (written with hf_io.save_hf, then read)."""
  with tempfile.TemporaryDirectory() as d:
    hf_io.save_hf(d, jax.device_get(params), cfg)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
  return model.eval().to(device())


def _t(x, dtype=None):
  """A numpy array on torch's device."""
  return torch.as_tensor(np.array(x), dtype=dtype, device=device())  # a writable copy


class TorchGate:
  """collab.gating.GateHead in torch, with the Flax gate's weights."""

  def __init__(self, gate_params, gate_cfg):
    t = lambda x: _t(np.asarray(x, np.float32))
    if gate_cfg.price_input:
      raise NotImplementedError("the torch baseline has no price-conditioned gate")
    self.cfg = gate_cfg
    self.w = {k: {n: t(v) for n, v in layer.items()} for k, layer in gate_params.items()}

  def __call__(self, hidden_BxD, scalars_BxF):
    parts = [scalars_BxF if self.cfg.use_draft else scalars_BxF[:, 2:]]
    if self.cfg.use_hidden:
      norm = self.w["hidden_norm"]
      parts.append(torch.nn.functional.layer_norm(
          hidden_BxD, hidden_BxD.shape[-1:], norm["scale"], norm["bias"], eps=1e-6))
    x = torch.cat(parts, dim=-1)
    gelu = lambda y: torch.nn.functional.gelu(y, approximate="tanh")  # flax's nn.gelu
    x = gelu(x @ self.w["in"]["kernel"] + self.w["in"]["bias"])
    x = gelu(x @ self.w["mid"]["kernel"] + self.w["mid"]["bias"])
    return x @ self.w["out"]["kernel"] + self.w["out"]["bias"]


def _scalar_features(draft_logp_BxK, draft_len_B, step, num_steps, calls_B, budget):
  """collab.gating.scalar_features, in torch."""
  K = draft_logp_BxK.shape[1]
  length_B = _t(draft_len_B)
  drafted_BxK = _t(np.arange(K))[None, :] < length_B[:, None]
  mean_B = draft_logp_BxK.sum(-1) / length_B.clamp(min=1)
  min_B = torch.where(drafted_BxK, draft_logp_BxK, 0.0).min(-1).values
  surprise = lambda lp: torch.log(torch.clamp(-lp, 1e-6, 10.0)) / 5.0
  calls = _t(calls_B).float()
  step_B = torch.full_like(calls, step / num_steps)
  return torch.stack([surprise(mean_B), surprise(min_B), step_B, calls / max(budget, 1),
                      (calls < budget).float()], dim=-1)


class _Stream:
  """A batch-wide DynamicCache with its attention mask and each row's next position."""

  def __init__(self, model, tokens_BxT, len_B):
    B, T = tokens_BxT.shape
    self.model = model
    self.cache = transformers.DynamicCache()
    self.mask_BxT = _t(np.zeros((B, 0), np.int64))
    self.pos_B = _t(np.zeros(B, np.int64))
    keep_BxT = np.arange(T)[None, :] < len_B[:, None]
    self.logits_BxV, self.hidden_BxD = self.feed(_t(tokens_BxT), _t(keep_BxT),
                                                 _t(len_B.astype(np.int64) - 1))

  def feed(self, tokens_BxT, keep_BxT, return_at_B):
    """Appends a chunk (tokens where keep, masked pads elsewhere); returns logits and final
    hidden state at column return_at_B of the chunk."""
    T = tokens_BxT.shape[1]
    positions_BxT = self.pos_B[:, None] + torch.cumsum(keep_BxT.long(), 1) - keep_BxT.long()
    self.mask_BxT = torch.cat([self.mask_BxT, keep_BxT.long()], dim=1)
    out = self.model.model(input_ids=tokens_BxT.long(), attention_mask=self.mask_BxT,
                           position_ids=positions_BxT, past_key_values=self.cache,
                           use_cache=True)
    self.cache = out.past_key_values
    self.pos_B = self.pos_B + keep_BxT.long().sum(1)
    rows = torch.arange(tokens_BxT.shape[0], device=tokens_BxT.device)
    hidden_BxD = out.last_hidden_state[rows, return_at_B.clamp(0, T - 1)]
    return self.model.lm_head(hidden_BxD).float(), hidden_BxD


def _decode(stream: _Stream, active_B: np.ndarray, K: int, ends, pad: int):
  """Greedy step per active row (one forward call per token); returns tokens, lengths and
  token log-probs, and leaves the stream's logits/hidden after each row's last token."""
  B = len(active_B)
  out = np.full((B, K), pad, np.int32)
  logp = _t(np.zeros((B, K), np.float32))
  length = np.zeros(B, np.int32)
  running = active_B.copy()
  for t in range(K):
    if not running.any():
      break
    run_B = _t(running)
    tok_B = stream.logits_BxV.argmax(-1)
    lp_B = torch.log_softmax(stream.logits_BxV, -1).gather(1, tok_B[:, None])[:, 0]
    tok_B = torch.where(run_B, tok_B, pad)
    logits_BxV, hidden_BxD = stream.feed(tok_B[:, None], run_B[:, None], 0 * tok_B)
    stream.logits_BxV = torch.where(run_B[:, None], logits_BxV, stream.logits_BxV)
    stream.hidden_BxD = torch.where(run_B[:, None], hidden_BxD, stream.hidden_BxD)
    tok = tok_B.cpu().numpy().astype(np.int32)  # the host's stop check: a sync per token
    out[:, t] = tok
    logp[:, t] = torch.where(run_B, lp_B, 0.0)
    length += running
    running &= ~np.isin(tok, ends)
  return out, length, logp


@torch.no_grad() if torch is not None else (lambda f: f)
def torch_rollout(slm_model, llm_model, gate: TorchGate, batch, rng, policy_value=0.0, *,
                  setup: rollout_lib.Setup, policy: rollout_lib.Policy) -> dict:
  """Runs the batch to the end; returns numpy arrays named like `rollout.Final`'s fields."""
  cfg, sp = setup.rollout, setup.specials
  ep = python_loop.HostEpisodes(setup, batch)
  B, S, K = ep.B, ep.S, ep.K
  # Aliases of the episodes' arrays, which it updates in place.
  ctx, ctx_len, red, red_len, done = ep.ctx, ep.ctx_len, ep.red, ep.red_len, ep.done
  calls, llm_tokens, redacted_A, ends = ep.calls, ep.llm_tokens, ep.redacted_A, ep.ends
  prompt_BxP = ctx[:, :ep.P].copy()

  slm = _Stream(slm_model, prompt_BxP, ctx_len)
  for s in range(S):
    rng, _, gate_rng, _ = jax.random.split(rng, 4)
    active = ~done
    gate_hidden = slm.hidden_BxD
    draft_from = slm.mask_BxT.shape[1]
    draft, draft_len, draft_logp = _decode(slm, active, K, ends, sp.pad)
    draft_to = slm.mask_BxT.shape[1]
    action = python_loop.decide(
        setup, policy, s, active, calls, draft, draft_logp.cpu().numpy(), draft_len, batch,
        policy_value, gate_rng, lambda: gate(gate_hidden, _scalar_features(
            draft_logp, draft_len, s, S, calls, cfg.budget)).cpu().numpy())
    _, routed, idx = ep.route(action)
    step = draft.copy()
    step_len = np.where(active, draft_len, 0)
    if idx.size:
      # The LLM: prefill the asking rows' contexts, decode their step.
      red_n = redacted_A[action[idx]]
      src_len = np.where(red_n, red_len[idx], ctx_len[idx])
      src = np.where(red_n[:, None], red[idx], ctx[idx])[:, :src_len.max()]
      llm = _Stream(llm_model, src, src_len)
      out, out_len, _ = _decode(llm, np.ones(idx.size, bool), K, ends, sp.pad)
      step[idx], step_len[idx] = out, out_len
      llm_tokens[idx] += out_len
      calls[idx] += 1
      # The SLM: mask out the routed rows' drafts, read the LLM's steps in one chunk.
      rows = _t(idx)
      slm.mask_BxT[rows[:, None], _t(np.arange(draft_from, draft_to))[None, :]] = 0
      slm.pos_B[rows] = _t(ctx_len[idx].astype(np.int64))
      width = int(out_len.max())
      chunk = np.full((B, width), sp.pad, np.int32)
      chunk[idx] = out[:, :width]
      keep = np.zeros((B, width), bool)
      keep[idx] = np.arange(width) < out_len[:, None]
      last = np.zeros(B, np.int64)
      last[idx] = out_len - 1
      logits, hidden = slm.feed(_t(chunk), _t(keep), _t(last))
      sel = _t(routed)[:, None]
      slm.logits_BxV = torch.where(sel, logits, slm.logits_BxV)
      slm.hidden_BxD = torch.where(sel, hidden, slm.hidden_BxD)
    ep.append(step, step_len, routed)
  return ep.result()


def set_threads(n: int):
  """torch's intra-op threads on the CPU (n <= 0: all host cores)."""
  if torch is not None:
    torch.set_num_threads(n if n > 0 else (os.cpu_count() or 1))
