"""The worlds study's runlocal variant end to end on tiny models: each world trains a gate,
its baselines (threshold, router, line kinds) are computed on its own test problems, and the
analysis writes its table and figure."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/: studies_shared

from studies_shared import run as _run, shared  # noqa: E402,F401


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
  assert "### Headline: the sealed split" in md
  assert os.path.exists(os.path.join(out_dir, "headline.png"))
