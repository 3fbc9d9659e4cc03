"""The transfer-across-tokenizers study's runlocal variant end to end on tiny models: a gate
trained with gpt2_tiny (the default tokenizer) runs with gpt2_tiny_uni (a unigram tokenizer)
and the other way round, each against the gate trained on that LLM, with paired differences;
and a gate trained with two other LLMs in turn runs with both."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/: studies_shared

from studies_shared import run as _run, shared  # noqa: E402,F401


def test_transfer_tokenizers_study_runlocal(shared):
  result, summary, md, _ = _run(shared, "transfer_tokenizers", "together=on")
  together = "test_tiny_fallible+test_tiny_arith"
  assert set(summary["transfer"]) == {"test_tiny__gpt2_tiny@gpt2_tiny_uni",
                                      "test_tiny__gpt2_tiny_uni@gpt2_tiny",
                                      f"test_tiny__{together}@gpt2_tiny",
                                      f"test_tiny__{together}@gpt2_tiny_uni"}
  multi = next(r for r in result["runs"] if r["setting"] == f"test_tiny__{together}")
  assert multi["train_llms"] == together.split("+")
  assert set(multi["evals"]) == {"test_tiny_fallible", "gpt2_tiny", "gpt2_tiny_uni"}
  for entry in summary["transfer"].values():
    assert entry["trained_with"] != entry["llm"] and "direct" in entry
    diff = entry["accuracy_diff_paired"]
    # Transferred minus direct, problem by problem: the gap of the two seed-0 gates' means.
    assert diff["mean"] == pytest.approx(entry["transfer"]["accuracy"]["mean"]
                                         - entry["direct"]["accuracy"]["mean"])
  # Compared with the gate trained with that LLM alone, as the single-LLM gates are.
  for llm, other in (("gpt2_tiny", "gpt2_tiny_uni"), ("gpt2_tiny_uni", "gpt2_tiny")):
    entry = summary["transfer"][f"test_tiny__{together}@{llm}"]
    assert entry["trained_with"] == together
    assert entry["direct"] == summary["transfer"][f"test_tiny__{other}@{llm}"]["direct"]
  # Each LLM's baselines ran once, with its own tokenizer's pair.
  assert {b["llm"] for b in result["baselines"].values()} == {
      "gpt2_tiny", "gpt2_tiny_uni", "test_tiny_fallible"}
  uni = next(b for b in result["baselines"].values() if b["llm"] == "gpt2_tiny_uni")
  assert uni["policies"]["llm_alone"]["llm_tokens"]["mean"] > 0
  assert "### Transfer" in md and "| gpt2_tiny | gpt2_tiny_uni |" in md
  assert f"| {together} | gpt2_tiny_uni |" in md
