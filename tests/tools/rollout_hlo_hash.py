"""sha256 of a same-tokenizer rollout's StableHLO, built the way a user's run builds it: from
configs/pairs/hf.py on a tiny SmolLM2-shaped GGUF file (tests/gguf_files.py) as SLM and LLM,
a few GSM8K-style problems, `random` asking. Run it on two checkouts to show that a change left
the same-tokenizer program as it was (docs/tokenizers.md):

  JAX_PLATFORMS=cpu PYTHONPATH=. python tests/tools/rollout_hlo_hash.py
"""
import hashlib
import json
import os
import sys
import tempfile

import jax

sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
import gguf_files  # noqa: E402
from collab import pair as pair_lib  # noqa: E402
from collab import rollout as rollout_lib  # noqa: E402
from configs.pairs import hf  # noqa: E402


def main():
  root = tempfile.mkdtemp()
  model, data = os.path.join(root, "smol.gguf"), os.path.join(root, "data")
  gguf_files._write_llama(model)  # pylint: disable=protected-access
  os.makedirs(data)
  for split in ("train", "test"):
    with open(os.path.join(data, f"{split}.jsonl"), "w") as f:
      for i in range(4):
        f.write(json.dumps({"question": f"Ann has {i} pens and buys 2 more. How many?",
                            "answer": f"{i}+2={i + 2}\n#### {i + 2}"}) + "\n")
  config = hf.get_config(f"slm_dir={model},llm_dir={model},data_dir={data},runlocal")
  config.assets_dir = os.path.join(root, "assets")
  pair = pair_lib.load_pair(config)
  setup = pair_lib.make_setup(config, pair)
  batch = pair_lib.make_episodes(config, pair, pair_lib.load_records(config, pair, "test", 4))
  args = rollout_lib.Policy(kind="random").args(config.rollout.num_steps, setup.gate.actions,
                                                0.5)
  text = rollout_lib.rollout.lower(
      pair.slm_params, pair.llm_params, pair_lib.init_gate(config, pair), batch,
      jax.random.PRNGKey(0), args, setup=setup).as_text(debug_info=False)
  print(f"handoff {setup.handoff}; StableHLO {len(text)} characters, sha256 "
        f"{hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
  main()
