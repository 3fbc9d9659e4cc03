"""The kind of line the SLM has just drafted, read in the graph from its tokens: what the
line-kind rule asks at on word problems (collab/data/word_problems.py), whose kinds cannot be
planned from the question as the generated task's are.

The rule follows word_problems.step_kind on the draft's text, token by token: a line whose
first token starts with `answer` is `answer`; a line with an `=` is `add`, `sub`, `mul` or
`div` when one operator kind occurs in it and `mixed` when several do; every other line is
`text`. An operator counts wherever its token occurs in a line with an `=` (step_kind also asks
for digits around it, which a token table cannot see). On GSM-Symbolic validation lines the two
agree on 78% of the lines and 96% of step_kind's arithmetic lines; most disagreements are
lines step_kind calls text because a currency sign or a unit stands between an operator and
its number ("26 * £0.52 = £13.52"), which this rule reads as arithmetic
(tests/test_draft_kinds.py).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from collab.data import tokenizer as tokenizer_lib

# Kinds a line-kind policy can ask at: the generated task's (planned from the question, in the
# batch's kind_BxS) first, so their indices are task.STEP_KINDS', then the word problems' others.
LINE_KINDS = ("lookup", "mul", "add", "sub", "answer", "text", "div", "mixed")
# Operator bits of a token: the kinds they mark (a token may carry several).
_OP_BITS = (("add", "+"), ("sub", "-"), ("mul", "*×"), ("div", "/÷"))
_EQ_BIT = 1 << len(_OP_BITS)


@dataclasses.dataclass(frozen=True)
class TokenTable:
  """Per token id: its operator and `=` bits, and whether it starts an `answer` line. Hashable
  (tuples), so it lives in the rollout's static Setup."""
  bits_V: tuple[int, ...]
  answer_V: tuple[bool, ...]


def token_table(tok: tokenizer_lib.TokenizerBase) -> TokenTable:
  """The table of a tokenizer, from each id's decoded text (specials decode to nothing)."""
  bits, answer = [], []
  for i in range(tok.vocab_size):
    text = tok.decode([i]) if i != tok.sep_id else ""
    b = sum(1 << j for j, (_, chars) in enumerate(_OP_BITS) if any(c in text for c in chars))
    if text.strip() == "x":  # "3 x 4"; an x inside a word is not a product
      b |= 1 << 2
    bits.append(b | (_EQ_BIT if "=" in text else 0))
    answer.append(text.strip().startswith("answer"))
  return TokenTable(tuple(bits), tuple(answer))


def classify(table: TokenTable, draft_BxK, draft_len_B):
  """Index into LINE_KINDS of each drafted line's kind (the first draft_len tokens)."""
  K = draft_BxK.shape[1]
  bits_V = jnp.asarray(np.array(table.bits_V, np.int32))
  answer_V = jnp.asarray(np.array(table.answer_V, bool))
  drafted_BxK = jnp.arange(K) < draft_len_B[:, None]
  bits_BxK = jnp.where(drafted_BxK, bits_V[draft_BxK], 0)
  has_B = [jnp.any(bits_BxK & (1 << j), -1) for j in range(len(_OP_BITS))]
  eq_B = jnp.any(bits_BxK & _EQ_BIT, -1)
  count_B = sum(h.astype(jnp.int32) for h in has_B)
  op_B = sum(h.astype(jnp.int32) * LINE_KINDS.index(kind)
             for h, (kind, _) in zip(has_B, _OP_BITS))  # the one operator's kind when count is 1
  kind_B = jnp.where(eq_B & (count_B == 1), op_B,
                     jnp.where(eq_B & (count_B > 1), LINE_KINDS.index("mixed"),
                               LINE_KINDS.index("text")))
  return jnp.where((draft_len_B > 0) & answer_V[draft_BxK[:, 0]], LINE_KINDS.index("answer"),
                   kind_B).astype(jnp.int32)


def classify_text(table: TokenTable, ids) -> str:
  """The kind of one line's ids (host side, for checks)."""
  ids = np.asarray(ids, np.int32)[None]
  return LINE_KINDS[int(classify(table, jnp.asarray(ids), jnp.asarray([ids.shape[1]]))[0])]
