"""Trains the help-seeking gate of an SLM x LLM pair: see configs/gate.py, and
experiments/training_cli.py for --resume / --overwrite, preemption and multi-process start-up."""
from absl import flags

from collab.train import gate
from experiments import training_cli

flags.adopt_module_key_flags(training_cli)  # --helpshort lists them

if __name__ == "__main__":
  training_cli.run(gate.train)
