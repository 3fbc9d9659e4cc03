"""What every study config shares: folders, the gate settings, seeds, and the runlocal shrink.

A study config holds its sweep (big_vision style): `config.runs` lists one dict per gate to
train, {name, setting, arg, eval_llms}; runs of one setting differ only by seed. `arg` is a
configs/gate.py argument string added to `config.base_arg`.
"""
import ml_collections

from collab import config_args

# Gate training and evaluation size of the full studies on a 2-core CPU: a gate trains in
# ~2-3 minutes, a policy evaluates on 300 test problems in ~10 s.
FULL_BASE = "steps=120,eval_problems=300"
LOCAL_BASE = "runlocal,steps=2,eval_problems=8"


def parse(arg, **defaults) -> ml_collections.ConfigDict:
  # first_seed: seeds first_seed .. first_seed + seeds - 1 (new seeds beside a finished run).
  return config_args.parse_arg(arg, seeds=3, first_seed=0, runlocal=False, **defaults)


def base_config(study: str, arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.study = study
  config.runlocal = arg.runlocal
  config.base_arg = LOCAL_BASE if arg.runlocal else FULL_BASE
  # Pretrained models of the grid and their shared data + tokenizer (built when missing).
  config.pretrain_dir = "runs/studies_local/pretrain" if arg.runlocal else "runs/grid"
  config.assets_dir = "runs/studies_local/assets" if arg.runlocal else "runs/qs2/assets"
  count = 1 if arg.runlocal and arg.seeds == 3 else arg.seeds
  config.seeds = tuple(range(arg.first_seed, arg.first_seed + count))
  config.runs = []
  return config


def more_gate_args(gate: str) -> tuple[list[str], str]:
  """A study's `gate` arg (':'-separated configs/gate.py args for every gate): the args, and
  the suffix that names its settings (<world>+<args>, '=' dropped)."""
  more = [a for a in gate.split(":") if a]
  return more, "".join("+" + a.replace("=", "") for a in more)


def add_runs(config, setting: str, arg: str, eval_llms=(), *, shared_gate: str = "",
             call_price: float | None = None, gate_dir: str = "gate",
             price_target: tuple[str, float] | None = None) -> None:
  """One run per seed of a setting. shared_gate: settings with the same shared_gate evaluate
  one trained gate per seed (folder <shared_gate>__s<seed>), told `call_price`, or the price
  that meets `price_target` (('calls' | 'llm_tokens', per problem)) on held-out training
  problems. gate_dir: which of its saved params ('gate_last': the last step's, beside a
  selected 'gate')."""
  for seed in config.seeds:
    run = {"name": f"{setting}__s{seed}", "setting": setting,
           "arg": ",".join(a for a in (arg, f"seed={seed}") if a),
           "eval_llms": tuple(eval_llms)}
    if shared_gate:
      run.update(train_name=f"{shared_gate}__s{seed}", call_price=call_price)
    if price_target:
      run.update(price_target=tuple(price_target))
    if gate_dir != "gate":
      run.update(gate_dir=gate_dir)
    config.runs.append(run)
