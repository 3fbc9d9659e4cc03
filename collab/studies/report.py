"""REPORT.md: every study's tables and figures, with the command and machine that made them."""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
from typing import Any, Callable, Sequence

from collab.studies import summaries as sm
from collab.studies import verdicts

STUDIES = ("headline", "frontier", "scaling", "transfer", "constraints", "granularity", "budget",
           "worlds")
# Further runs of a study, each in its own results/<name>/, shown after the study's section.
VARIANTS = {
    "headline": (("headline_word_problems",
                  "Headline: word problems (GSM-Symbolic), the sealed split"),
                 ("headline_fallible_val", "Headline protocol: a fallible LLM on test "
                                           "problems 500-799, the headline's gate"),
                 ("headline_draft_states_val", "Headline protocol: a fallible LLM on test "
                                               "problems 500-799, the gate reading the "
                                               "draft's states, trained 480 steps"),
                 ("headline_fallible_val_r375", "Headline protocol at 37.5% of steps: a "
                                                "fallible LLM on test problems 500-799, the "
                                                "headline's gate"),
                 ("headline_draft_states_val_r375", "Headline protocol at 37.5% of steps: a "
                                                    "fallible LLM on test problems 500-799, "
                                                    "the gate reading the draft's states"),
                 ("headline_draft_states_r375", "Headline at 37.5% of steps: a fallible LLM, "
                                                "the gate reading the draft's states, the "
                                                "sealed split")),
    "scaling": (("scaling_causal", "Scaling: causal credit"),),
    "transfer": (("transfer_tokenizers", "Transfer across tokenizers and lineages"),
                 ("transfer_tokenizers_uni", "Transfer across tokenizers: a unigram SLM"),
                 ("transfer_tokenizers_strong",
                  "Transfer across tokenizers: two strong LLMs, a unigram SLM")),
    "constraints": (
        ("constraints_tokens", "Constraints: LLM-token cost sweep"),
        ("constraints_select", "Constraints: price gate with checkpoint selection"),
        ("constraints_last", "Constraints: the same gates' last steps (selection's control)"),
        ("constraints_privacy", "Constraints: privacy cost, seeds 3-5")),
    "granularity": (("granularity_causal", "Granularity: causal credit, 3 seeds"),),
    "budget": (("budget_causal", "Budget: causal credit, dual ascent against price calibration"),),
    "worlds": (("worlds_fallible_long", "Worlds: a fallible LLM, gates trained 480 steps"),
               ("worlds_default_long", "Worlds: the default world, gates trained 480 steps"),
               ("word_problems", "Word problems (GSM-Symbolic): the pair's gap"),
               ("worlds_word_problems", "Worlds: word problems (GSM-Symbolic), the gate "
                                        "against its rivals"),
               ("worlds_features_base", "Worlds: test problems 500-799, the study's gate"),
               ("worlds_features", "Worlds: test problems 500-799, gates reading three SLM "
                                   "layers"),
               ("worlds_draft_states", "Worlds: test problems 500-799, gates reading the "
                                       "draft's states"),
               ("worlds_draft_prior", "Worlds: test problems 500-799, the draft's states "
                                      "and the draft prior"),
               ("worlds_features_fallible_base", "Worlds: a fallible LLM on test problems "
                                                 "500-799, the study's gate"),
               ("worlds_draft_states_fallible", "Worlds: a fallible LLM on test problems "
                                                "500-799, gates reading the draft's states"),
               ("worlds_features_fallible_long", "Worlds: a fallible LLM on test problems "
                                                 "500-799, gates trained 480 steps"),
               ("worlds_draft_states_fallible_long", "Worlds: a fallible LLM on test problems "
                                                     "500-799, gates reading the draft's "
                                                     "states, trained 480 steps"),
               ("worlds_router_start", "Worlds: test problems 500-799, gates started from "
                                       "the supervised router"),
               ("worlds_draft_states_fallible_confirm", "Worlds: a fallible LLM, gates "
                                                        "reading the draft's states, trained "
                                                        "480 steps (confirmation)"))}
# Runs on other problems than their study's (settings are chosen there): said in their rows.
OTHER_PROBLEMS = dict.fromkeys(
    ("worlds_features_base", "worlds_features", "worlds_draft_states", "worlds_draft_prior",
     "worlds_features_fallible_base", "worlds_draft_states_fallible",
     "worlds_features_fallible_long", "worlds_draft_states_fallible_long",
     "worlds_router_start", "headline_fallible_val", "headline_draft_states_val",
     "headline_fallible_val_r375", "headline_draft_states_val_r375"),
    "test problems 500-799")


def machine() -> dict[str, Any]:
  import jax
  return {"platform": platform.platform(), "processor": platform.processor() or "unknown",
          "cpus": os.cpu_count(), "jax": jax.__version__,
          "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}


def write_run_info(out_dir: str, command: str, seconds: float, resumed: bool = False) -> None:
  """resumed: the command went on from an earlier run of itself, whose seconds are added (a
  study resumed, or rerun to redo its analysis, keeps its compute time)."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "run_info.json")
  if resumed and os.path.exists(path):
    with open(path) as f:
      before = json.load(f)
    if before.get("command") == command:
      seconds += before.get("seconds", 0.0)
  info = {"command": command, "seconds": round(seconds, 1), "machine": machine(),
          "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
  with open(path, "w") as f:
    json.dump(info, f, indent=1)


def section_titles() -> dict[str, str]:
  """results/<dir> name -> the title of its REPORT.md section."""
  titles = {s: s.capitalize() for s in STUDIES}
  titles.update({d: t for variants in VARIANTS.values() for d, t in variants})
  return titles


def build_report(results_dir: str = "results", path: str = "REPORT.md",
                 preamble: str = "") -> str:
  """The verdict table (verdict_table), then results/<study>/report.md of every
  study (figure links made relative to the report)."""
  parts = ["# collab: experiments on the paper's claims", "",
           "Generated by `python -m experiments.report` from `results/<study>/`; every section "
           "names the command that regenerates it and the machine it ran on.", ""]
  if preamble:
    parts += [preamble.rstrip(), ""]
  parts += ["## Verdicts", "", verdict_table(results_dir), ""]
  rel = os.path.relpath(results_dir, os.path.dirname(os.path.abspath(path)) or ".")
  sections = [(s, s.capitalize(), True) for s in STUDIES]
  sections = [x for sec in sections
              for x in [sec] + [(d, t, False) for d, t in VARIANTS.get(sec[0], ())]]
  for study, title, always in sections:
    d = os.path.join(results_dir, study)
    md, info_path = os.path.join(d, "report.md"), os.path.join(d, "run_info.json")
    if not always and not os.path.exists(md):
      continue  # a variant not run: no section
    parts += [f"## {title}", ""]
    if not os.path.exists(md):
      parts += ["Not run yet.", ""]
      continue
    with open(md) as f:
      text = f.read()
    text = text.replace("](", f"]({rel}/{study}/").replace(f"]({rel}/{study}/http", "](http")
    if os.path.exists(info_path):
      with open(info_path) as f:
        info = json.load(f)
      m = info["machine"]
      parts += [f"Command: `{info['command']}` ({info['seconds'] / 60:.0f} min, "
                f"{info['date']}; {m['cpus']} CPUs, {m['devices']}, jax {m['jax']}).", ""]
    parts += [text, ""]
  out = "\n".join(parts)
  with open(path, "w") as f:
    f.write(out)
  return out


# --------------------------------------------------------------------------- verdict table

CLAIM_STATIC = "1. A learned gate beats static pipelines and standalone models"
CLAIM_RIVALS = ("1. ... and matches or beats the strongest rivals: a confidence threshold, "
                "random asking")
CLAIM_PRIVACY = "4a. A privacy cost steers requests to redaction"
CLAIM_PRICES = "4b. Prices shape the strategy"
CLAIM_BUDGET = "4b. Budget targets are met"
CLAIM_WORLDS = ("5. Learning when to ask beats the strongest rivals (threshold, supervised "
                "router, line-kind rule) at equal calls")
CLAIM_HEADLINE = ("Headline: on the sealed split, at {share} of the steps asked, the gate "
                  "beats the best rival at equal calls")
# The headline's protocol run on test problems, where a recipe for the sealed split is chosen.
CLAIM_HEADLINE_CHOICE = ("Headline protocol on test problems (choosing a recipe): at {share} "
                         "of the steps asked, the gate beats the best rival at equal calls")
BUDGET_MODES = {"price": "a price-conditioned gate told a calibrated price",
                "dual": "dual ascent on the price in training",
                "mixture": "a gate used on a calibrated share of the problems"}


def anchor(title: str) -> str:
  """The GitHub anchor of a markdown heading."""
  return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def verdict_rows(results_dir: str) -> list[dict[str, str]]:
  """Rows of the verdict table: claim, setting, effect, ci, seeds, verdict, section."""
  titles, rows = section_titles(), []
  v = verdicts
  load = lambda study: v.load(results_dir, study)  # noqa: E731

  def link(*studies: str) -> str:
    return ", ".join(f"[{titles.get(s, s)}](#{anchor(titles.get(s, s))})" for s in studies)

  def row(claim, setting, r=None, seeds="-", section="", verdict=None):
    r = r or {"effect": "-", "ci": "-", "verdict": v.NOT_RUN}
    rows.append({"claim": claim, "setting": setting, "effect": r["effect"], "ci": r["ci"],
                 "seeds": seeds, "verdict": verdict or r["verdict"], "section": section})

  def study_row(claim: str, study: str, setting: Callable[[dict], str] | str,
                compute: Callable[[dict], dict], seeds: Callable[[dict], str] | None = None,
                also: Sequence[str] = ()) -> None:
    summary = load(study)
    if summary is None:
      row(claim, setting if isinstance(setting, str) else "-", section=f"results/{study}")
      return
    setting = setting if isinstance(setting, str) else setting(summary)
    # Other runs of the same claim: their verdicts beside the setting.
    others = [f"{link(o)}: {compute(load(o))['verdict']}" for o in also if load(o)]
    row(claim, setting + (f" (also {'; '.join(others)})" if others else ""), compute(summary),
        seeds(summary) if seeds else v.seeds_text(v.seeds_of(summary)), link(study))

  if load("headline") is None:
    row(CLAIM_HEADLINE.format(share="a quarter"),
        "default, held-out knowledge, fallible LLM, SLM sound at arithmetic",
        section="results/headline")
  for study in ("headline",) + tuple(d for d, _ in VARIANTS["headline"]):
    claim, where = ((CLAIM_HEADLINE_CHOICE, f" ({OTHER_PROBLEMS[study]})")
                    if study in OTHER_PROBLEMS else (CLAIM_HEADLINE, ""))
    for r in (load(study) or {}).get("rows", []):
      row(claim.format(share=sm.steps_share(r.get("target_rate"))),
          f"{r['world']} world{where}", v.claim_headline(r),
          v.seeds_text(r["seeds"]), link(study))

  pair = v.pair_name(load("constraints"))
  study_row(CLAIM_STATIC, "constraints",
            f"{pair}, call-cost gates and a price-conditioned gate told each price",
            v.claim_static)
  study_row(CLAIM_RIVALS, "constraints", f"{pair}, every seed's gate point at equal or fewer "
            "calls", v.claim_rivals, also=("constraints_select",))
  for claim, key in (("2a. A stronger SLM asks less", "slm_more_self_reliant"),
                     ("2b. A stronger LLM is asked less", "llm_sparser"),
                     ("2b. A stronger LLM's calls are more informative (gain per call)",
                      "llm_more_informative")):
    study_row(claim, "scaling", v.scaling_setting,
              lambda s, key=key: v.claim_trend(s, key), v.scaling_seeds,
              also=("scaling_causal",))
  study_row("3. The policy transfers to unseen LLMs and lineages", "transfer",
            "a gate trained with one LLM, run unchanged with others", v.claim_transfer,
            v.transfer_seeds)
  if load("transfer_tokenizers"):
    study_row("3. The policy transfers to unseen LLMs and lineages", "transfer_tokenizers",
              "across tokenizers: llm_s (BPE, Llama blocks) and gpt2_uni (unigram, GPT-2 "
              "blocks), each way", v.claim_transfer, v.transfer_seeds)
  if load("transfer_tokenizers_uni"):
    study_row("3. The policy transfers to unseen LLMs and lineages", "transfer_tokenizers_uni",
              "across tokenizers with a unigram SLM (slm_s_uni): gpt2_uni shares its "
              "tokenizer, llm_s does not; each way", v.claim_transfer, v.transfer_seeds)
  if load("transfer_tokenizers_strong"):
    study_row("3. The policy transfers to unseen LLMs and lineages", "transfer_tokenizers_strong",
              "across tokenizers between two strong LLMs, llm_l (BPE, Llama blocks) and "
              "gpt2_uni, with a unigram SLM; each way", v.claim_transfer, v.transfer_seeds)

  used = [s for s in ("constraints", "constraints_privacy") if load(s)]
  if used:
    r = v.claim_privacy(v.pool_settings([load(s) for s in used]))
    row(CLAIM_PRIVACY, f"{pair}, seeds pooled over "
        + ", ".join(f"results/{u}" for u in used), r, v.seeds_text(r["seeds"]), link(*used))
  else:
    row(CLAIM_PRIVACY, pair, section="results/constraints")

  found, studies, seeds = [], [], []
  for study, prefix, label, unit, metric in (
      ("constraints", "price", "call price told", "calls", "calls"),
      ("constraints_tokens", "token", "LLM-token price", "LLM tokens", "llm_tokens")):
    t = v.price_trend(load(study)["settings"], prefix, metric) if load(study) else None
    if t is not None:
      found.append((label, unit, t))
      studies.append(study)
      seeds += t["seeds"]
  setting = f"{pair}, one price-conditioned gate per seed; gates per LLM-token price"
  if found:
    r = v.claim_prices(found)
    row(CLAIM_PRICES, setting, dict(r, ci=r["ci"] + " per tenfold price"),
        v.seeds_text(seeds), link(*studies))
  else:
    row(CLAIM_PRICES, setting, {"effect": "fewer than two prices swept", "ci": "-",
                                "verdict": v.INCONCLUSIVE if load("constraints")
                                else v.NOT_RUN}, section=link("constraints"))

  if load("worlds") is None:
    row(CLAIM_WORLDS, "default, held-out knowledge, fallible LLM, SLM sound at arithmetic",
        section="results/worlds")
  for study in ("worlds",) + tuple(d for d, _ in VARIANTS["worlds"]):
    worlds = load(study) or {"settings": {}}
    for name, setting in worlds["settings"].items():
      where = f" ({OTHER_PROBLEMS[study]})" if study in OTHER_PROBLEMS else ""
      row(CLAIM_WORLDS, f"{name} world: {setting['slm']} x {setting['llm']}{where}",
          v.claim_world(setting, worlds["rivals"][name]), v.seeds_text(setting["seeds"]),
          link(study))

  study = "budget_causal" if load("budget_causal") else "budget"
  if load(study) is None:
    row(CLAIM_BUDGET, pair, section="results/budget")
    return rows
  order = list(BUDGET_MODES)
  for mode, points in sorted(v.budget_modes(load(study)["settings"]).items(),
                             key=lambda kv: order.index(kv[0]) if kv[0] in order else 9):
    row(f"{CLAIM_BUDGET}: {mode}", f"{pair}, {BUDGET_MODES.get(mode, mode)}",
        v.claim_budget(points), v.seeds_text([x for p in points for x in p["seeds"]]),
        link(study))
  return rows


def verdict_table(results_dir: str) -> str:
  """The markdown of the verdict table, after a sentence on how verdicts are decided."""
  rows = verdict_rows(results_dir)
  cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
  keys = ("claim", "setting", "effect", "ci", "seeds", "verdict", "section")
  lines = ["| claim | setting | measured effect | 95% CI | seeds | verdict | section |",
           "|---|---|---|---|---|---|---|"]
  lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
  counts = {x: sum(r["verdict"] == x for r in rows)
            for x in (verdicts.HOLDS, verdicts.FAILS, verdicts.INCONCLUSIVE)}
  return "\n".join([
      f"{counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} inconclusive. "
      "Accuracies on held-out test problems. A verdict holds when the effect is in the "
      "claimed direction with 95% confidence, fails when it is absent or reversed, and is "
      "inconclusive otherwise; the exact rules are in `collab/studies/verdicts.py`. "
      "'also' gives the verdict of another run of the same claim.", "", *lines])
