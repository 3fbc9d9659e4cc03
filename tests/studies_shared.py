"""What the runlocal study tests share: one workdir per test module (tiny models pretrain
once, baselines are computed once), and a study run end to end with its analysis."""
import importlib
import json
import os

import pytest

from collab.studies import analysis
from collab.studies import report
from collab.studies import runner


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
  """One workdir for every study: tiny models pretrain once, baselines are computed once."""
  root = tmp_path_factory.mktemp("studies")
  return {"workdir": str(root / "work"), "results": str(root / "results"),
          "pretrain": str(root / "pretrain"), "assets": str(root / "assets")}


def run(shared, study, arg=""):
  config = config_of(shared, study, arg)
  result = runner.run_study(config, shared["workdir"])
  out_dir = os.path.join(shared["results"], study)
  summary = analysis.ANALYSES[study](result, out_dir)
  report.write_run_info(out_dir, f"test {study}", 1.0)
  with open(os.path.join(out_dir, "summary.json")) as f:
    assert json.load(f).keys() == summary.keys()
  with open(os.path.join(out_dir, "report.md")) as f:
    return result, summary, f.read(), out_dir


def config_of(shared, study, arg=""):
  config = importlib.import_module(f"configs.studies.{study}").get_config(
      ",".join(a for a in ("runlocal", arg) if a))
  config.pretrain_dir, config.assets_dir = shared["pretrain"], shared["assets"]
  return config
