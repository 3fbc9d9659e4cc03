"""The studies' runlocal variants end to end on tiny models: scaling (with its trends),
constraints, granularity and budget, the frontier that pools them, and REPORT.md. The
transfer study runs in tests/test_studies.py (the fast suite)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/: studies_shared

from collab.studies import analysis  # noqa: E402
from collab.studies import report  # noqa: E402
from collab.studies import runner  # noqa: E402
from studies_shared import config_of as _config, run as _run, shared  # noqa: E402,F401


def test_scaling_study_runlocal(shared):
  result, summary, md, out_dir = _run(shared, "scaling")
  assert len(result["runs"]) == 4  # 2 SLMs x 1 LLM x 2 seeds
  assert set(summary["pairs"]) == {"test_tiny__gpt2_tiny", "gpt2_tiny__gpt2_tiny"}
  assert set(summary["claims"]["slm_more_self_reliant"]) == {"gpt2_tiny"}
  assert summary["claims"]["slm_more_self_reliant"]["gpt2_tiny"]["n"] == 4
  assert os.path.exists(os.path.join(out_dir, "scaling.png"))
  assert "### Scaling grid" in md and "### Dynamic against static" in md
  # Rerunning resumes: nothing is trained or evaluated again, results are identical.
  again = runner.run_study(_config(shared, "scaling"), shared["workdir"])
  assert again["runs"] == result["runs"]




def test_constraints_study_runlocal(shared):
  _, summary, md, out_dir = _run(shared, "constraints")
  assert {"call=0", "call=0.2", "token=0.01", "privacy=0.05"} <= set(summary["settings"])
  assert summary["privacy"]["pairs"][0]["privacy_cost"] == 0.05
  assert os.path.exists(os.path.join(out_dir, "constraints.png"))
  # The capped gate meets the baselines run under its own budget of 1 call, not in the sweep.
  cap = summary["settings"]["cap=1"]
  assert cap["budget"] == 1 and max(p["calls"]["mean"]
                                     for p in cap["baselines_capped"].values()) <= 1.0
  assert summary["capped"]["cap=1"]["budget"] == 1 and "Hard budget of 1 call" in md
  assert not any(p["setting"] == "cap=1" for p in summary["pareto_per_seed"]["points"])


def test_granularity_and_budget_studies_runlocal(shared):
  _, summary, md, _ = _run(shared, "granularity")
  assert {s["granularity"] for s in summary["settings"].values()} == {"line", "tokens"}
  _, summary, md, _ = _run(shared, "budget")
  assert sorted(p[1] for p in summary["points"]) == [1.0, 10.0]
  assert "| calls | dual | 1 |" in md
  frontier = analysis.analyze_frontier(shared["results"],
                                       os.path.join(shared["results"], "frontier"))
  # Cost-sweep gates (no privacy cost) and budget gates of the one runlocal pair, pooled.
  (pair, entry), = frontier["pairs"].items()
  assert pair == "test_tiny x gpt2_tiny"
  settings = {p["setting"] for p in entry["points"]}
  assert {"constraints: call=0", "budget: calls=1"} <= settings
  assert not any("privacy" in s for s in settings)
  text = report.build_report(shared["results"], os.path.join(shared["results"], "REPORT.md"))
  for section in ("## Frontier", "## Constraints", "## Granularity", "## Budget"):
    assert section in text
  # Transfer runs in tests/test_studies.py, worlds and the headline in
  # tests/e2e/test_worlds_e2e.py, into other modules' results.
  assert text.count("Not run yet") == 3 and "## Worlds\n\nNot run yet." in text
  assert "## Headline\n\nNot run yet." in text
  assert "Command: `test budget`" in text
