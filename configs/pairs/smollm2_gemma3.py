"""A cross-family pair: SmolLM2-135M-Instruct (llama, byte-level BPE, ChatML template, no BOS)
as SLM and Gemma 3 270M (gemma3, SentencePiece-style BPE, base model, BOS required) as LLM,
the GGUF files of `make real-models`, on the GSM-Symbolic problems of `make gsm-symbolic`, on
one CPU device.

  make real-models gsm-symbolic
  python -m experiments.train_gate --config=configs/pairs/smollm2_gemma3.py --workdir=runs/sg
  python -m experiments.evaluate   --config=configs/pairs/smollm2_gemma3.py --workdir=runs/sg

The two tokenizers differ, so the rollout carries a handoff (collab/handoff.py,
docs/tokenizers.md): text crosses at step boundaries. Each side has its own prompt: the SLM
its ChatML template; Gemma, which has no template, BOS and `shots` worked problems in few-shot
text ("Question: ... Answer: ... #### N"). Both write steps on non-empty lines; answers are
compared as numbers, a few-shot 'Question:' the LLM starts ending the solution.

Each model alone solves few GSM-Symbolic problems (3 of 10 simple ones each in a hand test
reported with issue 22; 0 of 8 test problems in results/smollm2_gemma3/), so this
pair tests the mechanics of a cross-family pair (two tokenizers, two prompt formats, BOS) end
to end, not whether asking a larger model pays off.

strict=False: three of Gemma's 262,144 pieces (the control characters U+0013 and U+0014 and
the unassigned code point U+BFABA) do not survive SmolLM2's tokenizer
(`handoff.check_expressible` on the two files' tokenizers; every SmolLM2 piece survives
Gemma's), so the piece check would refuse the pair; text with them never reaches the other
model (each row's text is checked at every crossing, collab/handoff.py).

arg keys: slm_dir, llm_dir, data_dir (defaults: the files in .cache/), seed, call_cost, steps
(gate training steps, 4), problems (training problems per step, 2), eval_problems (8),
num_steps / step_tokens (decisions per problem and SLM tokens per decision, 6 x 32),
prompt_len (192: the SLM's chat prompts, 56-172 tokens), shots (the LLM's worked problems, 1),
llm_prompt_len (352; GSM-Symbolic's one-shot Gemma prompts are up to 326 tokens), runlocal (2
training steps, 2 problems evaluated, 3 x 16 tokens, llm_prompt_len 448: for tests, whose
problems and worked example differ).
"""
import os

import ml_collections

from collab import config_args
from collab import errors
from collab.models import real_models
from configs.pairs import smollm2

DERIVED = True  # the architectures are read from the checkpoints (tests/test_pairs_configs.py)
SMOLLM2 = smollm2.SMOLLM2
GEMMA3 = os.path.join(real_models.cache_dir(), real_models.MODELS["gemma3"].file)
DATA_DIR = smollm2.DATA_DIR


def missing(slm_dir: str = SMOLLM2, llm_dir: str = GEMMA3, data_dir: str = DATA_DIR
            ) -> str | None:
  """Why the pair cannot be built from these paths (a file or folder absent), or None."""
  return smollm2.missing(slm_dir, llm_dir, data_dir)


def get_config(arg=None):
  arg = config_args.parse_arg(
      arg, slm_dir=SMOLLM2, llm_dir=GEMMA3, data_dir=DATA_DIR, seed=0, call_cost=0.02,
      steps=0, problems=2, eval_problems=0, num_steps=0, step_tokens=0, prompt_len=192,
      shots=1, llm_prompt_len=0, runlocal=False)
  reason = missing(arg.slm_dir, arg.llm_dir, arg.data_dir)
  if reason:
    raise errors.ConfigError(reason)
  n = arg.eval_problems or (2 if arg.runlocal else 8)
  config = smollm2.get_config(
      f"slm_dir={arg.slm_dir},llm_dir={arg.llm_dir},data_dir={arg.data_dir},seed={arg.seed},"
      f"call_cost={arg.call_cost},steps={arg.steps or (2 if arg.runlocal else 4)},"
      f"problems={arg.problems},eval_problems={n},"
      f"num_steps={arg.num_steps or (3 if arg.runlocal else 6)},"
      f"step_tokens={arg.step_tokens or (16 if arg.runlocal else 32)},"
      f"prompt_len={arg.prompt_len}" + (",runlocal" if arg.runlocal else ""))
  # The LLM's own prompts (collab/pair.py): config.prompt with these fields over it. Gemma has
  # no chat template, so 'auto' gives few-shot text, BOS first.
  config.llm_prompt = ml_collections.ConfigDict(dict(shots=arg.shots))
  config.llm_prompt_len = arg.llm_prompt_len or (448 if arg.runlocal else 352)
  config.handoff = ml_collections.ConfigDict(dict(strict=False, stream_margin=1.0,
                                                  llm_step_tokens=0))
  # The baselines asked for: SLM alone, LLM alone, random asking and the confidence threshold
  # (and the oracle, which evaluation always runs); no schedules or fitted rules.
  config.eval.update(every_k=(), fixed_steps=())
  config.eval.line_kinds.problems = 0
  config.eval.router.problems = 0
  if not arg.runlocal:
    config.rl.num_train_problems = 64  # a short training reads few of them
  return config
