"""SLM-alone accuracy of SmolLM2-135M-Instruct (the real GGUF file) through the pair's rollout,
chat template and number scoring, against transformers' greedy `generate` on the same file and
prompt ids, problem by problem (experiments/slm_reference.py). Skips, saying why, without the
file (`make real-models`) or without torch/transformers/accelerate. A few minutes on two
cores, hence tests/e2e/."""
import json

import pytest

from collab.models import real_models

PATH = real_models.find("smollm2")
pytestmark = pytest.mark.skipif(PATH is None, reason=real_models.missing_reason("smollm2")
                                if PATH is None else "")

PROBLEMS = [
    ("Tom has 3 apples and buys 5 more. How many apples does Tom have?",
     "Tom has 3 + 5 = <<3+5=8>>8 apples.\n#### 8"),
    ("Ann had 20 dollars and spent 7. How many dollars does she have left?",
     "20 - 7 = <<20-7=13>>13\n#### 13"),
    ("A box holds 12 pens. How many pens are in 4 boxes?", "4 * 12 = <<4*12=48>>48\n#### 48"),
]


def test_slm_alone_matches_transformers(tmp_path):
  for name in ("torch", "transformers", "accelerate"):
    pytest.importorskip(name)
  from experiments import slm_reference  # pylint: disable=g-import-not-at-top
  data = tmp_path / "gsm"
  data.mkdir()
  for split in ("train", "test"):
    with open(data / f"{split}.jsonl", "w") as f:
      f.writelines(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS)
  out = slm_reference.compare(PATH, str(data), len(PROBLEMS), workdir=str(tmp_path / "run"),
                              prompt_len=96, num_steps=4, step_tokens=24)
  assert out["prompt"]["style"] == "auto" and out["prompt"]["scoring"] == "number"
  assert out["same_tokens"] == len(PROBLEMS), [
      (p["ours"], p["transformers"]) for p in out["problems"]]
  assert out["accuracy_ours"] == out["accuracy_transformers"]
  assert out["problems"][0]["ours_correct"]  # '3 + 5 = 8 apples'
