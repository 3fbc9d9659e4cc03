"""Constraints: call-cost, LLM-token-cost and privacy-cost sweeps on one pair.

  python -m experiments.study --config=configs/studies/constraints.py --workdir=runs/studies/constraints

Setting names are '<swept cost>=<value>': the analysis draws one Pareto line per swept cost.
With privacy costs, 'plain_ask=<call cost>' is a reference gate that may not redact: how much
exposure the requests carry when nothing steers them to `ask_redacted`.
arg keys: slm, llm, seeds, call_costs / token_costs / privacy_costs / caps (':'-separated
lists; a cap is a hard budget of calls per problem, trained at call cost CAP_CALL_COST),
warmup (gate steps over which call and token costs ramp in), steps (gate steps; 0: the study
default), explore / entropy (the gates' exploration floor and entropy bonus), credit ('episode' or
'causal': how the gates' advantages charge costs, configs/gate.py), price_range
('low:high': also train one price-conditioned gate per seed and evaluate it at each of
eval_prices: settings 'price=p'), price_offset (that gate's call logits carry -learned scale
* price, configs/gate.py), draft_prior (its call logits start as the confidence threshold),
select (that gate holds out this many training problems and keeps its best checkpoint on them,
collab/train/selection.py), last (evaluate that gate's last step instead of the selected one:
the paired control of `select`), runlocal.
"""
from configs.studies import _common as common

CALL_COSTS = "0:0.02:0.05:0.1:0.2:0.4"
TOKEN_COSTS = "0.001:0.003:0.01"
PRIVACY_COSTS = "0.01:0.05"
PRIVACY_CALL_COST = 0.1
PRIVACY_WARMUP = 40  # gate steps (of 120) over which privacy runs ramp their costs in
CAPS = ""
EVAL_PRICES = "0.02:0.05:0.1:0.2:0.3:0.5"
CAP_CALL_COST = 0.02
# Price-gate head options (configs/gate.py flags) and the tag each adds to its gate's folder.
HEAD_FLAGS = (("price_offset", "offset"), ("draft_prior", "draft"))


def _floats(s: str) -> tuple[float, ...]:
  return tuple(float(x) for x in s.split(":") if x)


def get_config(arg=None):
  arg = common.parse(arg, slm="slm_s", llm="llm_l", call_costs=CALL_COSTS,
                     token_costs=TOKEN_COSTS, privacy_costs=PRIVACY_COSTS, caps=CAPS, warmup=0,
                     steps=0, explore=0.0, entropy=0.0, credit="", price_range="",
                     price_offset=False, draft_prior=False, select=0, last=False,
                     eval_prices=EVAL_PRICES)
  config = common.base_config("constraints", arg)
  pair = "slm=test_tiny,llm=gpt2_tiny" if arg.runlocal else f"slm={arg.slm},llm={arg.llm}"
  pair += "".join(f",{k}={arg[k]}" for k in ("steps", "explore", "entropy", "credit")
                  if arg[k])
  head = [(k, tag) for k, tag in HEAD_FLAGS if arg[k]]
  cond = "".join(f",{k}=True" for k, _ in head)
  if arg.select:
    head.append(("select", f"sel{arg.select}"))
    cond += f",select={arg.select}"
  elif arg.last:
    raise ValueError("last=True evaluates the last step of a gate trained with select=N")
  calls, tokens, privacy, caps = ((0.0, 0.2), (0.01,), (0.05,), (1,)) if arg.runlocal else (
      _floats(arg.call_costs), _floats(arg.token_costs), _floats(arg.privacy_costs),
      tuple(int(c) for c in _floats(arg.caps)))
  # Raising a price from 0 lets the gate first find the steps worth asking at; a high price
  # from step 0 collapses it to never asking before any ask has paid off.
  ramp = f",cost_warmup={arg.warmup}" if arg.warmup else ""
  for c in calls:
    common.add_runs(config, f"call={c:g}", f"{pair},call_cost={c}{ramp}")
  for t in tokens:
    common.add_runs(config, f"token={t:g}", f"{pair},call_cost=0,token_cost={t}{ramp}")
  for b in caps:
    common.add_runs(config, f"cap={b}", f"{pair},call_cost={CAP_CALL_COST},budget={b}")
  prices = (0.01, 0.5) if arg.runlocal and arg.price_range else _floats(arg.price_range)
  if prices:  # one gate per seed, a point per price it is told
    lo, hi = prices
    for p in ((0.05,) if arg.runlocal else _floats(arg.eval_prices)):
      common.add_runs(config, f"price={p:g}", f"{pair},price_min={lo},price_max={hi}{cond}",
                      shared_gate=f"cond{lo:g}-{hi:g}" + "".join(f"-{t}" for _, t in head),
                      call_price=p, gate_dir="gate_last" if arg.last else "gate")
  if privacy and not arg.runlocal:  # the reference that may only ask plainly (runlocal: no,
    # to keep the test's compiles few; tests/test_studies.py checks the analysis on its own)
    common.add_runs(config, f"plain_ask={PRIVACY_CALL_COST:g}",
                    f"{pair},call_cost={PRIVACY_CALL_COST},kinds=self:ask")
  for p in privacy:  # costs ramp in: from the first step they collapse the gate to self
    common.add_runs(config, f"privacy={p:g}", f"{pair},call_cost={PRIVACY_CALL_COST},"
                    f"privacy_cost={p},cost_warmup={PRIVACY_WARMUP}")
  return config
