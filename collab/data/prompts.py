"""Prompts and scoring that fit pretrained models (imported pairs, GSM8K-style problems).

A config choice (`config.prompt`, see `PromptConfig`); the defaults are the generated task's:
`bos + question + <sep>`, steps that end at every newline, and a solution correct when its last
line is exactly the reference line `answer N` followed by eos.

- style 'chat': the model's own chat template (tokenizer_config.json `chat_template`, or the
  GGUF metadata's `tokenizer.chat_template`), rendered with jinja2 as transformers renders it
  (`add_generation_prompt=True`); `shots` worked train problems come first as earlier user /
  assistant turns, `system` is an optional system message. The end of a solution is the token
  the template closes an assistant turn with (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`): it
  becomes the pair tokenizer's eos, and the model's own eos still ends a solution too
  (Specials.stops).
- style 'few_shot': plain text, `Question: ...\\nAnswer:\\n` after `shots` worked problems
  written the same way and closed by `#### N` and a blank line; for base models without a
  template. Text from a following `Question:` on is not part of the solution.
- style 'auto': 'chat' when the tokenizer has a template, else 'few_shot'.
- steps 'nonempty_lines': a step ends at a token with a newline only once it holds a
  non-whitespace token, so blank lines (and a model's '\\n\\n' tokens) cost no decision.
- scoring 'number': GSM8K-style: the number after the last `####`, else the last number
  written, compared as a number with the reference answer ('1,234' == '1234.00'). It runs on
  the host at the end of the rollout, inside its jit, through `jax.pure_callback`
  (`NumberScorer`), so the rollout stays one compiled program.
"""
from __future__ import annotations

import dataclasses
import decimal
import functools
import json
import re
from typing import Any, Sequence

import numpy as np

from collab import errors

STYLES = ("plain", "chat", "few_shot", "auto")
SCORINGS = ("line", "number")
STEPS = ("lines", "nonempty_lines")
FEW_SHOT_QUESTION = "Question:"


@dataclasses.dataclass(frozen=True)
class PromptConfig:
  style: str = "plain"     # 'plain' | 'chat' | 'few_shot' | 'auto'
  shots: int = 0           # worked train problems shown before the question (chat, few_shot)
  system: str = ""         # chat: a system message (empty: none, the template's default)
  scoring: str = "line"    # 'line' | 'number'
  steps: str = "lines"     # 'lines' | 'nonempty_lines'

  def __post_init__(self):
    for name, valid in (("style", STYLES), ("scoring", SCORINGS), ("steps", STEPS)):
      if getattr(self, name) not in valid:
        raise errors.ConfigError(f"prompt.{name} must be one of {valid}, got "
                                 f"{getattr(self, name)!r}")
    if self.shots < 0:
      raise errors.ConfigError(f"prompt.shots must be >= 0, got {self.shots}")
    if self.style == "plain" and self.shots:
      raise errors.ConfigError("prompt.shots needs style 'chat' or 'few_shot'")

  @property
  def is_default(self) -> bool:
    return self == PromptConfig()

  def resolve(self, tok) -> PromptConfig:
    """'auto' made concrete for tok; a chat style without a template is a ConfigError."""
    template = getattr(tok, "chat_template", None)
    if self.style == "auto":
      return dataclasses.replace(self, style="chat" if template else "few_shot")
    if self.style == "chat" and not template:
      raise errors.ConfigError(f"prompt.style='chat' but {getattr(tok, 'name', 'the tokenizer')}"
                               " has no chat template: use 'few_shot'")
    return self


# -------------------------------------------------------------------------- chat templates


@functools.lru_cache(maxsize=16)
def _compile(template: str):
  import jinja2  # pylint: disable=g-import-not-at-top
  from jinja2 import sandbox  # pylint: disable=g-import-not-at-top

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                              extensions=["jinja2.ext.loopcontrols"])
  env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False,
                                                                 indent=indent)
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = lambda fmt: __import__("datetime").datetime.now().strftime(fmt)
  return env.from_string(template)


def render_chat(tok, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> str:
  """The tokenizer's chat template applied to messages, as transformers'
  apply_chat_template(tokenize=False) renders it."""
  piece = lambda i: tok.id_to_piece(i) if i is not None and i >= 0 else ""
  return _compile(tok.chat_template).render(
      messages=list(messages), add_generation_prompt=add_generation_prompt,
      bos_token=piece(tok.bos_id), eos_token=piece(tok.eos_id))


def turn_end_id(tok) -> int:
  """The token the chat template closes an assistant turn with (its eos when none)."""
  marker = "Xq7Zr"
  text = render_chat(tok, [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": marker}], False)
  after = text[text.rindex(marker) + len(marker):] if marker in text else ""
  ids = tok.encode(after.strip(" ")) if after.strip() else []
  return int(ids[0]) if ids and ids[0] != tok.sep_id else int(tok.eos_id)


# ------------------------------------------------------------------------------- tokenizer


def task_tokenizer(tok, pcfg: PromptConfig):
  """The pair's tokenizer for a prompt config: unchanged, except in chat style, where eos is
  the template's turn end (the model's eos kept in the serialization as `stop`, and the
  template stored with it, so an export scores and prompts the same way)."""
  if pcfg.style != "chat":
    return tok
  from collab.data import hf_tokenizer  # pylint: disable=g-import-not-at-top
  end = turn_end_id(tok)
  spec = json.loads(tok.model_bytes)
  ids = spec["ids"]
  if end != ids["eos"]:
    ids["stop"] = ids["eos"]
    ids["eos"] = end
    if ids["pad"] == end:  # pad must differ from eos (the rollout tells them apart)
      ids["pad"] = ids.pop("stop")
  spec["chat_template"] = tok.chat_template
  if getattr(tok, "add_bos", None) is not None:
    spec["add_bos"] = bool(tok.add_bos)
  return hf_tokenizer.HFTokenizer(hf_tokenizer._canonical(spec), name=tok.name)  # pylint: disable=protected-access


def _texts_by_id(tok) -> list[str]:
  """Each id's text ('x' for the markup ids past the backend's vocabulary)."""
  backend, sp = getattr(tok, "_tok", None), getattr(tok, "_sp", None)
  if backend is not None:
    base = backend.get_vocab_size(with_added_tokens=True)
    texts = list(backend.decode_batch([[i] for i in range(base)], skip_special_tokens=False))
  elif sp is not None:
    texts = [sp.decode([i]) for i in range(sp.get_piece_size())]
  else:
    texts = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
  texts += ["x"] * (tok.vocab_size - len(texts))
  texts[tok.sep_id] = "\n"
  return texts


_LINE_TOKENS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}


def line_tokens(tok) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(ids whose text has a newline, ids whose text is whitespace only) of tok."""
  if tok.fingerprint not in _LINE_TOKENS:
    texts = _texts_by_id(tok)
    _LINE_TOKENS[tok.fingerprint] = (tuple(i for i, t in enumerate(texts) if "\n" in t),
                                     tuple(i for i, t in enumerate(texts) if t and not t.strip()))
  return _LINE_TOKENS[tok.fingerprint]


# --------------------------------------------------------------------------------- prompts


def answer_text(record: dict[str, Any]) -> str:
  """A record's reference answer as text (TFDS gives bytes; without one, its last line)."""
  answer = record.get("answer", record["steps"][-1])
  return answer.decode() if isinstance(answer, bytes) else str(answer)


def _solution_text(record: dict[str, Any]) -> str:
  """A worked problem's solution as GSM8K writes it: its lines, then `#### N`."""
  return "\n".join(list(record["steps"][:-1]) + [f"#### {answer_text(record)}"])


def wants_bos(tok, text: str) -> bool:
  add = getattr(tok, "add_bos", None)
  # A tokenizer without bos uses its eos (now perhaps a stop id) in its place: none then.
  if add is False or tok.bos_id in (tok.eos_id,) + tuple(getattr(tok, "stop_ids", ())):
    return False
  return not text.startswith(tok.id_to_piece(tok.bos_id))


def prompt_text(tok, pcfg: PromptConfig, question: str,
                shots: Sequence[dict[str, Any]] = ()) -> str:
  """The prompt of one question (chat or few_shot style) as text."""
  if pcfg.style == "chat":
    messages = [{"role": "system", "content": pcfg.system}] if pcfg.system else []
    for r in shots:
      messages += [{"role": "user", "content": r["question"]},
                   {"role": "assistant", "content": _solution_text(r)}]
    messages.append({"role": "user", "content": question})
    return render_chat(tok, messages, True)
  if pcfg.style == "few_shot":
    parts = [f"{FEW_SHOT_QUESTION} {r['question']}\nAnswer:\n{_solution_text(r)}\n\n"
             for r in shots]
    return "".join(parts) + f"{FEW_SHOT_QUESTION} {question}\nAnswer:\n"
  raise ValueError(f"prompt_text has no text for style {pcfg.style!r}")


def prompt_ids(tok, pcfg: PromptConfig, question: str,
               shots: Sequence[dict[str, Any]] = ()) -> list[int]:
  """Prompt ids: bos + question + <sep> (plain), else the text of `prompt_text` encoded, with
  bos first when the model wants one (GGUF add_bos / tokenizer_config add_bos_token, and a
  bos distinct from eos) and the text does not start with it."""
  if pcfg.style == "plain":
    return [tok.bos_id] + tok.encode(question) + [tok.sep_id]
  text = prompt_text(tok, pcfg, question, shots)
  return ([tok.bos_id] if wants_bos(tok, text) else []) + tok.encode(text)


# ------------------------------------------------------------------------------- scoring


_NUMBER = re.compile(r"-?[$€£]?\d[\d,]*(?:\.\d+)?")


def _canonical_number(s: str) -> decimal.Decimal | None:
  s = s.replace(",", "").replace("$", "").replace("€", "").replace("£", "")
  try:
    return decimal.Decimal(s)
  except decimal.InvalidOperation:
    return None


def extract_number(text: str) -> decimal.Decimal | None:
  """GSM8K-style answer of a solution: the first number after the last '####', else the last
  number written; None when there is none."""
  marks = text.rsplit("####", 1)
  if len(marks) == 2:
    found = _NUMBER.findall(marks[1])
    if found:
      return _canonical_number(found[0])
  found = _NUMBER.findall(text)
  return _canonical_number(found[-1]) if found else None


def answers_equal(solution: str, reference: str) -> bool:
  got, want = extract_number(solution), extract_number(reference)
  return got is not None and want is not None and got == want


class NumberScorer:
  """Host scoring of a batch of rollouts (Setup.scorer): the text each row wrote after its
  prompt, cut at `cut` markers (few_shot: the next 'Question:'), answers compared as numbers.
  Hashable by the tokenizer's fingerprint and the markers, so a rollout compiles once per
  tokenizer."""

  def __init__(self, tok, cut: Sequence[str] = ()):
    self.tok = tok
    self.cut = tuple(cut)
    self._key = (tok.fingerprint, self.cut)

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, NumberScorer) and other._key == self._key

  def solution_text(self, ids) -> str:
    text = self.tok.decode(ids)
    for marker in self.cut:
      text = text.split("\n" + marker)[0]
    return text

  def __call__(self, tokens_BxL, length_B, prompt_len_B, answer_BxA) -> np.ndarray:
    tokens_BxL, length_B = np.asarray(tokens_BxL), np.asarray(length_B)
    prompt_len_B, answer_BxA = np.asarray(prompt_len_B), np.asarray(answer_BxA)
    out = np.zeros(length_B.shape, bool)
    for b in range(length_B.shape[0]):
      text = self.solution_text(tokens_BxL[b, prompt_len_B[b]:length_B[b]])
      out[b] = answers_equal(text, self.tok.decode(answer_BxA[b]))
    return out


def scorer(tok, pcfg: PromptConfig) -> NumberScorer | None:
  if pcfg.scoring != "number":
    return None
  return NumberScorer(tok, (FEW_SHOT_QUESTION,) if pcfg.style == "few_shot" else ())
