"""GSM-style JSONL written with fake generators (tests need no reasoning-gym wheel)."""
import random

from collab.data import gsm_symbolic


def generator(gid: int):
  """A generator in reasoning-gym's shape whose worked answer has a text line, an addition
  and a multiplication."""

  def generate(rng: random.Random, difficulty: float = 1.0) -> dict:
    a, b, c = rng.randrange(2, 60), rng.randrange(2, 9), rng.randrange(2, 5)
    total = (a + b) * c
    return {"question": f"Shop {gid} sells {a} pens and gets {b} more, then {c} times as "
                        f"many. How many pens?",
            "answer": str(total),
            "metadata": {"answer_cot": f"First count the pens.\nThey have {a}+{b}={a + b}.\n"
                                       f"Then {a + b}*{c}={total} pens.\n#### {total}"}}

  return generate


def write(out_dir: str, train: int = 120, validation: int = 12, test: int = 8,
          sealed: int = 0) -> str:
  """Splits of 5 fake generators, one held out for test, into out_dir; returns out_dir."""
  spec = gsm_symbolic.Spec(train=train, validation=validation, test=test, heldout=1,
                           sealed=sealed)
  gsm_symbolic.build(out_dir, spec, {gid: generator(gid) for gid in range(5)})
  return out_dir
