"""The static side of the collaborative rollout: its config, the policy that decides, the
token ids it needs, and the records it returns (see collab/rollout.py)."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from collab import draft_kinds
from collab import errors
from collab import gating
from collab.data import task as task_lib
from collab.models.config import ModelConfig

REDACTED_KINDS = ("ask_redacted",)


class Specials(NamedTuple):
  """Token ids the rollout needs (from the tokenizer); hashable, so static under jit."""
  pad: int
  eos: int
  sep: int
  priv_open: int
  priv_close: int
  redacted: int
  # Imported pairs (collab/data/prompts.py), empty otherwise:
  stops: tuple[int, ...] = ()       # other ids that end a solution, as eos does
  line_ends: tuple[int, ...] = ()   # set: a line step ends at any of these (sep and the other
                                    # whitespace tokens with a newline), once it has content
  blanks: tuple[int, ...] = ()      # whitespace-only ids: not content (blank lines are skipped)

  @classmethod
  def from_tokenizer(cls, tok) -> Specials:
    return cls(tok.pad_id, tok.eos_id, tok.sep_id, tok.priv_open_id, tok.priv_close_id,
               tok.redacted_id)


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
  num_steps: int = 8            # S: decisions per episode
  step_tokens: int = 16         # K: most tokens one step may have
  granularity: str = "line"     # 'line': a step ends at <sep>; 'tokens': a step is K tokens
  budget: int = 8               # most LLM calls per episode (hard limit)
  llm_capacity: int = 0         # C: rows routed to the LLM per step and device; 0 = batch size
  llm_sizes: int = 4            # row counts an LLM call compiles for: C, C/2, ... (this many)
  kv_buckets: int = 4           # cache prefix lengths cached attention picks from (1: whole)
  slm_temperature: float = 0.0
  llm_temperature: float = 0.0

  def __post_init__(self):
    if self.granularity not in ("line", "tokens"):
      raise ValueError(f"granularity must be 'line' or 'tokens', got {self.granularity!r}")
    if self.num_steps < 1 or self.step_tokens < 1:
      raise ValueError("num_steps and step_tokens must be >= 1")
    if self.llm_sizes < 1:
      raise ValueError("llm_sizes must be >= 1")
    if self.kv_buckets < 1:
      raise ValueError("kv_buckets must be >= 1")


POLICY_KINDS = ("gate", "self", "always", "every_k", "fixed", "random", "threshold", "oracle",
                "line_kind", "router", "draft_kind")


@dataclasses.dataclass(frozen=True)
class Policy:
  """Who decides: the learned gate, or a baseline of the same rollout.

  kind: 'gate' (sample; greedy=True takes the argmax), 'self' (SLM alone), 'always' (ask at
  every step: with the full context this is the LLM alone), 'every_k' (ask when step % k ==
  k - 1), 'fixed' (ask at `steps`), 'random' (ask with probability `value`), 'threshold' (ask
  when the draft's min token log-prob < `value`, BiLD-style), 'oracle' (ask when the draft
  differs from the reference step: hindsight), 'line_kind' (ask when the line about to be
  written is of a kind in `line_kinds`, as planned from the question: the batch's kind_BxS),
  'router' (a supervised router: the gate head run with the router's params in place of the
  gate's, asking when sigmoid(ask logit - self logit) > `value`; collab/router.py),
  'draft_kind' (ask when the line the SLM has just drafted is of a kind in `line_kinds`, read
  from its tokens: the line-kind rule where kinds cannot be planned, collab/draft_kinds.py;
  needs Setup.draft_kinds).
  Baselines ask with request kind `ask_kind`.

  Two values per problem (`args(..., value2=, mix=)`): each row uses value2 with probability
  `mix` (one draw per row id, fixed over the episode) and `value` otherwise, so mixing two
  points of a sweep reaches every call rate between them (the sweep's convex hull).

  A policy is data, not part of the compiled program: `args` turns it into arrays that the
  rollout reads, so one compile of a rollout serves every policy and every value.
  """
  kind: str = "gate"
  greedy: bool = False
  ask_kind: str = "ask"
  k: int = 2
  steps: tuple[int, ...] = ()
  line_kinds: tuple[str, ...] = ()

  def __post_init__(self):
    if self.kind not in POLICY_KINDS:
      raise ValueError(f"Unknown policy {self.kind!r}; valid: {POLICY_KINDS}")
    if self.k < 1:
      raise ValueError(f"Policy k must be >= 1, got {self.k}")
    valid = draft_kinds.LINE_KINDS if self.kind == "draft_kind" else task_lib.STEP_KINDS
    unknown = set(self.line_kinds) - set(valid)
    if unknown:
      raise ValueError(f"Unknown line kinds {sorted(unknown)}; valid: {valid}")

  def args(self, num_steps: int, actions: tuple[str, ...], value: float = 0.0,
           value2: float | None = None, mix: float = 0.0) -> PolicyArgs:
    """The traced form of this policy for a rollout of `num_steps` decisions over `actions`;
    each row uses `value2` (default: `value`) with probability `mix`."""
    if self.ask_kind not in actions[1:]:
      raise ValueError(f"Policy ask_kind {self.ask_kind!r} is not a request kind of the gate "
                       f"{actions}")
    if not 0.0 <= mix <= 1.0:
      raise ValueError(f"Policy mix must be in [0, 1], got {mix}")
    fixed_S = np.zeros((num_steps,), bool)
    fixed_S[[s for s in self.steps if 0 <= s < num_steps]] = True
    kinds_K = np.array([k in self.line_kinds for k in draft_kinds.LINE_KINDS])
    return PolicyArgs(kind=np.int32(POLICY_KINDS.index(self.kind)),
                      greedy=np.bool_(self.greedy),
                      ask_action=np.int32(actions.index(self.ask_kind)),
                      k=np.int32(self.k), fixed_S=fixed_S, value=np.float32(value),
                      kinds_K=kinds_K, value2=np.float32(value if value2 is None else value2),
                      mix=np.float32(mix))


class PolicyArgs(NamedTuple):
  """A policy as traced data (see Policy.args): the rollout picks by `kind` with jnp.select,
  so every baseline and the gate share one compiled program."""
  kind: jax.Array        # index into POLICY_KINDS
  greedy: jax.Array      # the gate takes its argmax instead of sampling
  ask_action: jax.Array  # request kind a baseline asks with
  k: jax.Array           # every_k's period
  fixed_S: jax.Array     # fixed: the decision steps to ask at
  value: jax.Array       # random: ask probability; threshold: min log-prob cut-off;
                         # router: probability cut-off
  kinds_K: jax.Array     # line_kind, draft_kind: the kinds (draft_kinds.LINE_KINDS) to ask at
  value2: jax.Array      # the other value, used by a row with probability `mix`
  mix: jax.Array


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything static about a rollout (hashable: one compile per Setup and batch shape; the
  policy is traced data, see Policy)."""
  slm: ModelConfig
  llm: ModelConfig
  gate: gating.GateConfig
  rollout: RolloutConfig
  specials: Specials
  # None: a solution is correct when its last line equals the reference line (in the graph).
  # Else a hashable host callable (tokens_BxL, length_B, prompt_len_B, answer_BxA) -> bool_B,
  # run through jax.pure_callback at the rollout's end (collab/data/prompts.NumberScorer).
  scorer: object = None
  # None: SLM and LLM share a tokenizer and exchange ids. Else a collab.handoff.Handoff: the
  # LLM reads and writes its own ids, text crossing at step boundaries (collab/mixed_calls.py).
  handoff: object = None
  # None: no draft_kind policy. Else a collab.draft_kinds.TokenTable of the SLM's tokenizer,
  # from which the rollout reads each drafted line's kind.
  draft_kinds: object = None

  def __post_init__(self):
    if self.handoff is not None and self.rollout.granularity != "line":
      raise errors.ConfigError(
          "rollout.granularity='tokens' needs one tokenizer: pairs with different tokenizers "
          "exchange whole lines (granularity='line'); see collab/handoff.py")
    if self.handoff is not None and self.handoff.step_tokens != self.rollout.step_tokens:
      raise ValueError(f"The handoff was built for {self.handoff.step_tokens}-token steps, the "
                       f"rollout has {self.rollout.step_tokens}")


class Step(NamedTuple):
  """Per-decision records, stacked by the scan into SxB (SxBxD for features)."""
  action: jax.Array          # request kind the policy chose
  logp: jax.Array            # its log-prob under the gate (0 for baselines)
  valid: jax.Array           # the row was still running, so this decision counted
  hidden: jax.Array          # gate features: SLM hidden state (BxD)
  scalars: jax.Array         # gate features: scalar features (BxF)
  mask: jax.Array            # allowed request kinds (BxA)
  routed: jax.Array          # the LLM wrote this step
  overflow: jax.Array        # asked, but over capacity: the SLM's draft was kept
  llm_tokens: jax.Array      # tokens the LLM generated
  context_tokens: jax.Array  # tokens sent to the LLM
  exposed: jax.Array         # private tokens among them
  draft_min_logp: jax.Array
  draft_len: jax.Array       # tokens the SLM drafted (its step's length, had it written it)
  draft_differs: jax.Array   # the draft differs from the reference step (hindsight: the
                             # oracle's signal and the supervised router's label)


class Final(NamedTuple):
  tokens_BxL: jax.Array      # prompt + written steps
  length_B: jax.Array
  writer_BxL: jax.Array      # 0 prompt, 1 SLM, 2 LLM
  correct_B: jax.Array       # final answer line equals the reference line
  calls_B: jax.Array
  llm_tokens_B: jax.Array
  context_tokens_B: jax.Array
  exposed_B: jax.Array
  overflow_B: jax.Array
  done_B: jax.Array


def step_end_ids(cfg: RolloutConfig, sp: Specials) -> tuple[int, ...]:
  """Tokens that end a step: <eos> (and `stops`), and <sep> for line steps."""
  ends = (sp.eos,) + tuple(sp.stops)
  return ends + (sp.sep,) if cfg.granularity == "line" and not sp.line_ends else ends


def step_ends(cfg: RolloutConfig, sp: Specials) -> dict:
  """decode.decode_step's arguments for where a step ends: end_ids always end it; with
  Specials.line_ends set (line steps), a line end ends it only once it holds a token that is
  not in `blanks`, so blank lines cost no decision."""
  out = dict(end_ids=step_end_ids(cfg, sp))
  if cfg.granularity == "line" and sp.line_ends:
    out.update(line_end_ids=tuple(sp.line_ends), blank_ids=tuple(sp.blanks))
  return out


def solution_end_ids(sp: Specials) -> tuple[int, ...]:
  return (sp.eos,) + tuple(sp.stops)
