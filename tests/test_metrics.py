"""MetricsWriter / read_metrics / Progress, and the training loop's progress lines."""
import io
import os

import jax.numpy as jnp
import numpy as np
import pytest

from collab.train import loop
from collab.train import metrics as metrics_lib


def test_jsonl_and_tensorboard_written_and_read_back(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    writer.write(1, {"loss": jnp.float32(2.5), "acc": np.float64(0.25), "n": 3})
    writer.write(2, {"loss": jnp.array(1.5)})
    writer.write_text(2, "sample", "2 + 2 = 4")
  rows = metrics_lib.read_metrics(tmp_path)
  assert rows == [{"step": 1, "loss": 2.5, "acc": 0.25, "n": 3.0}, {"step": 2, "loss": 1.5}]
  assert all(type(v) is float for v in rows[0].values() if v != 1)
  events = os.listdir(tmp_path / "tb")
  assert any(name.startswith("events.out.tfevents") for name in events), events
  assert os.path.getsize(tmp_path / "tb" / events[0]) > 0


def test_rejects_non_scalar_and_reserved_step(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    with pytest.raises(ValueError, match="scalar"):
      writer.write(1, {"loss": np.ones(3)})
    with pytest.raises(ValueError, match="reserved"):
      writer.write(1, {"step": 1})


def test_truncated_last_line_tolerated_and_appending_resumes_cleanly(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    writer.write(1, {"loss": 1.0})
    writer.write(2, {"loss": 0.5})
  path = tmp_path / metrics_lib.METRICS_FILE
  path.write_bytes(path.read_bytes()[:-7])  # a crash mid-row
  with pytest.warns(UserWarning, match="truncated"):
    assert metrics_lib.read_metrics(tmp_path) == [{"step": 1, "loss": 1.0}]
  # A resumed run appends on a fresh line, so its rows stay readable.
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    writer.write(2, {"loss": 0.4})
  with pytest.warns(UserWarning):
    rows = metrics_lib.read_metrics(tmp_path)
  assert rows == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.4}]


def test_disabled_writer_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  with metrics_lib.MetricsWriter(workdir, enabled=False) as writer:
    writer.write(1, {"loss": 1.0})
    writer.write_text(1, "t", "x")
    writer.flush()
  assert not workdir.exists()
  assert metrics_lib.read_metrics(workdir) == []


def test_progress_prints_rate_eta_and_metrics():
  out = io.StringIO()
  progress = metrics_lib.Progress(100, every=10, file=out)
  assert progress.update(0, {"loss": 3.0}) is not None  # first line: no rate yet
  assert progress.update(5, {"loss": 2.0}) is None      # between prints
  line = progress.update(10, {"loss": 1.23456, "acc": 0.5})
  assert line.startswith("step  10/100 | ")
  assert "steps/s" in line and "ETA" in line and "loss 1.235 acc 0.5" in line
  assert progress.update(100) is not None  # the last step always prints
  assert out.getvalue().count("\n") == 3


class _Checkpointer:
  def latest_step(self):
    return None

  def wait(self):
    pass


@pytest.mark.parametrize("start_step", [0, 3])
def test_loop_says_when_the_first_step_is_done_then_every_log_every(tmp_path, capsys,
                                                                    start_step):
  saved = []
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    outcome = loop.run(loop.Cadence(num_steps=10, log_every=5, ckpt_every=5), start_step,
                       lambda step: {"finite": True, "loss": float(step)},
                       save=saved.append, checkpointer=_Checkpointer(), writer=writer,
                       workdir=str(tmp_path))
  lines = capsys.readouterr().out.splitlines()
  assert outcome.step == 10 and saved == [5, 10]
  assert lines[0].startswith(f"step {start_step + 1}/10 done in ") and "compile" in lines[0]
  assert [line.split(" |")[0] for line in lines[1:]] == ["step  5/10", "step 10/10"]
  assert [row["step"] for row in metrics_lib.read_metrics(tmp_path)] == [5, 10]
