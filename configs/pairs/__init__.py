"""Configs of real SLM x LLM pairs imported from Hugging Face checkpoints (see
docs/real_models.md). Each file lists its family's published architectures; `pair_config` builds the
gate config plus the checkpoint directories, the data directory and the TPU mesh."""
import os

import ml_collections

from collab import config_args
from collab.models import hf_io
from collab.models import sharding


# Prompts and scoring (collab/data/prompts.py): the generated task's by default.
PLAIN = dict(prompt="plain", shots=0, scoring="line", step_split="lines")
# What fits pretrained models: their chat template (few-shot text without one), steps on
# non-empty lines, GSM8K answers compared as numbers.
PRETRAINED = dict(prompt="auto", shots=0, scoring="number", step_split="nonempty_lines")


def pair_config(arg, *, family: str, sizes: dict | None, tiny: dict | None, slm: str,
                llm: str, prompt: dict | None = None):
  """The gate config of family-slm x family-llm (sizes: name -> config.json fields).

  sizes=None: the architectures are read from the checkpoints themselves (slm_dir/llm_dir:
  config.json, or a GGUF file's metadata), and the models are named after them.
  runlocal: tiny random stand-ins of the same architecture (tiny: 'slm'/'llm' -> fields) and
  one device, for tests; point slm_dir/llm_dir at checkpoints written with hf_io.save_hf."""
  from configs import gate as gate_configs  # configs/ is a top-level package
  arg = config_args.parse_arg(
      arg, slm=slm, llm=llm, slm_dir="", llm_dir="", data_dir="", tpu="v5e-8", model_axis=0,
      seed=0, call_cost=0.02, steps=0, eval_problems=500, runlocal=False, prompt_len=0,
      **(prompt or PLAIN))
  if sizes is None:  # derived from the checkpoints
    from collab import hf_pair  # pylint: disable=g-import-not-at-top
    for role in ("slm", "llm"):
      if not arg[f"{role}_dir"]:
        raise ValueError(f"{role}_dir is required: the architecture is read from the "
                         "checkpoint's config.json (or GGUF metadata)")
    fields = {role: hf_pair.architecture_fields(arg[f"{role}_dir"]) for role in ("slm", "llm")}
    sizes, tiny = {"slm": fields["slm"], "llm": fields["llm"]}, fields
    names = {role: os.path.basename(os.path.normpath(arg[f"{role}_dir"])) for role in fields}
    arg.slm, arg.llm = "slm", "llm"
  else:
    names = {role: f"{family}-{arg[role].upper()}" for role in ("slm", "llm")}
  for role in ("slm", "llm"):
    if arg[role] not in sizes:
      raise ValueError(f"Unknown {family} size {arg[role]!r}; valid: {sorted(sizes)}")
  if arg.tpu not in sharding.TPUS:
    raise ValueError(f"Unknown TPU slice {arg.tpu!r}; valid: {sorted(sharding.TPUS)}")
  config = gate_configs.get_config(
      f"seed={arg.seed},call_cost={arg.call_cost},steps={arg.steps},"
      f"eval_problems={arg.eval_problems}" + (",runlocal" if arg.runlocal else ""))
  config.slm = "tiny-slm" if arg.runlocal else names["slm"]
  config.llm = "tiny-llm" if arg.runlocal else names["llm"]
  # Local Hugging Face checkpoint directories (config.json, safetensors, tokenizer) and a
  # GSM8K-style JSONL directory (train.jsonl, test.jsonl, optional validation.jsonl).
  config.slm_hf_dir = arg.slm_dir
  config.llm_hf_dir = arg.llm_dir
  config.data_dir = arg.data_dir
  # Empty: WORKDIR/assets (the data prepared for TFDS; collab/pair.resolve_assets_dir).
  config.assets_dir = ""
  # The architectures, so shapes, memory and the mesh are known without weights; loading
  # checks a directory's config.json against them.
  config.models = ml_collections.ConfigDict({
      "slm": tiny["slm"] if arg.runlocal else sizes[arg.slm],
      "llm": tiny["llm"] if arg.runlocal else sizes[arg.llm]})
  # GSM8K-length problems: longer prompts and lines than the generated task.
  config.prompt_len = arg.prompt_len or (64 if arg.runlocal else 256)
  config.prompt = ml_collections.ConfigDict(dict(
      style=arg.prompt, shots=arg.shots, system="", scoring=arg.scoring,
      steps=arg.step_split))
  config.rollout.update(num_steps=4 if arg.runlocal else 10,
                        step_tokens=16 if arg.runlocal else 64)
  config.gate.actions = ("self", "ask")  # GSM8K has no private spans to redact
  config.rl.split = "train"  # GSM8K has train and test (validation is optional)
  config.eval.split = "test"

  # runlocal: this machine's CPU, one device.
  tpu = dict(num_devices=1, hbm_gib=24) if arg.runlocal else sharding.TPUS[arg.tpu]
  llm_cfg = hf_io.config_from_hf(config.models.llm.to_dict())
  model = arg.model_axis or sharding.plan_model_axis(llm_cfg, tpu["num_devices"],
                                                     tpu["hbm_gib"] * 2**30)
  if tpu["num_devices"] % model:
    raise ValueError(f"model_axis={model} does not divide {tpu['num_devices']} devices")
  config.mesh = ml_collections.ConfigDict(dict(
      tpu="cpu" if arg.runlocal else arg.tpu, num_devices=tpu["num_devices"],
      hbm_gib=tpu["hbm_gib"],
      data=tpu["num_devices"] // model, model=model,  # the mesh ('data', 'model')
      slm_model_axis=1,  # the SLM is replicated: it fits every device
      llm_model_axis=model))  # the LLM's params are split this many ways
  return config
