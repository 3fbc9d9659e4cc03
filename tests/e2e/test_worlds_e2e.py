"""The worlds study's runlocal variant end to end on tiny models: each world trains a gate,
its baselines (threshold, router, line kinds) are computed on its own test problems, and the
analysis writes its table and figure."""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/: studies_shared

from collab.studies import analysis  # noqa: E402
from collab.studies import runner  # noqa: E402
from studies_shared import config_of, run as _run, shared  # noqa: E402,F401


def test_worlds_study_runlocal(shared):
  result, summary, md, out_dir = _run(shared, "worlds")
  assert set(summary["settings"]) == {"default", "heldout", "fallible", "arith"}
  pairs = {name: (s["slm"], s["llm"]) for name, s in summary["settings"].items()}
  assert pairs == {"default": ("test_tiny", "gpt2_tiny"), "heldout": ("test_tiny", "gpt2_tiny"),
                   "fallible": ("test_tiny", "test_tiny_fallible"),
                   "arith": ("test_tiny_arith", "gpt2_tiny")}
  # The held-out world runs its own test problems: its baselines are its own.
  keys = {r["setting"]: r["baselines"]["gpt2_tiny"] for r in result["runs"]
          if "gpt2_tiny" in r["baselines"]}
  assert keys["heldout"] != keys["default"] and keys["heldout"] in result["baselines"]
  assert os.path.exists(os.path.join(out_dir, "worlds.png"))
  assert "### Worlds where when-to-ask is hard to judge" in md and "| heldout |" in md
  assert set(summary["rivals"]["fallible"]) == {"threshold", "router", "line_kind"}


def test_headline_study_runlocal_runs_on_the_sealed_split(shared):
  # Its own workdir: its runs share the worlds study's names but train other gates
  # (price-conditioned); the pretrained tiny models and assets are shared.
  result, summary, md, out_dir = _run(dict(shared, workdir=shared["workdir"] + "_headline"),
                                      "headline")
  assert {r["world"] for r in summary["rows"]} == {"default", "heldout", "fallible", "arith"}
  for r in result["runs"]:
    assert r["budget_target"]["mode"] == "price" and r["budget_target"]["call_rate"] == 0.25
    assert "__sealed" in r["baselines"][r["llm"]]  # its own baselines, sealed problems
  assert all(b["split"] == "sealed" for b in result["baselines"].values())
  assert "### Headline: the sealed split, at a quarter of the steps asked" in md
  assert all(r["target_rate"] == 0.25 for r in summary["rows"])
  assert os.path.exists(os.path.join(out_dir, "headline.png"))
  # The same protocol on other problems (where a setting is chosen) says so in its report.
  analysis.ANALYSES["headline"](dict(result, base_arg="steps=2,eval_skip=500"), out_dir + "_v")
  with open(os.path.join(out_dir + "_v", "report.md")) as f:
    assert "### Headline protocol: not the sealed split, at" in f.read()


def test_worlds_study_runlocal_on_word_problems(shared, tmp_path):
  """The second task family as a world: its tiny pair pretrains on the JSONL (data_dir), the
  gate meets the threshold, the router and the line-kind rule (kinds read from the SLM's
  draft) on held-out generators' problems."""
  import fake_word_problems  # pylint: disable=g-import-not-at-top
  data_dir = fake_word_problems.write(str(tmp_path / "jsonl"), train=200, validation=40)
  config = config_of(shared, "worlds")
  config.runs = importlib.import_module("configs.studies.worlds").get_config(
      f"runlocal,worlds=word_problems,data_dir={data_dir}").runs
  result = runner.run_study(config, shared["workdir"] + "_wp")
  out_dir = os.path.join(shared["results"], "worlds_wp")
  summary = analysis.ANALYSES["worlds"](result, out_dir)
  assert set(summary["settings"]) == {"word_problems"}
  s = summary["settings"]["word_problems"]
  assert (s["slm"], s["llm"]) == ("wp_tiny", "wp_tiny")
  assert summary["rivals"]["word_problems"].keys() == {"threshold", "router", "line_kind"}
  kinds = [name for name, b in s["baselines"].items() if b["family"] == "line_kind"]
  assert kinds and all(k.startswith("kinds_") for k in kinds)
  assert s["baselines"]["slm_alone"]["accuracy"]["mean"] >= 0


def test_headline_study_runlocal_on_word_problems_sealed_split(shared, tmp_path):
  """GSM-Symbolic's headline row: the price-conditioned gate and its rivals on the word
  problems' sealed split (fresh problems of the training generators)."""
  import fake_word_problems  # pylint: disable=g-import-not-at-top
  data_dir = fake_word_problems.write(str(tmp_path / "jsonl"), train=200, validation=40,
                                      sealed=16)
  config = config_of(shared, "headline")
  config.runs = importlib.import_module("configs.studies.headline").get_config(
      f"runlocal,worlds=word_problems,data_dir={data_dir}").runs
  result = runner.run_study(config, shared["workdir"] + "_wp_headline")
  summary = analysis.ANALYSES["headline"](result, os.path.join(shared["results"], "wp_head"))
  assert [r["world"] for r in summary["rows"]] == ["word_problems"]
  for r in result["runs"]:
    assert (r["slm"], r["llm"]) == ("wp_tiny", "wp_tiny")
    assert "__sealed" in r["baselines"]["wp_tiny"]
    # Its gate has a hard budget (8 of 15 steps), but the headline compares at equal calls only:
    # no baselines under that budget are run.
    assert r["budget"] < 15  # the word problems' steps
    assert r["baselines_capped"] == {}
  assert all(b["split"] == "sealed" and b["num_problems"] == 16
             for b in result["baselines"].values())
