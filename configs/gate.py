"""Gate training and evaluation for one SLM x LLM pair.

  python -m experiments.train_gate --config=configs/gate.py:slm=slm_s,llm=llm_s --workdir=DIR
  python -m experiments.evaluate   --config=configs/gate.py:slm=slm_s,llm=llm_s --workdir=DIR

arg keys: slm, llm (pretraining presets, trained under pretrain_dir when missing), seed,
call_cost, token_cost, privacy_cost, granularity ('line' or 'tokens'), step_tokens, budget,
steps (gate train steps), ppo (clipped epochs per batch; 0 = REINFORCE), eval_problems,
target_calls / target_tokens (budget targets per problem met by dual ascent on the price),
target_mode ('dual': adapt the price in training; 'mixture': train at call_cost, then use the
gate on a calibrated share of problems and SLM alone on the rest),
calls_lr (the dual ascent's step on the call price per call above target),
cost_warmup (steps over which the costs ramp in from 0), train_capacity (rows per device the
LLM serves per training step; 0: all), price_max / price_min (a price-conditioned gate: each
training problem's call price is drawn log-uniformly in [price_min, price_max] and the gate
reads it; evaluation tells it call_cost and each of eval.call_prices; 0: off), explore (the
share of the uniform policy mixed into the sampled gate in training), entropy (the entropy
bonus's coefficient), price_offset (a price-conditioned gate's call logits also carry
-learned scale * price, collab/gating.py), draft_prior (the call logits start as the
confidence-threshold rule on the draft, collab/gating.py), kinds (the request kinds the gate chooses from,
':'-separated, 'self' first), credit ('episode': every decision of an episode shares its reward;
'causal': each decision is charged only the costs from it onwards, rl.causal_advantages),
select (hold out this many training problems and keep the checkpoint of the second half that
scores best on them, collab/train/selection.py; 0: the last), init ('scratch', or 'router': the
gate starts as the supervised router, collab/router.py), feature_layers (the SLM's
hidden states the gate reads: 1, the last layer's; k, also those of the k - 1 layers below),
draft_states (the gate also reads the mean of the SLM's states at its draft's tokens),
heldout (the share of entities held
out for the test problems: no gate-training problem looks their facts up; 0: off), eval_split
('test', or 'sealed' for headline numbers only), eval_skip (leave out the split's first
problems: settings are chosen on test problems apart from those results are reported on),
train_llms (':'-separated LLMs the gate also trains with, in turn with llm, one step
each), runlocal.
Harder worlds (docs/worlds.md): heldout=0.25 (held-out knowledge), llm=llm_fallible (an LLM
with knowledge gaps of its own), slm=slm_arith (an SLM sound at arithmetic).
Word problems (docs/word_problems.md): slm=wp_slm,llm=wp_llm, pretrained here on GSM-Symbolic
(data_dir: their JSONL folder; longer prompts and lines; the line-kind rule reads each line's
kind from the SLM's draft, collab/draft_kinds.py).
Two tokenizers (docs/tokenizers.md): llm=gpt2_uni or slm=slm_s_uni (unigram tokenizers) pair
with a default-tokenizer model; text crosses at step boundaries.
"""
import ml_collections

from collab import config_args
from collab.data import tokenizer as tokenizer_lib
from collab.train import recipes


def get_config(arg=None):
  arg = config_args.parse_arg(
      arg, slm="", llm="", seed=0, call_cost=0.02, token_cost=0.0, privacy_cost=0.0,
      granularity="line", step_tokens=0, budget=8, steps=0, ppo=0, eval_problems=500,
      target_calls=0.0, target_tokens=0.0, cost_warmup=0, train_capacity=0, price_min=0.01,
      price_max=0.0, explore=0.0, entropy=0.05, calls_lr=0.005, target_mode="dual",
      credit="episode", select=0, price_offset=False, draft_prior=False, kinds="self:ask:ask_redacted",
      init="scratch", heldout=0.0, eval_split="test", eval_skip=0, data_dir="",
      feature_layers=1, draft_states=False, train_llms="", runlocal=False)
  config = ml_collections.ConfigDict()
  config.slm = arg.slm or ("test_tiny" if arg.runlocal else "slm_s")
  config.llm = arg.llm or ("gpt2_tiny" if arg.runlocal else "llm_s")
  config.seed = arg.seed
  config.runlocal = arg.runlocal
  pre = recipes.pretrain_config(runlocal=arg.runlocal)
  config.task = pre.task
  if arg.heldout:
    config.task.heldout_entities = arg.heldout
  # The task's data and prompts are in the SLM's ids: its recipe's tokenizer (vocab_size, and
  # tokenizer_type when not the default) and the prompt width that tokenizer needs.
  config.update(recipes.tokenizer_options(config.slm) if config.slm in recipes.RECIPES
                else dict(vocab_size=pre.vocab_size))
  config.assets_dir = pre.assets_dir
  config.pretrain_dir = "runs/pretrain_local" if arg.runlocal else "runs/pretrain"
  slm_tokenizer = config.get("tokenizer_type", tokenizer_lib.DEFAULT_TYPE)
  config.prompt_len = recipes.PROMPT_LEN[slm_tokenizer]

  line = arg.granularity == "line"
  config.rollout = ml_collections.ConfigDict(dict(
      num_steps=8 if line else 80 // (arg.step_tokens or 8),
      step_tokens=arg.step_tokens or (recipes.STEP_TOKENS[slm_tokenizer] if line else 8),
      granularity=arg.granularity, budget=arg.budget, llm_capacity=0,
      slm_temperature=0.0, llm_temperature=0.0,
      # Row counts an LLM call compiles for, and the cache prefixes attention picks from
      # (collab/rollout_types.py): speed, not results.
      llm_sizes=4, kv_buckets=4))
  config.gate = ml_collections.ConfigDict(dict(
      actions=tuple(arg.kinds.split(":")), hidden_dim=64, use_hidden=True, use_draft=True,
      price_input=arg.price_max > 0, price_offset=arg.price_offset,
      draft_prior=arg.draft_prior, explore=arg.explore))
  if arg.feature_layers != 1:  # a key only when on: older configs are what they were
    config.gate.feature_layers = arg.feature_layers
  if arg.draft_states:
    config.gate.draft_states = True
  config.costs = ml_collections.ConfigDict(dict(
      per_call=arg.call_cost, per_llm_token=arg.token_cost, per_private_token=arg.privacy_cost,
      per_call_range=(arg.price_min, arg.price_max)))
  # Budget targets (0: off): the call / LLM-token price becomes a dual variable that training
  # adapts until the gate spends about this much per problem (collab/train/gate.py).
  config.budget_target = ml_collections.ConfigDict(dict(
      calls=arg.target_calls, calls_lr=arg.calls_lr, llm_tokens=arg.target_tokens,
      llm_tokens_lr=0.0002, mode=arg.target_mode))
  config.rl = ml_collections.ConfigDict(dict(
      num_steps=arg.steps or 300, problems_per_step=16, group_size=4, learning_rate=5e-3,
      # With an entropy bonus of 0.01 the gate turns deterministic early and keeps asking at
      # steps it does not need; 0.05 keeps it exploring long enough to drop those asks
      # (docs/design.md, "Training the gate").
      entropy_coef=arg.entropy, ppo_epochs=arg.ppo, clip_eps=0.2, grad_clip=1.0,
      # Dividing by the group's reward std (GRPO) blows the cost noise of groups where no
      # sample succeeds up to full-size advantages, which drove the gate to never ask.
      normalize_std=False,
      # 'causal': a decision's advantage leaves out the costs of earlier decisions, which its
      # action cannot change (reward-to-go); 'episode': the whole episode's reward.
      credit=arg.credit,
      # Problems neither model was pretrained on; evaluation uses the test split.
      split="validation", num_train_problems=1000,
      # Rows per device the LLM serves per step in training (0: all). Asks over it fall
      # back to the SLM's draft; evaluation serves every row (config.rollout.llm_capacity).
      # Off by default: overflow drops random asks, which blurs which asks paid off.
      llm_capacity=arg.train_capacity,
      # 'router': the gate starts as the supervised router of eval.router (collab/router.py).
      init=arg.init,
      # Steps over which every cost ramps in linearly from 0 (0: full costs from the start).
      cost_warmup_steps=arg.cost_warmup,
      # Checkpoint selection (collab/train/selection.py): the last N training problems are held
      # out; of the checkpoints from select_from * num_steps on (every ckpt_every steps), the
      # one with the best held-out reward is kept (0: the last step's).
      select_problems=arg.select, select_from=0.5, select_prices=5))
  if arg.train_llms:  # a key only when on: older configs are what they were
    config.rl.extra_llms = tuple(arg.train_llms.split(":"))
  config.eval = ml_collections.ConfigDict(dict(
      # skip: leave out the split's first `skip` problems (choose settings on test problems
      # apart from those results are reported on).
      # eval_split 'sealed': the headline problems no setting was chosen on (collab/data/task.py).
      split=arg.eval_split, skip=arg.eval_skip, num_problems=arg.eval_problems, batch_size=128,
      random_rates=(0.125, 0.25, 0.5),
      thresholds=(-0.05, -0.2, -0.5, -1.0, -2.0), every_k=(2, 3), fixed_steps=((0,), (0, 2)),
      # Prices a price-conditioned gate is evaluated at (each one a point of its curve).
      call_prices=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
      # More confidence thresholds, log-spaced (baselines.fine_thresholds); with the listed
      # ones they make the threshold's curve and convex hull (collab/hull.py).
      fine_thresholds=24,
      # Fitted on the gate's training problems (rl.split; collab/fitted_baselines.py), 0: off.
      # The line-kind rule: kinds chosen greedily on this many problems.
      line_kinds=ml_collections.ConfigDict(dict(problems=200)),
      # The supervised router: features of `problems` problems' rollouts (collect: 'oracle'
      # or 'slm_alone', collab/router.py), `steps` Adam steps, run at each cut-off on its
      # probability that the draft is wrong, and at the cut-offs where it asks at each of
      # `ask_shares` of its training decisions.
      router=ml_collections.ConfigDict(dict(
          problems=500, steps=300, lr=3e-3, collect="oracle",
          thresholds=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
          ask_shares=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7)))))
  config.log_every = 10
  config.ckpt_every = 50
  config.max_to_keep = 2
  # A step with a NaN/inf loss or gradients: 'stop' (keeps the last checkpoint) or 'skip'.
  config.on_nonfinite = "stop"
  if arg.select:
    config.ckpt_every = 25

  if config.slm in recipes.RECIPES and recipes.get_recipe(config.slm).data:
    recipes.word_problem_gate_options(config)
    config.data_dir = arg.data_dir or config.data_dir

  if arg.runlocal:
    # Tiny models on a CPU: one call size and the whole cache compile in a third of the time.
    config.rollout.update(llm_sizes=1, kv_buckets=1)
    config.rl.update(num_steps=arg.steps or 4, problems_per_step=8, group_size=2,
                     num_train_problems=64)
    # The fitted baselines are off (each is many rollouts more per evaluation, in every test
    # that evaluates); tests/test_evaluate.py turns them on at these sizes.
    config.eval.update(num_problems=16, batch_size=16, fine_thresholds=0)
    config.eval.line_kinds.problems = 0
    config.eval.router.update(problems=16 if arg.init == "router" else 0, steps=50,
                              thresholds=(0.25, 0.5, 0.75), ask_shares=(0.5,))
    config.log_every = 2
    config.ckpt_every = 2
  return config


def get_sweep(hyper=None):
  """Cost sweep of the default pair (a Pareto curve of accuracy against calls)."""
  return [{"config": f"configs/gate.py:call_cost={c}"} for c in (0.0, 0.01, 0.02, 0.05, 0.1)]
