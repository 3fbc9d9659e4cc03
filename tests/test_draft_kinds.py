"""The kind of a drafted line read from its tokens (collab/draft_kinds.py) agrees with
word_problems.step_kind on the lines' text: every line of fake GSM-style problems and hand-made
ones, and (with `make word-problems`) the validation lines of the GSM-Symbolic corpus."""
import os

import numpy as np
import pytest

import fake_word_problems
from collab import draft_kinds
from collab.data import task as task_lib
from collab.data import word_problems
from collab.train import recipes

CORPUS = word_problems.DEFAULT_DATA_DIR


def _table(data_dir, tmp_path):
  tok, _ = word_problems.prepare_tokenizer(data_dir, str(tmp_path / "assets"),
                                           recipes.WORD_PROBLEM_VOCAB)
  return tok, draft_kinds.token_table(tok)


def test_line_kinds_extend_the_generated_tasks():
  assert draft_kinds.LINE_KINDS[:len(task_lib.STEP_KINDS)] == task_lib.STEP_KINDS
  assert set(word_problems.STEP_KINDS) <= set(draft_kinds.LINE_KINDS)


def test_draft_kind_agrees_with_step_kind(tmp_path):
  data_dir = fake_word_problems.write(str(tmp_path / "jsonl"))
  tok, table = _table(data_dir, tmp_path)
  lines = [s for ex in word_problems.read_split(data_dir, "train") for s in ex["steps"]]
  lines += ["answer 12", "First count the pens.", "They have 3+4=7.", "So 170 - 34 = 136 left",
            "Then 7*3=21 pens", "Each gets 12/4=3", "In all 2*3+1=7", "a 2-3 day trip",
            "They have 3 x 4 = 12 pens"]
  got = [draft_kinds.classify_text(table, tok.encode(line)) for line in lines]
  want = [word_problems.step_kind(line) for line in lines]
  assert got == want
  assert set(want) == {"text", "add", "sub", "mul", "div", "mixed", "answer"}
  # A drafted line is read up to its length: the tokens after it do not count.
  ids = tok.encode("They have 3+4=7.") + tok.encode("2*3=6")
  n = len(tok.encode("They have 3+4=7."))
  kind = draft_kinds.classify(table, np.array([ids]), np.array([n]))
  assert draft_kinds.LINE_KINDS[int(kind[0])] == "add"


@pytest.mark.skipif(not os.path.exists(os.path.join(CORPUS, "validation.jsonl")),
                    reason="no word problems: `make word-problems`")
def test_draft_kind_on_the_gsm_symbolic_corpus(tmp_path):
  """How often the token rule reads a real line as step_kind does (see draft_kinds' doc)."""
  tok, table = _table(CORPUS, tmp_path)
  lines = [s for ex in word_problems.read_split(CORPUS, "validation")[:300] for s in ex["steps"]]
  got = [draft_kinds.classify_text(table, tok.encode(line)) for line in lines]
  want = [word_problems.step_kind(line) for line in lines]
  agree = np.mean([g == w for g, w in zip(got, want)])
  arith = [g == w for g, w in zip(got, want) if w not in ("text", "answer")]
  print(f"draft kinds agree with step_kind on {100 * agree:.1f}% of {len(lines)} lines, "
        f"{100 * np.mean(arith):.1f}% of its {len(arith)} arithmetic lines")
  assert all(g == "answer" for g, w in zip(got, want) if w == "answer")
  # Most disagreements are lines step_kind reads as text because a currency sign or a unit
  # stands between an operator and its number ("26 * £0.52 = £13.52"): arithmetic to the
  # token rule.
  assert agree > 0.7 and np.mean(arith) > 0.9
