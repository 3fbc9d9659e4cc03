"""The benchmarks' --quick runs end to end: each prints one JSON object last (and writes it
with --out), with the keys and ratios the README's tables read."""
import json

import pytest

from benchmarks import attention
from benchmarks import call_rate
from benchmarks import decode_profile
from benchmarks import hf_generate
from benchmarks import real_decode
from benchmarks import roofline
from benchmarks import rollout as rollout_bench
from benchmarks import torch_rollout
from collab.models import real_models


def _last_json(capsys):
  lines = capsys.readouterr().out.strip().splitlines()
  return json.loads(lines[-1])


def test_rollout_quick(capsys, tmp_path):
  out = tmp_path / "rollout.json"
  rollout_bench.main(["--quick", "--out", str(out)])
  result = _last_json(capsys)
  assert result == json.loads(out.read_text())
  for key in ("tokens_per_s", "speedup_vs_python_loop", "speedup_vs_torch", "batch", "slm",
              "llm", "device"):
    assert key in result
  assert result["tokens_per_s"] > 0 and result["speedup_vs_python_loop"] > 0
  assert result["python_loop"]["outputs_equal"]
  # Bucketed attention (the default) writes what attention over the whole cache writes.
  assert result["kv_buckets"] > 1 and result["speedup_vs_whole_cache"] > 0
  assert result["jitted_whole_cache"]["rows_identical"] == 1.0
  if torch_rollout.IMPORT_ERROR:
    assert result["speedup_vs_torch"] is None and result["torch"]["skipped"]
  else:
    assert result["speedup_vs_torch"] > 0 and result["torch"]["calls_equal"]
    assert result["torch"]["rows_identical"] >= 0.75  # float rounding may flip a rare token


def test_call_rate_quick(capsys):
  call_rate.main(["--quick"])
  result = _last_json(capsys)
  rates = [row["rate"] for row in result["rates"]]
  assert rates == list(call_rate.RATES)
  assert result["llm_cost_ratio_at_1_8"] > 0
  assert all(row["overflow"] == 0 for row in result["rates"])
  assert result["rates"][0]["llm_flops"] == 0 and result["rates"][0]["calls"] == 0


def test_roofline_quick(capsys):
  roofline.main(["--quick"])
  result = _last_json(capsys)
  assert 0 < result["rollout_fraction_of_peak"] and 0 < result["train_fraction_of_peak"]
  assert result["rollout_peak_memory_bytes"] > 0 and result["train_peak_memory_bytes"] > 0
  assert len(result["scaling"]) == 3


def test_attention_quick(capsys):
  attention.main(["--quick"])
  result = _last_json(capsys)
  assert len(result["points"]) == 4
  for point in result["points"]:
    assert point["chosen"] in ("broadcast", "matmul") and point["best"] in attention.FORMS
    assert all(point[f"{form}_s"] > 0 for form in attention.FORMS)
    assert max(point["max_abs_diff"].values()) < 1e-4


needs_smollm2 = pytest.mark.skipif(not real_models.find("smollm2"),
                                   reason=real_models.missing_reason("smollm2"))


@needs_smollm2
def test_real_decode_quick(capsys, tmp_path):
  out = tmp_path / "real_decode.json"
  real_decode.main(["--quick", "--out", str(out)])
  result = _last_json(capsys)
  assert result == json.loads(out.read_text())
  (row,) = result["per_batch"]
  assert row["ours"]["tokens_per_s"] > 0 and row["ours"]["compile_s"] > 0
  assert row["ours"]["xla_memory"]["peak_bytes"] > 0 and result["maxrss_bytes"] > 0
  # With itself as helper at 1 step in 8, the greedy rollout writes what greedy decoding writes.
  assert row["rollout"]["call_rate"] == 1 / 8
  assert row["rollout"]["tokens_vs_ours"]["rows_identical"] == 1.0
  if hf_generate.unavailable_reason():
    assert result["transformers"]["skipped"] and "hf_dynamic" not in row
  else:
    for cache in hf_generate.CACHES:
      assert row[f"speedup_vs_hf_{cache}"] > 0
      assert row[f"hf_{cache}"]["tokens_vs_ours"]["rows_identical"] == 1.0


@needs_smollm2
def test_decode_profile_quick(capsys):
  decode_profile.main(["--quick"])
  result = _last_json(capsys)
  for key in ("prefill_s", "step_s", "matmul_floor_float32_s", "matmul_floor_bfloat16_s"):
    assert result["ours"][key] > 0
  if not hf_generate.unavailable_reason():
    assert result["hf"]["step_s"] > 0 and result["step_speedup_bound_float32"] > 0
