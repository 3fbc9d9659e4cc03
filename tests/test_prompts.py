"""Prompts and scoring for pretrained models (collab/data/prompts.py): chat templates, the
solution's end taken from the template, few-shot text, steps on non-empty lines, GSM8K answers
compared as numbers on the host inside the rollout's jit."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collab import errors
from collab import pair as pair_lib
from collab import rollout as rollout_lib
from collab.data import hf_tokenizer
from collab.data import prompts
from collab.models import decode
from configs.pairs import hf as hf_pairs
from configs.pairs import qwen2_5

tokenizers = pytest.importorskip("tokenizers")
from tests import test_hf_pipeline as pipeline  # pylint: disable=g-import-not-at-top

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _write_chat_tokenizer(path, texts):
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  tok.train_from_iterator(texts + ["\n\n\n", "  \n"], tokenizers.trainers.BpeTrainer(
      vocab_size=320, special_tokens=SPECIALS, show_progress=False,
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
    json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "bos_token": None,
               "chat_template": CHATML}, f)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  root = tmp_path_factory.mktemp("prompts")
  data = pipeline._write_data(str(root / "gsm8k"))
  texts = [json.loads(l)["question"] + "\n" + json.loads(l)["answer"]
           for l in open(os.path.join(data, "train.jsonl"))]
  os.makedirs(root / "tok")
  _write_chat_tokenizer(str(root / "tok"), texts)
  slm = pipeline._write_model(str(root / "slm"), qwen2_5.TINY["slm"], 0, str(root / "tok"))
  llm = pipeline._write_model(str(root / "llm"), qwen2_5.TINY["llm"], 1, str(root / "tok"))
  return dict(root=root, data=data, slm=slm, llm=llm,
              tok=hf_tokenizer.HFTokenizer.from_dir(slm))


def test_numbers_are_extracted_and_compared_as_numbers():
  eq = prompts.answers_equal
  assert eq("She pays 3 * 4 = 12 dollars.\n#### 12", "12")
  assert eq("#### $1,234.00", "1234") and eq("so the answer is -7.", "-7")
  assert eq("#### 18 apples\nthen 99", "18")  # '####' wins over the last number
  assert eq("3 + 4 = 7", "7") and not eq("3 + 4 = 7", "4")
  assert not eq("no number here", "3") and not eq("", "0")
  assert eq("answer 42", "answer 42")  # the generated task's answer line, too


def test_chat_template_and_turn_end(env):
  tok = env["tok"]
  assert tok.chat_template == CHATML and tok.add_bos is None
  pcfg = prompts.PromptConfig(style="auto", scoring="number").resolve(tok)
  assert pcfg.style == "chat"
  task = prompts.task_tokenizer(tok, pcfg)
  im_end, endoftext = tok.encode("<|im_end|>")[0], tok.encode("<|endoftext|>")[0]
  assert task.eos_id == im_end and task.stop_ids == (endoftext,)
  assert task.pad_id not in (im_end, endoftext) and task.chat_template == CHATML
  # Loading the saved tokenizer (as an export does) gives the same tokenizer and prompts.
  again = hf_tokenizer.HFTokenizer(task.model_bytes)
  assert prompts.task_tokenizer(again, pcfg.resolve(again)).fingerprint == task.fingerprint
  shot = {"question": "Ann has 2 pens.", "steps": ["2 + 1 = 3", "answer 3"], "answer": "3"}
  text = prompts.prompt_text(task, pcfg, "Tom has 4 cards.", [shot])
  assert text == ("<|im_start|>user\nAnn has 2 pens.<|im_end|>\n<|im_start|>assistant\n"
                  "2 + 1 = 3\n#### 3<|im_end|>\n<|im_start|>user\nTom has 4 cards.<|im_end|>\n"
                  "<|im_start|>assistant\n")
  ids = prompts.prompt_ids(task, pcfg, "Tom has 4 cards.", [shot])
  assert ids[0] == tok.encode("<|im_start|>")[0]  # no bos: the tokenizer has none
  assert task.decode(ids[:ids.index(im_end)]) == "<|im_start|>user\nAnn has 2 pens."
  with pytest.raises(errors.ConfigError, match="no chat template"):
    prompts.PromptConfig(style="chat").resolve(hf_tokenizer.HFTokenizer(
        json.dumps(dict(json.loads(tok.model_bytes))).encode()))


def test_few_shot_text_and_scoring_cut():
  pcfg = prompts.PromptConfig(style="few_shot", shots=1, scoring="number")
  shot = {"question": "Ann has 2 pens.", "steps": ["2 + 1 = 3", "answer 3"], "answer": "3"}

  class Tok:
    bos_id, eos_id, sep_id, add_bos = 0, 1, 2, True
    id_to_piece = staticmethod(lambda i: "<s>")
  assert prompts.prompt_text(Tok, pcfg, "Tom?", [shot]) == (
      "Question: Ann has 2 pens.\nAnswer:\n2 + 1 = 3\n#### 3\n\nQuestion: Tom?\nAnswer:\n")
  assert prompts.wants_bos(Tok, "Question:")

  class Decoding:
    fingerprint = "f"
    decode = staticmethod(lambda ids: {1: "4 + 3 = 7\n#### 7\n\nQuestion: 9 pens\nAnswer: 9",
                                       2: "12", 3: "7"}[int(ids[0])])
  scorer = prompts.scorer(Decoding, pcfg)
  assert scorer == prompts.NumberScorer(Decoding, ("Question:",)) and hash(scorer)
  got = scorer(np.array([[9, 1], [9, 1]]), np.array([2, 2]), np.array([1, 1]),
               np.array([[3], [2]]))
  np.testing.assert_array_equal(got, [True, False])  # 7, cut before the next question


def _scripted_apply(script):
  """A stand-in model: the token written at step t is script[b, t + 1]."""
  V = 8

  def apply(params, cfg, tok_Bx1, pos_Bx1, cache, kv_buckets=1):
    nxt = jnp.take_along_axis(script, jnp.minimum(pos_Bx1 + 2, script.shape[1] - 1), 1)
    logits = jax.nn.one_hot(nxt, V) * 10.0
    return logits, jnp.zeros(tok_Bx1.shape + (2,)), cache
  return apply


def test_blank_lines_cost_no_decision(monkeypatch):
  # Ids: 1 eos, 2 sep ('\n'), 3 '\n\n', 4 ' ' (blank), 5 '.\n' (text with a newline), 6, 7 text.
  script = jnp.array([[0, 2, 3, 4, 6, 7, 3, 6, 2, 0, 0],    # blank lines, then '6 7 \n\n'
                      [0, 6, 5, 7, 2, 0, 0, 0, 0, 0, 0],    # '6 .\n': text ending a line
                      [0, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0]])   # blank, then eos
  monkeypatch.setattr(decode.transformer, "apply", _scripted_apply(script))
  logits = jax.nn.one_hot(script[:, 1], 8) * 10.0
  run = lambda **kw: decode.decode_step(
      None, None, None, logits, jnp.zeros((3, 2)), jnp.zeros((3,), jnp.int32),
      jnp.ones((3,), bool), jax.random.key(0), num_tokens=8, end_ids=(1,), pad=0,
      temperature=0.0, **kw)
  toks, lens = run(line_end_ids=(2, 3, 5), blank_ids=(2, 3, 4))[:2]
  assert lens.tolist() == [6, 2, 3]
  assert toks[0, :6].tolist() == [2, 3, 4, 6, 7, 3]
  lens_old = decode.decode_step(
      None, None, None, logits, jnp.zeros((3, 2)), jnp.zeros((3,), jnp.int32),
      jnp.ones((3,), bool), jax.random.key(0), num_tokens=8, end_ids=(1, 2), pad=0,
      temperature=0.0)[1]
  assert lens_old.tolist() == [1, 4, 2]  # without line_end_ids: <sep> alone, even a blank one


def test_chat_pair_rollout_scores_numbers_in_one_jit(env):
  config = hf_pairs.get_config(
      f"runlocal,slm_dir={env['slm']},llm_dir={env['llm']},data_dir={env['data']},shots=1,"
      "prompt_len=160")
  config.assets_dir = str(env["root"] / "assets")
  config.rollout.update(num_steps=2, step_tokens=8, llm_sizes=1, kv_buckets=1)  # a quick compile
  assert config.prompt.to_dict() == dict(style="auto", shots=1, system="", scoring="number",
                                         steps="nonempty_lines")
  pair = pair_lib.load_pair(config)
  tok = pair.tokenizer
  assert tok.eos_id == tok.encode("<|im_end|>")[0] and tok.stop_ids
  setup = pair_lib.make_setup(config, pair)
  sp = setup.specials
  assert sp.eos == tok.eos_id and sp.stops == tok.stop_ids
  assert tok.sep_id in sp.line_ends and tok.sep_id in sp.blanks
  assert isinstance(setup.scorer, prompts.NumberScorer)
  records = pair_lib.load_records(config, pair, "test", 3)
  episodes = pair_lib.make_episodes(config, pair, records)
  first = tok._tok.decode(  # pylint: disable=protected-access (decode stops at eos)
      episodes["prompt_BxP"][0, :episodes["prompt_len_B"][0]].tolist(),
      skip_special_tokens=False)
  assert first.startswith("<|im_start|>user\n") and "####" in first  # one worked example
  assert first.endswith(records[0]["question"] + "<|im_end|>\n<|im_start|>assistant\n")
  assert [tok.decode(a) for a in episodes["answer_BxA"]] == [
      prompts.answer_text(r) for r in records]
  policy = rollout_lib.Policy("self").args(config.rollout.num_steps, setup.gate.actions)
  batch = {k: jnp.asarray(v) for k, v in episodes.items()}
  gate = pair_lib.init_gate(config, pair)
  _, final = rollout_lib.rollout(pair.slm_params, pair.llm_params, gate, batch,
                                 jax.random.key(0), policy, setup=setup)
  want = setup.scorer(final.tokens_BxL, final.length_B, episodes["prompt_len_B"],
                      episodes["answer_BxA"])
  np.testing.assert_array_equal(np.asarray(final.correct_B), want)
  # A row that writes the reference number is correct: score the reference steps themselves.
  ref = np.array(final.tokens_BxL)
  length = np.array(final.length_B)
  for b, r in enumerate(records):
    ids = tok.encode("\n".join(r["steps"][:-1] + [f"#### {r['answer']}"])) + [tok.eos_id]
    p = episodes["prompt_len_B"][b]
    ref[b, p:p + len(ids)] = ids
    length[b] = p + len(ids)
  assert setup.scorer(ref, length, episodes["prompt_len_B"], episodes["answer_BxA"]).all()
