"""Decodes what the real SmolLM2 x Gemma 3 pair writes on the first 4 test problems (LLM alone,
then SLM alone), after results/smollm2_gemma3/README.md's gate run (reads its prepared data):

  JAX_PLATFORMS=cpu XLA_FLAGS= PYTHONPATH=. python results/smollm2_gemma3/look_rows.py
"""
import time

import jax

from configs.pairs import smollm2_gemma3
from collab import pair as pair_lib
from collab import rollout as rollout_lib
cfg = smollm2_gemma3.get_config("eval_problems=4")
cfg = pair_lib.resolve_assets_dir(cfg, "runs/smollm2_gemma3")
pair = pair_lib.load_pair(cfg)
setup = pair_lib.make_setup(cfg, pair)
batch = pair_lib.eval_episodes(cfg, pair)
gate = pair_lib.init_gate(cfg, pair)
tok, ltok = pair.tokenizer, pair.llm_tokenizer
for kind in ("always", "self"):
  t = time.time()
  args = rollout_lib.Policy(kind=kind).args(cfg.rollout.num_steps, setup.gate.actions)
  steps, final = jax.device_get(rollout_lib.rollout(pair.slm_params, pair.llm_params, gate, batch, jax.random.PRNGKey(0), args, setup=setup))
  print("=====", kind, round(time.time() - t, 1), "s; correct", final.correct_B, "overflow", steps.overflow.sum(0), "llm_tokens/step", steps.llm_tokens[:, 0])
  for b in range(4):
    p = batch["prompt_len_B"][b]
    print("--- row", b, "answer", tok.decode(batch["answer_BxA"][b]), "| solution:")
    print(repr(tok.decode(final.tokens_BxL[b, p:final.length_B[b]])))
    print("writer", final.writer_BxL[b, p:final.length_B[b]].tolist()[:80])
