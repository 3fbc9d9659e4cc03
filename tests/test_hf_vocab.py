"""Imported checkpoints whose embedding the tokenizer's ids overflow get rows added (as
transformers' resize_token_embeddings), every architecture field is checked against the pair
config, and a pair config can take its architectures from the checkpoints."""
import json
import os

import jax
import numpy as np
import pytest

from collab import errors
from collab import hf_pair
from collab import pair as pair_lib
from collab.models import hf_io
from collab.models import transformer as tfm
from configs.pairs import hf as hf_pairs
from configs.pairs import qwen2_5

tokenizers = pytest.importorskip("tokenizers")
from tests import test_hf_pipeline as pipeline  # pylint: disable=g-import-not-at-top

FIELDS = dict(qwen2_5.TINY["slm"], tie_word_embeddings=False)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("vocab")
  data = pipeline._write_data(str(root / "gsm8k"))
  texts = [json.loads(l)["question"] + "\n" + json.loads(l)["answer"]
           for l in open(os.path.join(data, "train.jsonl"))]
  os.makedirs(root / "tok")
  pipeline._write_tokenizer(str(root / "tok"), texts)
  with open(root / "tok" / "tokenizer.json") as f:
    base = len(json.load(f)["model"]["vocab"])  # the backend's pieces, no markup
  # Embeddings exactly as large as the vocabulary: no room for the five markup ids.
  slm = pipeline._write_model(str(root / "slm"), dict(FIELDS, vocab_size=base), 0,
                              str(root / "tok"))
  llm = pipeline._write_model(str(root / "llm"),
                              dict(qwen2_5.TINY["llm"], vocab_size=base), 1, str(root / "tok"))
  return dict(root=root, data=data, slm=slm, llm=llm, base=base)


def test_resize_vocab_adds_mean_rows_and_keeps_old_logits():
  cfg = hf_io.config_from_hf(dict(FIELDS, vocab_size=64))
  params = jax.device_get(tfm.init_params(cfg, jax.random.key(0)))
  grown, cfg2 = hf_io.resize_vocab(params, cfg, 69)
  assert cfg2.vocab_size == 69
  emb, head = grown["embed"]["embedding"], grown["lm_head"]["kernel"]
  assert emb.shape == (69, cfg.d_model) and head.shape == (cfg.d_model, 69)
  np.testing.assert_allclose(emb[64:], np.broadcast_to(emb[:64].mean(0), (5, cfg.d_model)),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(head[:, 64:], np.broadcast_to(head[:, :64].mean(1, keepdims=True),
                                                           (cfg.d_model, 5)), rtol=1e-5, atol=1e-7)
  ids = np.array([[1, 5, 9, 63]])
  pos = tfm.default_positions(ids)
  old = tfm.apply(params, cfg, ids, pos)[0]
  new = tfm.apply(grown, cfg2, ids, pos)[0]
  np.testing.assert_allclose(np.asarray(new)[..., :64], np.asarray(old), atol=1e-5)
  assert hf_io.resize_vocab(params, cfg, 64) == (params, cfg)
  with pytest.raises(ValueError):
    hf_io.resize_vocab(params, cfg, 60)


def test_full_embedding_is_resized_and_recorded(dirs):
  config = hf_pairs.get_config(
      f"runlocal,slm_dir={dirs['slm']},llm_dir={dirs['llm']},data_dir={dirs['data']}")
  config.assets_dir = str(dirs["root"] / "assets")
  pair = pair_lib.load_pair(config)
  tok = pair.tokenizer
  assert tok.vocab_size > dirs["base"]  # the markup ids are past the checkpoint's rows
  assert pair.slm_cfg.vocab_size == pair.llm_cfg.vocab_size == tok.vocab_size
  assert pair.slm_params["embed"]["embedding"].shape[0] == tok.vocab_size
  assert pair.slm_params["lm_head"]["kernel"].shape[1] == tok.vocab_size  # untied SLM
  added = tok.vocab_size - dirs["base"]
  assert pair.vocab == {
      "rows": tok.vocab_size,
      "SLM": {"checkpoint_rows": dirs["base"], "rows_added": added, "rows_cropped": 0,
              "added_init": "mean of the checkpoint's rows"},
      "LLM": {"checkpoint_rows": dirs["base"], "rows_added": added, "rows_cropped": 0,
              "added_init": "mean of the checkpoint's rows"}}
  # The pair runs: every id the tokenizer emits has a row.
  episodes = pair_lib.make_episodes(config, pair, pair_lib.load_records(config, pair, "test", 2))
  assert episodes["prompt_BxP"].max() < pair.slm_cfg.vocab_size


def test_derived_config_reads_config_json(dirs):
  config = hf_pairs.get_config(f"slm_dir={dirs['slm']},llm_dir={dirs['llm']}")
  assert (config.slm, config.llm) == ("slm", "llm")
  with open(os.path.join(dirs["slm"], "config.json")) as f:
    assert config.models.slm.to_dict() == json.load(f)
  with pytest.raises(ValueError, match="slm_dir is required"):
    hf_pairs.get_config(f"llm_dir={dirs['llm']}")


@pytest.mark.parametrize("field,value,name", [
    ("rms_norm_eps", 1e-5, "norm_eps"), ("max_position_embeddings", 99, "max_len"),
    ("rope_theta", 5e5, "rope_theta"), ("tie_word_embeddings", True, "tie_embeddings")])
def test_every_architecture_field_is_checked(dirs, field, value, name):
  config = hf_pairs.get_config(f"runlocal,slm_dir={dirs['slm']},llm_dir={dirs['llm']}")
  config.models.slm[field] = value
  with pytest.raises(errors.CheckpointError, match=name):
    pair_lib.load_pair(config)


def test_float32_metadata_matches_its_config():
  cfg = hf_io.config_from_hf(dict(FIELDS, rms_norm_eps=1e-5))
  f32 = cfg.replace(norm_eps=float(np.float32(1e-5)))  # as a GGUF file stores it
  hf_pair._check_architecture(f32, cfg, "here")  # pylint: disable=protected-access


def test_assets_dir_defaults_under_the_workdir(dirs, tmp_path):
  config = hf_pairs.get_config(
      f"runlocal,slm_dir={dirs['slm']},llm_dir={dirs['llm']},data_dir={dirs['data']}")
  assert config.assets_dir == ""
  with pytest.raises(errors.ConfigError, match="assets_dir"):
    pair_lib.load_records(config, None, "test", 2)
  resolved = pair_lib.resolve_assets_dir(config, str(tmp_path / "run"))
  assert resolved.assets_dir == str(tmp_path / "run" / "assets") and config.assets_dir == ""
  assert pair_lib.resolve_assets_dir(resolved, "elsewhere") is resolved
  assert len(pair_lib.load_records(resolved, None, "test", 2)) == 2
  assert os.path.isdir(tmp_path / "run" / "assets" / "gsm8k")
