"""The one builder: a gate config -> the SLM x LLM pair, its rollout setup, and its episodes.

Training (collab/train/gate.py), evaluation (collab/evaluate.py), checkpoint selection and
price calibration, export and the studies all build what they run from here, so a config
means the same models, tokenizer, problems and rollout everywhere.

  pair = load_pair(config)                       # frozen SLM and LLM, one or two tokenizers
  setup = make_setup(config, pair)               # static: model configs, gate, rollout
  episodes = make_episodes(config, pair, load_records(config, pair, split, n))

A pair is either two presets pretrained here (config.slm / config.llm under
config.pretrain_dir, see collab/train/pretrain.py) or two Hugging Face checkpoints
(config.slm_hf_dir / config.llm_hf_dir, collab/hf_pair.py). Two models with different
tokenizers (imported checkpoints, or presets whose recipes chose different tokenizers, e.g.
slm_s x gpt2_uni) make a mixed pair: each side's prompts are written with its own tokenizer
and prompt style (config.llm_prompt over config.prompt for the LLM), and the rollout carries a
handoff that moves text between them at step boundaries (collab/handoff.py; config.handoff:
strict, stream_margin, llm_step_tokens). `tokens` granularity is refused for such a pair. The
task's data and the episodes are in the SLM's ids: config.vocab_size and config.tokenizer_type
name the SLM's tokenizer (configs/gate.py takes them from the SLM's recipe).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from collab import checkpoint as ckpt_lib
from collab import config_args
from collab import draft_kinds
from collab import errors
from collab import gating
from collab import handoff as handoff_lib
from collab import hf_pair
from collab import rl
from collab import rollout as rollout_lib
from collab.data import assets as assets_lib
from collab.data import episodes as episodes_lib
from collab.data import prompts as prompts_lib
from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.models import config as model_config


@dataclasses.dataclass(frozen=True)
class Pair:
  """A frozen SLM and LLM: sharing a tokenizer, or each with its own (llm_tokenizer set)."""
  slm_params: Any
  llm_params: Any
  slm_cfg: Any
  llm_cfg: Any
  tokenizer: tokenizer_lib.Tokenizer
  # Imported pairs: how the embeddings were fitted to the tokenizer (rows added or cropped,
  # hf_pair.load_models); None for pairs pretrained here.
  vocab: dict[str, Any] | None = None
  # Two tokenizers: the LLM's (None: it shares `tokenizer`), and its tokens per SLM token on
  # sample solution lines (the LLM's step length, collab/handoff.py).
  llm_tokenizer: tokenizer_lib.TokenizerBase | None = None
  llm_step_ratio: float = 1.0


def task_config(config: ml_collections.ConfigDict) -> task_lib.TaskConfig:
  return config_args.to_dataclass(task_lib.TaskConfig, config.task, "config.task")


def model_dir(config: ml_collections.ConfigDict, preset: str) -> str:
  """Where a preset's pretraining run lives (its params export is `model/` inside)."""
  return os.path.join(config.pretrain_dir, preset)


def load_model(workdir: str):
  """(params, ModelConfig, Tokenizer) of a pretraining run's export, tokenizer checked."""
  path = os.path.join(workdir, "model")
  params, metadata = ckpt_lib.load_params(path)
  tok = tokenizer_lib.Tokenizer.load(os.path.join(path, "tokenizer.model"))
  tokenizer_lib.check_fingerprint(metadata["tokenizer_fingerprint"], tok, where=path)
  cfg = model_config.ModelConfig(**metadata["model_config"])
  return params, cfg, tok


def load_pair(config: ml_collections.ConfigDict) -> Pair:
  """The pair a gate config names (its presets must be pretrained already)."""
  if hf_pair.uses_hf_models(config):  # Hugging Face checkpoints or GGUF files (configs/pairs/)
    slm_params, llm_params, slm_cfg, llm_cfg, tok, llm_tok, vocab = hf_pair.load_models(config)
    # Chat prompts: the tokenizer's eos becomes the template's turn end (prompts.py).
    tok = prompts_lib.task_tokenizer(tok, prompt_config(config).resolve(tok))
    if llm_tok is None:
      return Pair(slm_params, llm_params, slm_cfg, llm_cfg, tok, vocab)
    llm_tok = prompts_lib.task_tokenizer(llm_tok, llm_prompt_config(config).resolve(llm_tok))
    return Pair(slm_params, llm_params, slm_cfg, llm_cfg, tok, vocab, llm_tok,
                _step_ratio(config, tok, llm_tok))
  slm_params, slm_cfg, slm_tok = load_model(model_dir(config, config.slm))
  llm_params, llm_cfg, llm_tok = load_model(model_dir(config, config.llm))
  if slm_tok.fingerprint == llm_tok.fingerprint:
    return Pair(slm_params, llm_params, slm_cfg, llm_cfg, slm_tok)
  # Recipes with different tokenizers (e.g. gpt2_uni's unigram): each model keeps its own
  # vocabulary, text crosses at step boundaries, as in an imported pair.
  return Pair(slm_params, llm_params, slm_cfg, llm_cfg, slm_tok, None, llm_tok,
              _step_ratio(config, slm_tok, llm_tok))


def with_llm(config: ml_collections.ConfigDict, llm: str) -> ml_collections.ConfigDict:
  """A copy of a gate config whose pair has another LLM (the same SLM, task and gate)."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.llm = llm
  return config


def resolve_assets_dir(config: ml_collections.ConfigDict, workdir: str
                       ) -> ml_collections.ConfigDict:
  """config, or a copy whose empty assets_dir is `workdir/assets` (imported pairs' default:
  configs/pairs/ leave it empty, so prepared data lands under the run's own directory)."""
  if config.get("assets_dir"):
    return config
  config = config.copy_and_resolve_references()
  config.assets_dir = os.path.join(os.path.abspath(workdir), "assets")
  return config


def load_records(config: ml_collections.ConfigDict, pair: Pair, split: str,
                 limit: int | None) -> list[dict[str, Any]]:
  """Problems of `split`: GSM8K-style JSONL from config.data_dir when set, else the generated
  task (whose tokenizer must be the pair's)."""
  if not config.get("assets_dir"):
    raise errors.ConfigError("config.assets_dir is empty: it defaults to WORKDIR/assets, set "
                             "by gate training and experiments.evaluate "
                             "(pair.resolve_assets_dir); set it when calling the library")
  if config.get("data_dir"):
    return hf_pair.gsm8k_records(config, split, limit)
  if hf_pair.uses_hf_models(config):
    raise errors.ConfigError("Imported models need data_dir (GSM8K-style JSONL): the "
                             "generated task comes with its own tokenizer")
  assets = assets_lib.prepare_assets(task_config(config), config.assets_dir,
                                     config.vocab_size, tokenizer_type(config))
  if assets.tokenizer.fingerprint != pair.tokenizer.fingerprint:
    raise tokenizer_lib.TokenizerMismatchError(
        f"The SLM {config.get('slm')}'s tokenizer ({pair.tokenizer.fingerprint[:12]}) is not "
        f"the task's tokenizer the config names ({assets.tokenizer_path}, "
        f"{assets.tokenizer.fingerprint[:12]}): config.vocab_size={config.vocab_size} and "
        f"config.tokenizer_type={tokenizer_type(config)!r} must be the SLM's recipe's "
        "(configs/gate.py sets them from it), since problems and prompts are in its ids.")
  return assets_lib.load_records(assets, split, limit)


def tokenizer_type(config: ml_collections.ConfigDict) -> str:
  """The SentencePiece algorithm of a config's task tokenizer (absent: the default)."""
  return config.get("tokenizer_type", tokenizer_lib.DEFAULT_TYPE)


def sample_lines(config: ml_collections.ConfigDict, limit: int = 64) -> list[str]:
  """Question and solution lines of the first `limit` training problems: of data_dir's JSONL
  when set, else of the generated task (a split of n problems is a prefix of any larger one)."""
  if config.get("data_dir") or hf_pair.uses_hf_models(config):
    return hf_pair.sample_lines(config, limit)
  cfg = dataclasses.replace(task_config(config), num_train=limit)
  return [line for p in task_lib.generate_split(cfg, "train") for line in p.text().split("\n")]


def prompt_config(config: ml_collections.ConfigDict) -> prompts_lib.PromptConfig:
  """config.prompt (collab/data/prompts.py); absent: the generated task's plain prompts."""
  if not config.get("prompt"):
    return prompts_lib.PromptConfig()
  return config_args.to_dataclass(prompts_lib.PromptConfig, config.prompt, "config.prompt")


def llm_prompt_config(config: ml_collections.ConfigDict) -> prompts_lib.PromptConfig:
  """The LLM's prompts in a pair with two tokenizers: config.prompt, with the fields of
  config.llm_prompt over it (e.g. worked examples for a base model that has no template)."""
  base = prompt_config(config)
  over = config.get("llm_prompt")
  if not over:
    return base
  return config_args.to_dataclass(prompts_lib.PromptConfig,
                                  dict(dataclasses.asdict(base), **dict(over)),
                                  "config.llm_prompt")


HANDOFF_DEFAULTS = dict(strict=True, stream_margin=1.0, llm_step_tokens=0)


def handoff_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """config.handoff over HANDOFF_DEFAULTS (collab/handoff.make_handoff's arguments)."""
  out = dict(HANDOFF_DEFAULTS, **dict(config.get("handoff") or {}))
  unknown = sorted(set(out) - set(HANDOFF_DEFAULTS))
  if unknown:
    raise errors.ConfigError(f"Unknown key(s) {unknown} in config.handoff; valid: "
                             f"{sorted(HANDOFF_DEFAULTS)}")
  return out


def _step_ratio(config: ml_collections.ConfigDict, tok, llm_tok) -> float:
  """Checks that a pair with two tokenizers can run (line steps; each tokenizer writes the
  other's pieces, unless config.handoff.strict is False) and returns the LLM's tokens per SLM
  token on the first training problems' lines (sample_lines)."""
  handoff_lib.check_granularity(config.rollout.granularity)
  if handoff_settings(config)["strict"]:
    try:
      handoff_lib.check_expressible(tok, llm_tok)
    except tokenizer_lib.TokenizerMismatchError as e:
      raise tokenizer_lib.TokenizerMismatchError(
          f"{e} In a pair config: config.handoff = dict(strict=False), as "
          "configs/pairs/smollm2_gemma3.py sets.") from None
  return handoff_lib.step_ratio(tok, llm_tok, sample_lines(config))


def make_handoff(config: ml_collections.ConfigDict, pair: Pair) -> handoff_lib.Handoff | None:
  """The rollout's handoff of a pair with two tokenizers (None for one tokenizer). The
  pair's checks ran when it was loaded (load_pair), so none runs again here."""
  if pair.llm_tokenizer is None:
    return None
  settings, K = handoff_settings(config), config.rollout.step_tokens
  llm_tok = pair.llm_tokenizer
  line_ends, blanks = (prompts_lib.line_tokens(llm_tok)
                       if llm_prompt_config(config).steps == "nonempty_lines" else ((), ()))
  return handoff_lib.make_handoff(
      pair.tokenizer, llm_tok, step_tokens=K, num_steps=config.rollout.num_steps,
      granularity=config.rollout.granularity,
      llm_step_tokens=settings["llm_step_tokens"] or math.ceil(K * pair.llm_step_ratio),
      stream_margin=settings["stream_margin"], strict=False, llm_line_ends=line_ends,
      llm_blanks=blanks)


def make_setup(config: ml_collections.ConfigDict, pair: Pair) -> rollout_lib.Setup:
  tok = pair.tokenizer
  specials = rollout_lib.Specials.from_tokenizer(tok)
  pcfg = prompt_config(config)
  scorer = None
  if not pcfg.is_default:
    pcfg = pcfg.resolve(tok)
    line_ends, blanks = (prompts_lib.line_tokens(tok) if pcfg.steps == "nonempty_lines"
                         else ((), ()))
    specials = specials._replace(stops=tuple(getattr(tok, "stop_ids", ())),
                                 line_ends=line_ends, blanks=blanks)
    scorer = prompts_lib.scorer(tok, pcfg)
    few_shot = prompts_lib.FEW_SHOT_QUESTION
    if (scorer is not None and pair.llm_tokenizer is not None and few_shot not in scorer.cut
        and llm_prompt_config(config).resolve(pair.llm_tokenizer).style == "few_shot"):
      # A few-shot LLM writes the next 'Question:' too: the solution ends before it.
      scorer = prompts_lib.NumberScorer(tok, scorer.cut + (few_shot,))
  gate = config_args.to_dataclass(gating.GateConfig, config.gate, "config.gate")
  if gate.feature_layers > pair.slm_cfg.num_layers + 1:
    raise errors.ConfigError(
        f"config.gate.feature_layers={gate.feature_layers}: the SLM {config.slm} has "
        f"{pair.slm_cfg.num_layers} layers, so at most {pair.slm_cfg.num_layers + 1} hidden "
        "states (the embeddings and each layer's output)")
  return rollout_lib.Setup(
      # The SLM's forward passes return the hidden states the gate reads.
      slm=dataclasses.replace(pair.slm_cfg, feature_layers=gate.feature_layers),
      llm=pair.llm_cfg, gate=gate,
      rollout=config_args.to_dataclass(rollout_lib.RolloutConfig, config.rollout,
                                       "config.rollout"),
      specials=specials, scorer=scorer, handoff=make_handoff(config, pair),
      draft_kinds=make_draft_kinds(config, pair))


def make_draft_kinds(config: ml_collections.ConfigDict, pair: Pair):
  """The SLM's token table for the draft_kind policy (collab/draft_kinds.py) on word problems
  pretrained here (JSONL, the task's line layout); None elsewhere: the generated task plans its
  kinds from the question, and imported models write free-form text."""
  if not config.get("data_dir") or hf_pair.uses_hf_models(config):
    return None
  return draft_kinds.token_table(pair.tokenizer)


def make_episodes(config: ml_collections.ConfigDict, pair: Pair, records
                  ) -> dict[str, np.ndarray]:
  pcfg = prompt_config(config)
  prompt_fn, answers = None, "line"
  if not pcfg.is_default:
    pcfg = pcfg.resolve(pair.tokenizer)
    # Worked examples: the first `shots` problems of the train split.
    shots = load_records(config, pair, "train", pcfg.shots) if pcfg.shots else []
    prompt_fn = functools.partial(prompts_lib.prompt_ids, pair.tokenizer, pcfg, shots=shots)
    answers = pcfg.scoring
  batch = episodes_lib.make_episodes(
      records, pair.tokenizer, prompt_len=config.prompt_len,
      num_steps=config.rollout.num_steps, step_tokens=config.rollout.step_tokens,
      granularity=config.rollout.granularity, prompt_fn=prompt_fn,
      answers="number" if answers == "number" else "line")
  if pair.llm_tokenizer is None:
    return batch
  # Two tokenizers: the LLM's own prompts, written from the questions with its tokenizer and
  # prompt style (its template; a base model's few-shot text, with its bos), not translated
  # from the SLM's, whose template the LLM was never trained on.
  llm_tok = pair.llm_tokenizer
  lpcfg = llm_prompt_config(config).resolve(llm_tok)
  shots = load_records(config, pair, "train", lpcfg.shots) if lpcfg.shots else []
  llm_fn = functools.partial(prompts_lib.prompt_ids, llm_tok, lpcfg, shots=shots)
  return handoff_lib.with_llm_prompts(
      batch, llm_tok.pad_id, [llm_fn(r["question"]) for r in records],
      [llm_fn(task_lib.redacted(r["question"])) for r in records],
      llm_prompt_len(config, pair))


def llm_prompt_len(config: ml_collections.ConfigDict, pair: Pair) -> int:
  """The width of a mixed pair's LLM prompts: config.llm_prompt_len; unset, prompt_len, which
  for presets grows by the LLM's tokens per SLM token (rounded up to 8) so that an LLM whose
  tokenizer writes the questions in more tokens (gpt2_uni) reads them whole."""
  if config.get("llm_prompt_len"):
    return int(config.llm_prompt_len)
  if hf_pair.uses_hf_models(config):
    return config.prompt_len
  return max(config.prompt_len, 8 * math.ceil(config.prompt_len * pair.llm_step_ratio / 8))


def eval_episodes(config: ml_collections.ConfigDict, pair: Pair) -> dict[str, np.ndarray]:
  """The episodes of config.eval: num_problems problems of eval.split, after its first
  eval.skip (a slice held apart from the problems results are reported on, for choices)."""
  skip = int(config.eval.get("skip", 0))
  records = load_records(config, pair, config.eval.split, skip + config.eval.num_problems)
  return make_episodes(config, pair, records[skip:])


def price_range(config: ml_collections.ConfigDict) -> tuple[float, float] | None:
  """(low, high) call prices of a price-conditioned gate's training, or None."""
  low, high = config.costs.get("per_call_range", (0.0, 0.0))
  return (float(low), float(high)) if high > 0 else None


def eval_prices(config: ml_collections.ConfigDict) -> tuple[float, ...]:
  return tuple(float(p) for p in config.eval.get("call_prices", ()))


def reward_config(config: ml_collections.ConfigDict) -> rl.RewardConfig:
  return rl.RewardConfig(cost_per_call=config.costs.per_call,
                         cost_per_llm_token=config.costs.per_llm_token,
                         cost_per_private_token=config.costs.per_private_token)


def init_gate(config: ml_collections.ConfigDict, pair: Pair):
  """The gate's initial params (seeded by config.seed): an untrained gate for the pair."""
  gate_cfg = config_args.to_dataclass(gating.GateConfig, config.gate, "config.gate")
  return gating.init_gate(gate_cfg, pair.slm_cfg.d_model, jax.random.PRNGKey(config.seed))


def load_gate(workdir: str, name: str = "gate"):
  """(params, metadata) of the gate a training run saved as workdir/<name>/ (gate/: the gate
  in use; gate_last/: the last step's, when training selected another checkpoint)."""
  return ckpt_lib.load_params(os.path.join(workdir, name))
