"""SLM-alone accuracy of an imported pair against transformers on the same GGUF file.

  python -m experiments.slm_reference --gguf=.cache/real_models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --data_dir=/data/gsm --num_problems=30 --out=results/slm_reference.json

The SLM writes each problem alone (the rollout with the 'self' policy, greedy) with the pair
config's prompt and scoring (configs/pairs/hf.py: the chat template, steps on non-empty lines,
answers as numbers); transformers' `generate` (greedy, float32, `gguf_file=`) continues the
same prompt ids for as many tokens as the rollout may write, stopping at the same end ids. Its
text is cut where the rollout stopped (its decision budget), then scored by the same
`prompts.NumberScorer`. Reported: both accuracies, the problems where they differ, and whether
the tokens agree. Needs torch, transformers and accelerate (the `parity` extra).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from collab import pair as pair_lib
from collab import rollout as rollout_lib
from configs.pairs import hf as hf_pairs


def pair_config(gguf: str, data_dir: str, *, num_steps: int, step_tokens: int, **args):
  """configs/pairs/hf.py with the file as SLM (and LLM), on this machine (runlocal)."""
  arg = ",".join([f"runlocal,slm_dir={gguf},llm_dir={gguf},data_dir={data_dir}"]
                 + [f"{k}={v}" for k, v in args.items()])
  config = hf_pairs.get_config(arg)
  config.rollout.update(num_steps=num_steps, step_tokens=step_tokens)
  return config


def ours(config, pair, records) -> dict[str, Any]:
  """The SLM alone on records, in one batch: prompt ids, generated ids, correct."""
  setup = pair_lib.make_setup(config, pair)
  episodes = pair_lib.make_episodes(config, pair, records)
  policy = rollout_lib.Policy("self").args(config.rollout.num_steps, setup.gate.actions)
  start = time.time()
  _, final = rollout_lib.rollout(
      pair.slm_params, pair.llm_params, pair_lib.init_gate(config, pair),
      {k: jnp.asarray(v) for k, v in episodes.items()}, jax.random.key(0), policy, setup=setup)
  tokens, length = np.asarray(final.tokens_BxL), np.asarray(final.length_B)
  p_len = episodes["prompt_len_B"]
  return dict(setup=setup, episodes=episodes, seconds=time.time() - start,
              prompts=[tokens[b, :p_len[b]].tolist() for b in range(len(records))],
              generated=[tokens[b, p_len[b]:length[b]].tolist() for b in range(len(records))],
              correct=np.asarray(final.correct_B).tolist())


def theirs(gguf: str, prompts: list[list[int]], max_new_tokens: int, end_ids, pad_id: int,
           batch_size: int = 8) -> list[list[int]]:
  """transformers' greedy continuation of each prompt (left-padded batches, float32)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  transformers.utils.logging.set_verbosity_error()
  model = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf),
      dtype=torch.float32).eval()
  out = []
  for i in range(0, len(prompts), batch_size):
    chunk = prompts[i:i + batch_size]
    width = max(len(p) for p in chunk)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in chunk])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
    with torch.no_grad():
      gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                           max_new_tokens=max_new_tokens, eos_token_id=list(end_ids),
                           pad_token_id=pad_id)
    for row in gen[:, width:].tolist():
      cut = next((j + 1 for j, t in enumerate(row) if t in end_ids), len(row))
      out.append(row[:cut])
  return out


def compare(gguf: str, data_dir: str, num_problems: int, split: str = "test", *,
            workdir: str, **overrides) -> dict[str, Any]:
  """The comparison on the first num_problems problems of split; the data are prepared under
  workdir/assets."""
  config = pair_config(gguf, data_dir, **overrides)
  config = pair_lib.resolve_assets_dir(config, workdir)
  pair = pair_lib.load_pair(config)
  records = pair_lib.load_records(config, pair, split, num_problems)
  mine = ours(config, pair, records)
  sp, scorer = mine["setup"].specials, mine["setup"].scorer
  end_ids = (sp.eos,) + tuple(sp.stops)
  budget = config.rollout.num_steps * config.rollout.step_tokens
  start = time.time()
  ref = theirs(gguf, mine["prompts"], budget, end_ids, sp.pad)
  ref_seconds = time.time() - start
  answers = mine["episodes"]["answer_BxA"]
  rows = []
  for b, record in enumerate(records):
    got, want = mine["generated"][b], ref[b]
    # The rollout stops after num_steps decisions: transformers' text is cut at the same length
    # when the rollout did not reach an end id.
    cut = want if (got and got[-1] in end_ids) else want[:len(got)]
    ref_correct = bool(scorer(np.array([mine["prompts"][b] + cut]),
                              np.array([len(mine["prompts"][b]) + len(cut)]),
                              np.array([len(mine["prompts"][b])]), answers[b:b + 1])[0])
    rows.append(dict(question=record["question"], answer=str(scorer.tok.decode(answers[b])),
                     ours=scorer.solution_text(got), transformers=scorer.solution_text(cut),
                     ours_correct=bool(mine["correct"][b]), transformers_correct=ref_correct,
                     same_tokens=got == cut))
  n = len(rows)
  return dict(
      gguf=os.path.abspath(gguf), num_problems=n, prompt=config.prompt.to_dict(),
      num_steps=config.rollout.num_steps, step_tokens=config.rollout.step_tokens,
      accuracy_ours=sum(r["ours_correct"] for r in rows) / n,
      accuracy_transformers=sum(r["transformers_correct"] for r in rows) / n,
      same_correctness=sum(r["ours_correct"] == r["transformers_correct"] for r in rows),
      same_tokens=sum(r["same_tokens"] for r in rows),
      seconds_ours=mine["seconds"], seconds_transformers=ref_seconds, problems=rows)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--gguf", required=True)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--num_problems", type=int, default=30)
  parser.add_argument("--split", default="test")
  parser.add_argument("--num_steps", type=int, default=10)
  parser.add_argument("--step_tokens", type=int, default=64)
  parser.add_argument("--prompt_len", type=int, default=256)
  parser.add_argument("--out", default="")
  parser.add_argument("--workdir", default="runs/slm_reference",
                      help="the prepared data go to WORKDIR/assets")
  args = parser.parse_args(argv)
  result = compare(args.gguf, args.data_dir, args.num_problems, args.split, workdir=args.workdir,
                   prompt_len=args.prompt_len, num_steps=args.num_steps,
                   step_tokens=args.step_tokens)
  print(json.dumps({k: v for k, v in result.items() if k != "problems"}, indent=2))
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
