"""Pretraining recipes: what makes a model preset strong or weak.

On a 2-core CPU, strength comes mostly from fact coverage (how much of the world the model is
shown) and training compute, not from size (DESIGN.md, prototype table). A recipe ties a size
preset (collab/models/presets.py) to a fact coverage and a training budget.

Recipes for the harder worlds (docs/worlds.md): `llm_fallible` knows 70% of the facts, only
half of those slm_s knows, so an ask can hurt; `slm_arith` is slm_s's knowledge with far more
arithmetic practice, so that its errors are mostly knowledge errors.

Recipes with another tokenizer (docs/tokenizers.md): `gpt2_uni` (an LLM of the GPT-2 lineage,
as strong as llm_l with twice its steps) and `slm_s_uni` (slm_s) use a SentencePiece unigram
tokenizer trained on the same corpus, so a pair with a default-tokenizer model exchanges text at step boundaries
(collab/handoff.py). Unigram writes this task in 1.4x the tokens of the default BPE, so these
recipes get longer sequences and prompts (SEQ_LEN, PROMPT_LEN).
"""
from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np

from collab.data import task as task_lib
from collab.data import tokenizer as tokenizer_lib
from collab.data import word_problems

DEFAULT_VOCAB = 512
# Room for the longest generated problem (bos and eos included) and the longest question
# (bos and sep included) in each algorithm's tokens: BPE (512 ids) writes them in 97 and 21
# tokens, unigram (512 asked for, 179 pieces on this corpus) in 137 and 36.
SEQ_LEN = {"bpe": 104, "unigram": 144}
PROMPT_LEN = {"bpe": 32, "unigram": 40}
# A gate config's tokens per line step (line granularity) for an SLM of each tokenizer: the
# longest line with its <sep> is 17 BPE tokens (a few are cut at 16, as they always were) and
# 19 unigram tokens (a tenth of the lines, cut at 16: LLM alone fell from 74% to 60%).
STEP_TOKENS = {"bpe": 16, "unigram": 24}
# Word problems (collab/data/word_problems.py) are longer: problems beyond this are left out.
WORD_PROBLEM_SEQ_LEN = 320


@dataclasses.dataclass(frozen=True)
class Recipe:
  model: str              # size preset name in collab.models.presets
  fact_coverage: float    # share of the world's entities whose facts appear in training
  num_steps: int
  batch_size: int = 64
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  role: str = "slm"       # 'slm' | 'llm' | 'test'
  seed: int = 0           # init and data-order seed
  # Fact overlap (-1: off, the nested coverage ranking): the share of the facts that recipe
  # `overlap_with` knows which this model knows too (World.known_mask_overlapping).
  overlap: float = -1.0
  overlap_with: str = ""
  arith_weight: float = 1.0  # loss weight of arithmetic lines (pipeline.weight_arithmetic)
  # The tokenizer: ids asked for (0: DEFAULT_VOCAB) and SentencePiece algorithm
  # (tokenizer.TOKENIZER_TYPES), trained on the task's corpus (collab/data/assets.py).
  vocab_size: int = 0
  tokenizer_type: str = tokenizer_lib.DEFAULT_TYPE
  # The corpus: "" the generated task; "word_problems" GSM-Symbolic JSONL
  # (collab/data/word_problems.py), where fact_coverage is the share of training generators.
  data: str = ""


RECIPES: dict[str, Recipe] = {
    # Tests only: seconds to train, learns little.
    "test_tiny": Recipe("test_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test"),
    "gpt2_tiny": Recipe("gpt2_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test"),
    # Small language models: weak in facts, growing in coverage and compute.
    "slm_s": Recipe("slm_s", 0.4, 900, role="slm"),
    "slm_m": Recipe("slm_m", 0.55, 1200, role="slm"),
    "slm_l": Recipe("slm_l", 0.7, 1500, role="slm"),
    # Large language models: know the whole world, growing in training compute (and size for
    # llm_l). Three-digit subtraction with borrows is what extra compute buys: at 1400 steps
    # llm_s rarely gets it right, while a 3000-step schedule learns it.
    "llm_s": Recipe("llm_s", 1.0, 1400, batch_size=32, role="llm"),
    "llm_m": Recipe("llm_s", 1.0, 2200, batch_size=32, role="llm"),
    "llm_l": Recipe("llm_m", 1.0, 3000, batch_size=32, role="llm"),
    # Another lineage (GPT-2-style blocks, another data seed) for the transfer study.
    "gpt2_m": Recipe("gpt2_m", 1.0, 3000, batch_size=32, role="llm", seed=1),
    # A fallible LLM: llm_s's compute, 140 of the 200 facts, of which 40 of slm_s's 80 and 100
    # of the 120 slm_s lacks. Look-ups: both know 20%, only the LLM 50%, only the SLM 20%,
    # neither 10%.
    "llm_fallible": Recipe("llm_s", 0.7, 1400, batch_size=32, role="llm", overlap=0.5,
                           overlap_with="slm_s"),
    # An SLM sound at arithmetic: slm_s's size and facts, with llm_l's step count and the
    # arithmetic lines weighted 3x (three-digit subtraction with borrows needs ~3000 steps).
    "slm_arith": Recipe("slm_s", 0.4, 3000, role="slm", arith_weight=3.0),
    # Tests only: the same options on the tiny preset.
    "test_tiny_fallible": Recipe("gpt2_tiny", 0.7, 30, batch_size=16, warmup_steps=5,
                                 role="test", overlap=0.5, overlap_with="test_tiny"),
    "test_tiny_arith": Recipe("test_tiny", 0.5, 30, batch_size=16, warmup_steps=5,
                              role="test", arith_weight=3.0),
    # Another tokenizer: an LLM of another lineage and tokenizer, trained as llm_l is (the
    # transfer study's other-tokenizer target), and slm_s with that tokenizer.
    # GPT-2 blocks learn this task's arithmetic more slowly than Llama blocks: 92.0% of test
    # problems at llm_l's 3000 steps, 98.6% at 6000 (llm_l: 100%).
    "gpt2_uni": Recipe("gpt2_m", 1.0, 6000, batch_size=32, role="llm", seed=1,
                       tokenizer_type="unigram"),
    "slm_s_uni": Recipe("slm_s", 0.4, 900, role="slm", tokenizer_type="unigram"),
    "test_tiny_uni": Recipe("test_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test",
                            tokenizer_type="unigram"),
    "gpt2_tiny_uni": Recipe("gpt2_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test",
                            tokenizer_type="unigram"),
}
# The second task family, word problems (docs/word_problems.md): the SLM trains on half of
# the training generators with slm_s's size, the LLM on all of them with llm_s's size and more
# compute. Digits are single tokens (tokenizer.train_tokenizer splits them).
WORD_PROBLEM_VOCAB = 2048
RECIPES.update({
    "wp_slm": Recipe("slm_s", 0.5, 1500, role="slm", vocab_size=WORD_PROBLEM_VOCAB,
                     data="word_problems"),
    "wp_llm": Recipe("llm_s", 1.0, 3000, batch_size=32, role="llm",
                     vocab_size=WORD_PROBLEM_VOCAB, data="word_problems"),
    "wp_tiny": Recipe("test_tiny", 0.5, 30, batch_size=16, warmup_steps=5, role="test",
                      vocab_size=WORD_PROBLEM_VOCAB, data="word_problems"),
})
# Pretraining seeds of the headline pairs (init and data order; same facts, or training
# generators, and schedule): slm_s_p1, llm_s_p2, wp_slm_p1, ... A model's seed is as much a
# source of variance as the gate's.
PRETRAIN_SEEDS = (1, 2)
RECIPES.update({f"{name}_p{seed}": dataclasses.replace(RECIPES[name], seed=seed)
                for name in ("slm_s", "llm_s", "wp_slm", "wp_llm") for seed in PRETRAIN_SEEDS})


def get_recipe(name: str) -> Recipe:
  if name not in RECIPES:
    raise ValueError(f"Unknown pretraining preset {name!r}; valid: {sorted(RECIPES)}")
  return RECIPES[name]


def tokenizer_options(name: str) -> dict[str, object]:
  """The tokenizer keys of a recipe's configs: vocab_size, and tokenizer_type only when it
  is not the default (configs, and workdirs' config.json, of default-tokenizer recipes are
  what they were before the choice existed)."""
  recipe = get_recipe(name)
  out: dict[str, object] = {"vocab_size": recipe.vocab_size or DEFAULT_VOCAB}
  if tokenizer_lib.check_type(recipe.tokenizer_type) != tokenizer_lib.DEFAULT_TYPE:
    out["tokenizer_type"] = recipe.tokenizer_type
  return out


def known_mask(config: ml_collections.ConfigDict, world: task_lib.World) -> np.ndarray:
  """bool[E]: the facts a pretraining config trains on (its coverage, and its overlap with
  the reference coverage when `fact_overlap` >= 0)."""
  overlap = config.get("fact_overlap", -1.0)
  if overlap == -1:
    return world.known_mask(config.fact_coverage, config.coverage_seed)
  if overlap < 0:
    raise ValueError(f"fact_overlap must be -1 (off) or in [0, 1], got {overlap}")
  return world.known_mask_overlapping(config.fact_coverage, config.overlap_coverage,
                                      config.fact_overlap, config.coverage_seed)


def task_defaults(runlocal: bool = False) -> ml_collections.ConfigDict:
  """The task generator's knobs (collab/data/task.py TaskConfig) as a ConfigDict; the
  options of task.OFF_OPTIONS are keys only in the configs that turn them on."""
  task = {k: v for k, v in dataclasses.asdict(task_lib.TaskConfig()).items()
          if k not in task_lib.OFF_OPTIONS}
  if runlocal:
    task.update(num_train=2000, num_validation=64, num_test=64)
  return ml_collections.ConfigDict(task)


def word_problem_options(config: ml_collections.ConfigDict) -> None:
  """The keys of a word-problem recipe's config: its JSONL folder, longer sequences and
  decodes (a GSM-Symbolic problem is ~160 tokens, 95% within 283), no private spans, and
  evaluation on validation problems (the training generators'; test holds the held-out ones)."""
  config.data_dir = word_problems.DEFAULT_DATA_DIR
  config.seq_len = WORD_PROBLEM_SEQ_LEN
  config.redact_prob = 0.0
  config.eval.split = "validation"
  config.eval.num_problems = 300
  config.eval.max_new_tokens = 256
  config.eval.step_max_new_tokens = 64


def word_problem_gate_options(config: ml_collections.ConfigDict) -> None:
  """A gate config's keys for a pair pretrained on word problems: their JSONL and pretraining
  folder, and room for them (with the 2048-token tokenizer, questions take up to 209 tokens
  with bos and sep, 99% of lines 53 with their sep, 99% of solutions 15 lines)."""
  config.data_dir = word_problems.DEFAULT_DATA_DIR
  config.pretrain_dir = os.path.join(os.path.dirname(config.pretrain_dir),
                                     "word_problems_local" if config.get("runlocal")
                                     else "word_problems")
  config.prompt_len = 224
  config.rollout.update(num_steps=15, step_tokens=56)


def pretrain_config(model: str = "", *, runlocal: bool = False, seed: int = -1,
                    coverage: float = -1.0, steps: int = 0, batch: int = 0,
                    overlap: float = -2.0, arith_weight: float = 0.0
                    ) -> ml_collections.ConfigDict:
  """The pretraining config of a recipe (configs/pretrain.py's get_config; the gate trainer
  builds the same one for a preset it pretrains). Negative or zero overrides keep the
  recipe's value (overlap: below -1; -1 turns the recipe's overlap off); runlocal shrinks
  everything to seconds."""
  model = model or ("test_tiny" if runlocal else "slm_s")
  recipe = get_recipe(model)

  config = ml_collections.ConfigDict()
  config.model = model
  config.preset = recipe.model  # the size preset (collab/models/presets.py) the recipe trains
  config.seed = seed if seed >= 0 else recipe.seed
  config.task = task_defaults(runlocal)
  config.update(tokenizer_options(model))
  # Data and tokenizers are shared by every model of a world, so they live outside the
  # model's workdir.
  config.assets_dir = "runs/assets_local" if runlocal else "runs/assets"
  config.seq_len = SEQ_LEN[recipe.tokenizer_type]
  config.fact_coverage = coverage if coverage >= 0 else recipe.fact_coverage
  config.coverage_seed = 0
  # The options of the harder worlds are keys only when on, so the config (and a workdir's
  # config.json) of every other recipe is what it was without them.
  fact_overlap = overlap if overlap >= -1 else recipe.overlap
  if fact_overlap >= 0:
    # A fallible model: of the facts a model of coverage overlap_coverage knows (same
    # coverage_seed), it knows this share; the rest of its facts lie outside them.
    config.fact_overlap = fact_overlap
    config.overlap_coverage = get_recipe(recipe.overlap_with or "slm_s").fact_coverage
  if (arith_weight or recipe.arith_weight) != 1.0:
    # The loss weight of arithmetic lines (mul, add, sub): more arithmetic practice per step.
    config.arith_weight = arith_weight or recipe.arith_weight
  # 'mask': train on every problem but never on an unknown fact's look-up line (arithmetic
  # learns from all the data); 'filter': train only on problems whose facts are all known.
  config.unknown_facts = "mask"
  # Share of training problems shown redacted (private spans -> <redacted>, loss off on the
  # lines that need them): an LLM learns to serve `ask_redacted` requests.
  config.redact_prob = 0.25 if recipe.role == "llm" else 0.0
  config.num_steps = steps or recipe.num_steps
  config.batch_size = batch or recipe.batch_size
  config.learning_rate = recipe.learning_rate
  config.warmup_steps = recipe.warmup_steps
  config.weight_decay = 0.01
  config.grad_clip = 1.0
  config.log_every = 50
  config.ckpt_every = 500
  config.max_to_keep = 2
  # A step with a NaN/inf loss or gradients: 'stop' (keeps the last checkpoint) or 'skip'.
  config.on_nonfinite = "stop"
  config.eval = ml_collections.ConfigDict(
      dict(split="test", num_problems=500, batch_size=128))

  if recipe.tokenizer_type != tokenizer_lib.DEFAULT_TYPE:
    # Free-running evaluation writes up to evaluate_lm's default of 96 tokens, room for every
    # BPE solution but not for 8% of the unigram ones (up to 99 tokens): room for a sequence.
    config.eval.max_new_tokens = config.seq_len
  if recipe.data == "word_problems":
    word_problem_options(config)

  if runlocal:
    config.num_steps = steps or 30
    config.batch_size = 16
    config.log_every = 10
    config.ckpt_every = 10
    config.eval.num_problems = 16
    config.eval.batch_size = 16
  return config
