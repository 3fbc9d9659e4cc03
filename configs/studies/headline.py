"""The headline numbers, on the sealed split only (collab/data/task.py, problems no setting was
chosen on): in each world, a price-conditioned gate told the price at which it asks at a share
`rate` of its steps (calibrated on held-out training problems), against every rival at equal
calls (collab/studies/headline.py). The default world repeats with each pretraining seed of
its pair (slm_s / llm_s, slm_s_p1 / llm_s_p1, ...: models and gate seeded alike); the other
worlds run 3 gate seeds on pretraining seed 0's models.
arg keys: worlds (':'-separated of default, heldout, fallible, arith; word_problems on request:
the GSM-Symbolic pair, scored on its sealed split of the training generators' fresh problems),
rate (the share of steps asked), pretrain_seeds (pairs of the default world), steps, seeds,
data_dir (the word problems' JSONL, with sealed.jsonl), wp_prices (the word-problem gate's
price range, min:max), wp_pretrain_seeds (1: 3 gate seeds on wp_slm / wp_llm; n > 1: one pair
per pretraining seed, wp_slm_p1 / wp_llm_p1, ..., as the default world), gate (more
configs/gate.py args for every gate, ':'-separated, e.g. draft_states=True:steps=480; the
settings are then named <world>+<args>, as in configs/studies/worlds.py), runlocal.

The gate recipe is the one chosen on test problems for price-conditioned gates (REPORT.md,
Constraints: causal credit, the price-offset head, checkpoint selection on 200 held-out
training problems); nothing here was tuned on the sealed split.

  python -m experiments.study --config=configs/studies/headline.py --workdir=runs/studies/headline
"""
from configs.studies import _common as common
from configs.studies import worlds as worlds_config

GATE = "price_min=0.01,price_max=1.0,price_offset=True,credit=causal,select=200"
LOCAL_GATE = "price_min=0.01,price_max=1.0,price_offset=True,select=8"
# The word-problem pair's price range (arg wp_prices, min:max) is a decade either side of what
# a call is worth there: the LLM's lead on validation problems over its calls, (9.0% - 3.7%) /
# 4.7 lines = 0.011 (results/word_problems). Trained on 0.01-1 the gate asked at 1.4% of steps
# at its lowest price, on 0.0003-0.03 at 75-87% at every price (held-out training problems).
WP_PRICES = "0.001:0.1"


def get_config(arg=None):
  arg = common.parse(arg, worlds=":".join(worlds_config.WORLDS), rate=0.25, pretrain_seeds=3,
                     steps=200, data_dir="", wp_prices=WP_PRICES, wp_pretrain_seeds=1,
                     gate="")
  config = common.base_config("headline", arg)
  # Rivals are compared at the gate's calls, uncapped: no baselines under the rollout's budget
  # (the word-problem pair's 8 calls of 15 steps, which the gate at a quarter never reaches).
  config.capped_baselines = False
  config.base_arg = (common.LOCAL_BASE + ",eval_split=sealed" if arg.runlocal
                     else f"steps={arg.steps},eval_problems=300,eval_split=sealed")
  if arg.runlocal:
    config.fitted_problems = 16
  worlds = worlds_config.world_names(arg.worlds)
  if not 0 < arg.rate < 1:
    raise ValueError(f"rate is a share of steps in (0, 1), got {arg.rate}")
  pairs = worlds_config.world_pairs(arg.runlocal, heldout=0.25, data_dir=arg.data_dir)
  more, suffix = common.more_gate_args(arg.gate)
  gate = ",".join([LOCAL_GATE if arg.runlocal else GATE] + more)
  target = ("call_rate", float(arg.rate))
  later = []
  def per_pretrain_seed(world: str, slm: str, llm: str, count: int, extra: str = ""):
    # One pair per pretraining seed, its gate seeded alike: pretraining is a source of
    # variance as much as the gate's seed. Seeds > 0 run last (their models may still be
    # pretraining when the study starts).
    for p in range(count):
      tag = "" if p == 0 else f"_p{p}"
      (later if p else config.runs).append({
          "name": f"{world}_p{p}{suffix}__s{p}", "setting": f"{world}_p{p}{suffix}",
          "arg": f"slm={slm}{tag},llm={llm}{tag},{gate}{extra},seed={p}", "eval_llms": (),
          "price_target": target})

  for world in worlds:
    if world == "default" and not arg.runlocal:
      per_pretrain_seed(world, "slm_s", "llm_s", arg.pretrain_seeds)
      continue
    extra = ""
    if world == "word_problems" and not arg.runlocal:
      low, _, high = arg.wp_prices.partition(":")
      extra = f",price_min={low},price_max={high}"
      if arg.wp_pretrain_seeds > 1:
        data = f",data_dir={arg.data_dir}" if arg.data_dir else ""
        per_pretrain_seed(world, "wp_slm", "wp_llm", arg.wp_pretrain_seeds, extra + data)
        continue
    common.add_runs(config, world + suffix, f"{pairs[world]},{gate}{extra}",
                    price_target=target)
  config.runs.extend(later)
  return config
