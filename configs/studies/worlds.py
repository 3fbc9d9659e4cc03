"""Worlds where when-to-ask is hard to judge (docs/worlds.md): the gate against the threshold,
the supervised router and the line-kind rule in the default world, with held-out knowledge,
with a fallible LLM, and with an SLM sound at arithmetic; on request, word problems (the second
task family, whose line-kind rule reads each line's kind from the SLM's draft). arg keys: worlds (':'-separated of default, heldout, fallible,
arith, word_problems), data_dir (the word problems' JSONL), heldout (the share of entities held
out), call_cost, gate (more configs/gate.py args for every gate, ':'-separated, e.g. steps=480:init=router;
the settings are then named <world>+<args>), seeds, first_seed, runlocal.

  python -m experiments.study --config=configs/studies/worlds.py --workdir=runs/studies/worlds
"""
from configs.studies import _common as common

WORLDS = ("default", "heldout", "fallible", "arith")
# Named only when asked for: the second task family (docs/word_problems.md), its pair
# pretrained on GSM-Symbolic word problems; its test problems are held-out generators'.
OPTIONAL_WORLDS = ("word_problems",)


def get_config(arg=None):
  arg = common.parse(arg, worlds=":".join(WORLDS), heldout=0.25, call_cost=0.02, gate="",
                     data_dir="")
  config = common.base_config("worlds", arg)
  if arg.runlocal:  # the rivals are the point: fitted on 16 problems (runlocal has them off)
    config.fitted_problems = 16
  pairs = world_pairs(arg.runlocal, arg.heldout, arg.data_dir)
  worlds = world_names(arg.worlds)
  extra, suffix = common.more_gate_args(arg.gate)
  for world in worlds:
    common.add_runs(config, world + suffix,
                    ",".join([pairs[world], f"call_cost={arg.call_cost}"] + extra))
  return config


def world_pairs(runlocal: bool, heldout: float, data_dir: str = "") -> dict[str, str]:
  """configs/gate.py args of each world's pair (tiny models with runlocal). data_dir: the word
  problems' JSONL folder (default: configs/gate.py's)."""
  slm, llm = ("test_tiny", "gpt2_tiny") if runlocal else ("slm_s", "llm_s")
  fallible = "test_tiny_fallible" if runlocal else "llm_fallible"
  arith = "test_tiny_arith" if runlocal else "slm_arith"
  wp_slm, wp_llm = ("wp_tiny", "wp_tiny") if runlocal else ("wp_slm", "wp_llm")
  return {"default": f"slm={slm},llm={llm}",
          "heldout": f"slm={slm},llm={llm},heldout={heldout}",
          "fallible": f"slm={slm},llm={fallible}",
          "arith": f"slm={arith},llm={llm}",
          "word_problems": f"slm={wp_slm},llm={wp_llm}"
                           + (f",data_dir={data_dir}" if data_dir else "")}


def world_names(arg: str) -> list[str]:
  """The worlds of a ':'-separated `worlds` arg, checked."""
  worlds = [w for w in arg.split(":") if w]
  if not worlds or set(worlds) - set(WORLDS + OPTIONAL_WORLDS):
    raise ValueError(f"worlds must be ':'-separated names of {WORLDS + OPTIONAL_WORLDS}, got "
                     f"{arg!r}")
  return worlds
