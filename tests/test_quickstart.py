"""The quickstart's whole loop (pretrain, gate, evaluation, tables) on tiny runlocal presets."""
import json
import os

from collab.train import quickstart
from configs import gate as gate_configs


def test_quickstart_loop_on_tiny_presets(tmp_path):
  workdir = str(tmp_path / "qs")
  summary = quickstart.run(workdir, gate_configs.get_config("runlocal,eval_problems=8"))
  assert set(summary["pretrain"]) == {"test_tiny", "gpt2_tiny"}
  assert {"gate", "slm_alone", "llm_alone", "oracle"} <= set(summary["collaboration"])
  with open(os.path.join(workdir, "results.md")) as f:
    text = f.read()
  assert "## Pretraining" in text and "| gate |" in text
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["wall_seconds"] > 0
  assert os.path.exists(os.path.join(workdir, "gate", "pareto.png"))
