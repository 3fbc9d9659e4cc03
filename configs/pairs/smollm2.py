"""SmolLM2-135M-Instruct (the GGUF file of `make real-models`) as SLM and as helper LLM, on the
GSM-Symbolic problems of `make gsm-symbolic`, on one CPU device.

  make real-models gsm-symbolic
  python -m experiments.train_gate --config=configs/pairs/smollm2.py --workdir=runs/smollm2
  python -m experiments.evaluate   --config=configs/pairs/smollm2.py --workdir=runs/smollm2

The same checkpoint on both sides: the LLM is no stronger than the SLM, so this pair checks that
real weights run through gate training and evaluation end to end at a known cost, not that
asking pays off. Prompts and scoring are configs/pairs/hf.py's (the chat template, steps on
non-empty lines, answers compared as numbers).

arg keys: slm_dir, llm_dir (GGUF files or Hugging Face directories; default the SmolLM2 file in
.cache/real_models), data_dir (GSM8K-style JSONL; default .cache/gsm_symbolic/jsonl), seed,
call_cost, steps (gate training steps, 10), problems (training problems per step, 4),
eval_problems (30), num_steps / step_tokens (decisions per problem and tokens per decision,
8 x 48), prompt_len (192: GSM-Symbolic's chat prompts are 56-172 tokens; the prefill
runs over all of them), runlocal (2 training steps, 4 problems evaluated, 4 x 16 tokens:
for tests).
"""
import os

from collab import config_args
from collab import errors
from collab.data import gsm_symbolic
from collab.models import real_models
from configs import pairs

DERIVED = True  # the architectures are read from the checkpoints (tests/test_pairs_configs.py)
SMOLLM2 = os.path.join(real_models.cache_dir(), real_models.MODELS["smollm2"].file)
DATA_DIR = gsm_symbolic.DEFAULT_OUT


def missing(slm_dir: str = SMOLLM2, llm_dir: str = SMOLLM2, data_dir: str = DATA_DIR
            ) -> str | None:
  """Why the pair cannot be built from these paths (a file or folder absent), or None."""
  for path, how in ((slm_dir, "make real-models"), (llm_dir, "make real-models"),
                    (os.path.join(data_dir, "test.jsonl"), "make gsm-symbolic")):
    if not os.path.exists(path):
      return f"{path} does not exist (`{how}` writes it; see docs/real_models.md)"
  return None


def get_config(arg=None):
  arg = config_args.parse_arg(
      arg, slm_dir=SMOLLM2, llm_dir=SMOLLM2, data_dir=DATA_DIR, seed=0, call_cost=0.02,
      steps=0, problems=4, eval_problems=0, num_steps=0, step_tokens=0, prompt_len=192,
      runlocal=False)
  reason = missing(arg.slm_dir, arg.llm_dir, arg.data_dir)
  if reason:
    raise errors.ConfigError(reason)
  # pair_config's runlocal: one CPU device and the tiny gate-training sizes, set below.
  config = pairs.pair_config(
      f"slm_dir={arg.slm_dir},llm_dir={arg.llm_dir},data_dir={arg.data_dir},seed={arg.seed},"
      f"call_cost={arg.call_cost},prompt_len={arg.prompt_len},runlocal",
      family="", sizes=None, tiny=None, slm="", llm="", prompt=pairs.PRETRAINED)
  config.slm = config.llm = os.path.basename(os.path.normpath(arg.slm_dir))
  if arg.llm_dir != arg.slm_dir:
    config.llm = os.path.basename(os.path.normpath(arg.llm_dir))
  config.runlocal = arg.runlocal
  config.rollout.update(num_steps=arg.num_steps or (4 if arg.runlocal else 8),
                        step_tokens=arg.step_tokens or (16 if arg.runlocal else 48))
  config.rl.update(num_steps=arg.steps or (2 if arg.runlocal else 10),
                   problems_per_step=arg.problems, group_size=2,
                   num_train_problems=64 if arg.runlocal else 400)
  n = arg.eval_problems or (4 if arg.runlocal else 30)
  # Every baseline family at one value: each value is one more rollout of the 135M model
  # (minutes on a loaded 2-core CPU, docs/real_models.md).
  config.eval.update(num_problems=n, batch_size=n, random_rates=(0.5,), thresholds=(-1.0,),
                     every_k=(2,), fixed_steps=((0,),), fine_thresholds=0)
  config.eval.line_kinds.problems = n
  config.eval.router.update(problems=n, steps=50, thresholds=(0.5,), ask_shares=())
  config.log_every = 1 if arg.runlocal else 5
  config.ckpt_every = 2 if arg.runlocal else 10
  return config
