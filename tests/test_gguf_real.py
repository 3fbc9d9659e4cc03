"""Parity on the real GGUF files (SmolLM2-135M-Instruct Q4_1, Gemma 3 270M Q4_K_M) against
transformers loading the same files (gguf_file=): logits on 5 prompts of 64-512 tokens to
float32 tolerance, 64 greedy tokens equal (SmolLM2 on chat-template prompts, Gemma 3 after BOS,
one prompt long enough that decoding crosses Gemma's 512-token sliding window), and the
tokenizers equal on a few hundred strings.

The files are not in the repository: `make real-models` fetches them into .cache/real_models/
(collab/models/real_models.py). Without them every test here skips at once, saying so.
"""
import functools
import os

import pytest

import jax
import jax.numpy as jnp
import numpy as np

from collab.models import decode
from collab.models import gguf_io
from collab.models import real_models
from collab.models import transformer as tfm

PATHS = {name: real_models.find(name) for name in real_models.MODELS}
# Skipped test by test (a module-level skip would leave pytest with no test and exit 5); torch
# and transformers are imported only when a file is there.
pytestmark = pytest.mark.skipif(not any(PATHS.values()), reason="real GGUF files absent: " + (
    "; ".join(real_models.missing_reason(n) for n in PATHS)))


@functools.lru_cache(maxsize=None)
def _hf():
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  pytest.importorskip("accelerate")
  transformers.utils.logging.disable_progress_bar()
  transformers.utils.logging.set_verbosity_error()
  torch.set_num_threads(2)
  return torch, transformers


# Max |logit diff| allowed: float32 tolerance at these logit scales (|logits| up to ~30-40).
TOL = 1e-3
LENGTHS = (64, 160, 300, 450, 512)
N_NEW = 64
TEXT = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May? In April she sold "
    "48 clips. In May she sold 48 / 2 = 24 clips. Altogether she sold 48 + 24 = 72 clips. "
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
    "babysitting. How much did she earn? Weng earns 12 / 60 = $0.2 per minute. Working 50 "
    "minutes, she earned 0.2 x 50 = $10. Betty is saving money for a new wallet which costs "
    "$100. Betty has only half of the money she needs. Her parents decided to give her $15 for "
    "that purpose, and her grandparents twice as much as her parents. How much more money does "
    "Betty need to buy the wallet? The history of the printing press begins in the fifteenth "
    "century, when movable type made books cheaper; within fifty years millions of copies "
    "circulated across Europe, changing how ideas spread. ")
QUESTIONS = [
    "Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, "
    "she read twice as many pages as yesterday. How many pages does she have left?",
    "What is the capital of France? Answer in one sentence.",
    "Write a short poem about the sea.",
]


def _need(name):
  if PATHS[name] is None:
    pytest.skip(real_models.missing_reason(name))
  return PATHS[name]


@functools.lru_cache(maxsize=None)
def _ours(name):
  params, cfg, tok = gguf_io.load_gguf(_need(name))
  return jax.tree.map(jnp.asarray, params), cfg, tok


@functools.lru_cache(maxsize=None)
def _theirs(name):
  torch, transformers = _hf()
  path = _need(name)
  kw = dict(gguf_file=os.path.basename(path))
  model = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), dtype=torch.float32, **kw).eval()
  return model, transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), **kw)


def _prompt_ids(name, n):
  """n ids: (BOS +) the text repeated, cut to length."""
  _, _, tok = _ours(name)
  ids = tok.encode(TEXT * (1 + 4 * n // len(TEXT)))
  if tok.add_bos:
    ids = [tok.bos_id] + ids
  assert len(ids) >= n
  return ids[:n]


_apply = jax.jit(tfm.apply, static_argnames="cfg")


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_logits_match_transformers_on_five_prompts(name):
  torch, _ = _hf()
  params, cfg, _ = _ours(name)
  model, _ = _theirs(name)
  T = max(LENGTHS)  # one compile: each prompt right-padded to T (causal: padding is unseen)
  errs, scale = [], 0.0
  for n in LENGTHS:
    ids = _prompt_ids(name, n)
    with torch.no_grad():
      ref = model(torch.tensor([ids])).logits[0].numpy()
    padded = jnp.asarray([ids + [0] * (T - n)], jnp.int32)
    ours, _, _ = _apply(params, cfg, padded, tfm.default_positions(padded))
    errs.append(float(np.abs(np.asarray(ours[0, :n]) - ref).max()))
    scale = max(scale, float(np.abs(ref).max()))
    del ref, ours
  print(f"{name}: max |logit diff| per prompt {dict(zip(LENGTHS, errs))}, logit scale "
        f"{scale:.1f}")
  assert max(errs) < TOL, errs


def _render_chat(template, question):
  import jinja2  # pylint: disable=g-import-not-at-top
  env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
  return env.from_string(template).render(
      messages=[{"role": "user", "content": question}], add_generation_prompt=True)


def test_smollm2_greedy_tokens_with_chat_template_match_transformers():
  params, cfg, tok = _ours("smollm2")
  model, ref_tok = _theirs("smollm2")
  assert tok.chat_template and "<|im_start|>" in tok.chat_template
  prompts = []
  for q in QUESTIONS:
    ids = tok._encode_plain([_render_chat(tok.chat_template, q)])[0]  # pylint: disable=protected-access
    want = ref_tok.apply_chat_template([{"role": "user", "content": q}],
                                       add_generation_prompt=True, tokenize=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert ids == list(want)
    prompts.append(ids)
  # 64 tokens per prompt: eos (<|im_end|>) does not stop either side.
  _greedy_rows_match(params, cfg, model, prompts, stop_id=-1, name="smollm2")


def test_gemma3_greedy_tokens_with_bos_match_transformers():
  params, cfg, tok = _ours("gemma3")
  model, _ = _theirs("gemma3")
  assert tok.add_bos and tok.bos_id == 2
  # The second prompt is 480 tokens: its continuation crosses the 512-token sliding window.
  prompts = [[tok.bos_id] + tok.encode(QUESTIONS[0]), _prompt_ids("gemma3", 480)]
  _greedy_rows_match(params, cfg, model, prompts, stop_id=-1, name="gemma3")


def _greedy_rows_match(params, cfg, model, prompts, *, stop_id, name):
  torch, _ = _hf()
  B, P = len(prompts), max(len(p) for p in prompts)
  padded = np.zeros((B, P), np.int32)
  for i, p in enumerate(prompts):
    padded[i, :len(p)] = p
  ours, len_B = decode.generate(params, cfg, padded, np.array([len(p) for p in prompts]),
                                max_new_tokens=N_NEW, stop_id=stop_id, pad_id=0)
  ours, len_B = np.asarray(ours), np.asarray(len_B)
  for i, p in enumerate(prompts):
    with torch.no_grad():
      out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p)),
                           max_new_tokens=N_NEW, do_sample=False, pad_token_id=0,
                           eos_token_id=None if stop_id < 0 else stop_id)
    ref = out[0, len(p):].numpy()
    print(f"{name} prompt {i} ({len(p)} tokens): {len(ref)} greedy tokens, ours {len_B[i]}, "
          f"equal {np.array_equal(ours[i, :len(ref)], ref)}")
    np.testing.assert_array_equal(ours[i, :len_B[i]], ref)
  if stop_id < 0:
    assert (len_B == N_NEW).all()


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_tokenizer_matches_transformers_on_real_vocabularies(name):
  _hf()
  _need(name)
  from test_gguf import _strings, check_tokenizer  # pylint: disable=g-import-not-at-top
  _, _, tok = _ours(name)
  texts = _strings() + [TEXT, TEXT[:200] + "\n\n" + TEXT[200:400]] + QUESTIONS
  check_tokenizer(tok, PATHS[name], texts)
  for t in texts[:100]:
    if "<" not in t and "\r" not in t:
      assert tok.decode(tok.encode(t)) == t, t
