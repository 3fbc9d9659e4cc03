"""A pair with two tokenizers built from its config (configs/pairs/smollm2_gemma3.py), on tiny
GGUF files written here (tests/gguf_files.py: a SmolLM2-shaped llama file, byte-level BPE and
ChatML, no BOS; a Gemma-3-shaped file, SentencePiece-style BPE, BOS, no template) and a few
GSM8K-style problems: each side's prompt in its own ids and format, a rollout whose LLM calls
cross between the tokenizers, the export of both tokenizers, and a same-tokenizer pair built
the old way."""
import json
import os

import jax
import numpy as np
import pytest

from collab import errors
from collab import evaluate
from collab import export
from collab import gating
from collab import pair as pair_lib
from collab import rollout as rollout_lib
from collab.data import tokenizer as tokenizer_lib
from collab.train import gate as gate_lib
from configs.pairs import smollm2_gemma3

gguf = pytest.importorskip("gguf")
pytest.importorskip("tokenizers")
pytest.importorskip("sentencepiece")
import gguf_files  # noqa: E402  (after the skips)


def _write_data(path):
  os.makedirs(path)
  for split, seeds in (("train", range(8)), ("test", range(100, 108))):
    with open(os.path.join(path, f"{split}.jsonl"), "w") as f:
      for i in seeds:
        a, b = 3 + i % 7, 10 + i % 5
        f.write(json.dumps({"question": f"Ann has {a} pens and buys {b} more. How many "
                                        "pens does she have?",
                            "answer": f"She has {a} + {b} = {a + b} pens.\n#### {a + b}"})
                + "\n")
  return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  root = tmp_path_factory.mktemp("mixed")
  slm, llm = str(root / "smol.gguf"), str(root / "gemma.gguf")
  gguf_files._write_llama(slm)  # pylint: disable=protected-access
  gguf_files._write_gemma3(llm, str(root))  # pylint: disable=protected-access
  data = _write_data(str(root / "data"))

  def config(llm_dir=llm):
    cfg = smollm2_gemma3.get_config(f"slm_dir={slm},llm_dir={llm_dir},data_dir={data},"
                                    "runlocal,prompt_len=96,llm_prompt_len=256")
    cfg.assets_dir = str(root / "assets")
    return cfg

  cfg = config()
  return dict(root=root, config=config, cfg=cfg, pair=pair_lib.load_pair(cfg))


def test_each_side_reads_its_own_prompt(env):
  cfg, pair = env["cfg"], env["pair"]
  slm_tok, llm_tok = pair.tokenizer, pair.llm_tokenizer
  assert llm_tok is not None and llm_tok.fingerprint != slm_tok.fingerprint
  assert pair.llm_step_ratio >= 1.0
  # Each model at its own width: rows added for its tokenizer's markup ids only.
  assert pair.slm_cfg.vocab_size == slm_tok.vocab_size
  assert pair.llm_cfg.vocab_size == llm_tok.vocab_size
  assert pair.vocab["rows"] == {"SLM": pair.slm_cfg.vocab_size, "LLM": pair.llm_cfg.vocab_size}
  records = pair_lib.load_records(cfg, pair, "test", 2)
  batch = pair_lib.make_episodes(cfg, pair, records)
  slm_ids = batch["prompt_BxP"][0, :batch["prompt_len_B"][0]].tolist()
  llm_ids = batch["llm_prompt_BxP"][0, :batch["llm_prompt_len_B"][0]].tolist()
  # The SLM: its ChatML template, no BOS. The LLM (no template): BOS, then one worked problem
  # of the train split in few-shot text, then the question.
  # (SmolLM2's bos id is <|im_start|>'s, which decode drops at the start.)
  assert slm_tok.id_to_piece(slm_ids[0]) == "<|im_start|>" != slm_tok.id_to_piece(slm_ids[1])
  # (decode stops at <|im_end|>, the pair's eos in chat style.)
  assert slm_tok.decode(slm_ids[1:]) == f"user\n{records[0]['question']}"
  assert slm_ids.count(slm_ids[0]) == 2 and slm_tok.eos_id in slm_ids
  assert llm_ids[0] == llm_tok.bos_id and llm_ids.count(llm_tok.bos_id) == 1
  llm_text = llm_tok.decode(llm_ids)
  assert llm_text.startswith("Question: Ann has 3 pens") and "#### 13\n\n" in llm_text
  assert llm_text.endswith(f"Question: {records[0]['question']}\nAnswer:\n")
  assert batch["llm_prompt_BxP"].shape == (2, 256)
  np.testing.assert_array_equal(batch["llm_redacted_prompt_BxP"], batch["llm_prompt_BxP"])

  setup = pair_lib.make_setup(cfg, pair)
  hand = setup.handoff
  assert hand is not None and hand.step_tokens == cfg.rollout.step_tokens == 16
  assert hand.llm_step_tokens == int(np.ceil(16 * pair.llm_step_ratio))
  # Gemma's '\n\n' (a user-defined token) ends its step too, as such tokens do the SLM's.
  assert llm_tok.sep_id in hand.llm_line_ends and len(hand.llm_line_ends) > 1
  assert hand.llm_blanks and set(hand.llm_blanks) != set(setup.specials.blanks)
  assert "Question:" in setup.scorer.cut  # a few-shot LLM goes on to the next question


def test_a_rollout_crosses_between_the_tokenizers(env):
  cfg, pair = env["cfg"], env["pair"]
  setup = pair_lib.make_setup(cfg, pair)
  batch = pair_lib.make_episodes(cfg, pair, pair_lib.load_records(cfg, pair, "test", 2))
  gate = pair_lib.init_gate(cfg, pair)
  actions = setup.gate.actions
  runs = {}
  for kind in ("always", "self"):
    args = rollout_lib.Policy(kind=kind).args(cfg.rollout.num_steps, actions)
    runs[kind] = jax.device_get(rollout_lib.rollout(
        pair.slm_params, pair.llm_params, gate, batch, jax.random.PRNGKey(0), args,
        setup=setup))
  steps, final = runs["always"]
  # Random models write anything: a step the SLM's tokenizer cannot hold is kept out, any
  # other is handed over and written by the LLM (writer 2) in SLM ids.
  assert int(final.calls_B.sum()) > 0 and int(final.llm_tokens_B.sum()) > 0
  assert (final.writer_BxL == 2).any()
  assert int(final.context_tokens_B.min()) >= int(batch["llm_prompt_len_B"].min())
  steps, final = runs["self"]
  assert int(final.calls_B.sum()) == 0 and not (final.writer_BxL == 2).any()


def test_gate_training_and_evaluation_run(env):
  """gate.train, then every baseline the config asks for, as the entry points run them (one
  problem per fake device)."""
  cfg = env["config"]()
  cfg.rl.problems_per_step = jax.device_count()
  cfg.eval.update(num_problems=8, batch_size=8)
  workdir = str(env["root"] / "trained")
  gate_lib.train(cfg, workdir)
  cfg = pair_lib.resolve_assets_dir(cfg, workdir)
  gate_params, _ = pair_lib.load_gate(workdir)
  metrics = evaluate.evaluate(cfg, env["pair"], gate_params, str(env["root"] / "eval"))
  policies = metrics["policies"]
  assert {"gate", "slm_alone", "llm_alone", "random_0.5", "threshold_-1"} <= set(policies)
  assert policies["slm_alone"]["calls"]["mean"] == 0
  llm_alone = policies["llm_alone"]
  assert llm_alone["calls"]["mean"] == cfg.rollout.num_steps and llm_alone["llm_tokens"]["mean"] > 0


def test_same_tokenizer_pair_goes_the_old_way(env):
  cfg = env["config"](llm_dir=env["cfg"].slm_hf_dir)
  pair = pair_lib.load_pair(cfg)
  assert pair.llm_tokenizer is None and pair.vocab["rows"] == pair.slm_cfg.vocab_size
  assert pair_lib.make_setup(cfg, pair).handoff is None
  batch = pair_lib.make_episodes(cfg, pair, pair_lib.load_records(cfg, pair, "test", 2))
  assert not any(k.startswith("llm_") for k in batch)


def test_token_steps_and_unknown_settings_are_refused(env):
  cfg = env["config"]()
  cfg.rollout.granularity = "tokens"
  with pytest.raises(errors.ConfigError, match="granularity"):
    pair_lib.load_pair(cfg)
  cfg = env["config"]()
  cfg.handoff.strict_mode = True
  with pytest.raises(errors.ConfigError, match="strict_mode"):
    pair_lib.load_pair(cfg)


def test_export_records_both_tokenizers(env):
  cfg, pair, root = env["cfg"], env["pair"], env["root"]
  workdir = str(root / "run")
  os.makedirs(workdir)
  gate_lib.save_gate(workdir, pair_lib.init_gate(cfg, pair), cfg, pair)
  out = export.write_export(cfg, workdir, str(root / "export"))
  with open(os.path.join(out, "export.json")) as f:
    info = json.load(f)
  assert info["tokenizer_fingerprint"] == pair.tokenizer.fingerprint
  assert info["llm_tokenizer_fingerprint"] == pair.llm_tokenizer.fingerprint
  cfg2, pair2, gate2 = export.load_export(out)
  assert pair2.llm_tokenizer.fingerprint == pair.llm_tokenizer.fingerprint
  assert pair2.llm_step_ratio == pair.llm_step_ratio
  assert pair_lib.make_setup(cfg2, pair2) == pair_lib.make_setup(cfg, pair)
  with pytest.raises(tokenizer_lib.TokenizerMismatchError):  # the LLM's files name its own
    tokenizer_lib.check_fingerprint(pair.llm_tokenizer.fingerprint, pair2.tokenizer, where="x")
  assert jax.tree.structure(gate2) == jax.tree.structure(
      gating.init_gate(gating.GateConfig(**cfg.gate.to_dict()), pair.slm_cfg.d_model,
                       jax.random.PRNGKey(0)))
