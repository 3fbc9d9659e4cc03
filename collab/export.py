"""Self-contained export of a trained gate and its SLM x LLM pair, for evaluation.

Layout of `export_dir` (format version 1)::

  VERSION          the format version, one line
  export.json      package version, pair names, tokenizer fingerprint
  config.json      the gate config (ConfigDict JSON)
  tokenizer.model  the tokenizer the pair shares: the SentencePiece model of a generated-task
                   pair, or an imported pair's serialized HFTokenizer (JSON); the SLM's in a
                   pair with two tokenizers
  llm_tokenizer.model  only in a pair with two tokenizers: the LLM's (export.json then holds
                   its fingerprint, llm_tokenizer_fingerprint, and llm_step_ratio)
  gate/ slm/ llm/  params-only orbax exports (`checkpoint.save_params`); metadata holds the
                   tokenizer fingerprint (and the ModelConfig for slm/llm)
  manifest.json    {format_version, files: {relative path: {size, sha256}}} of everything above

An export is written into a temp directory beside `export_dir` and renamed into place when
complete, so an interrupted export is never taken for a finished one. `load_export` verifies
the manifest before reading anything: evaluation must never run on a half-copied or edited
export without saying so.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any

from absl import logging
import jax
import ml_collections

from collab import checkpoint as ckpt_lib
from collab import errors
from collab import files as files_lib
from collab import gating
from collab.data import hf_tokenizer
from collab.data import tokenizer as tokenizer_lib
from collab.models import config as model_config
from collab import pair as pair_lib

FORMAT_VERSION = 1
MANIFEST, VERSION, INFO, CONFIG, TOKENIZER, LLM_TOKENIZER = (
    "manifest.json", "VERSION", "export.json", "config.json", "tokenizer.model",
    "llm_tokenizer.model")
GATE, SLM, LLM = "gate", "slm", "llm"


class ExportError(errors.UserError, ValueError):
  """An export is missing, incomplete, tampered with, or of an unknown format."""


def package_version() -> str:
  import collab  # the source tree's version, whether installed or run from a checkout
  return collab.__version__


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """The ConfigDict of `to_json_best_effort` output. JSON has no tuples: lists come back as
  tuples (recursively), so fields such as gate.actions and eval.fixed_steps are hashable again
  and `GateConfig(**config.gate.to_dict())` can be a static jit argument. Configs here hold
  tuples, never lists, so this restores them exactly."""
  def tuples(x):
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    return x
  return ml_collections.ConfigDict(tuples(json.loads(text)))


def _files(root: str) -> list[str]:
  """Relative paths of every file under root, '/'-separated, sorted."""
  out = []
  for dirpath, _, names in os.walk(root):
    for name in names:
      out.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
  return sorted(out)


def _write_manifest(root: str) -> None:
  files = {rel: {"size": os.path.getsize(os.path.join(root, rel)),
                 "sha256": files_lib.sha256(os.path.join(root, rel))}
           for rel in _files(root) if rel != MANIFEST}
  with open(os.path.join(root, MANIFEST), "w") as f:
    json.dump({"format_version": FORMAT_VERSION, "files": files}, f, indent=1, sort_keys=True)


def verify_export(export_dir: str) -> dict:
  """Checks `export_dir` against its manifest; returns the manifest or raises ExportError."""
  export_dir = os.path.abspath(os.fspath(export_dir))
  if not os.path.isdir(export_dir):
    raise ExportError(f"No export at {export_dir}")
  path = os.path.join(export_dir, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
    version, listed = manifest["format_version"], manifest["files"]
  except FileNotFoundError:
    raise ExportError(f"{export_dir}: missing {MANIFEST} (not an export, or incomplete)") from None
  except (ValueError, KeyError, TypeError) as err:
    raise ExportError(f"{path}: unreadable manifest ({type(err).__name__}: {err})") from err
  if version != FORMAT_VERSION:
    raise ExportError(f"{export_dir}: unknown export format version {version!r} "
                      f"(this code reads version {FORMAT_VERSION})")
  present = set(_files(export_dir)) - {MANIFEST}
  problems = [f"missing file {rel}" for rel in sorted(set(listed) - present)]
  problems += [f"unexpected file {rel} (not in the manifest)"
               for rel in sorted(present - set(listed))]
  for rel in sorted(present & set(listed)):
    full, want = os.path.join(export_dir, rel), listed[rel]
    size = os.path.getsize(full)
    if size != want["size"]:  # cheap check first: a truncated copy shows here
      problems.append(f"size mismatch in {rel}: {size} bytes, manifest says {want['size']}")
    elif files_lib.sha256(full) != want["sha256"]:
      problems.append(f"sha256 mismatch in {rel}: its content changed since export")
  if problems:
    hint = ""
    if any(rel.startswith("eval/") for rel in present - set(listed)):
      hint = (" (eval/ looks like evaluation results written inside the export: move it out; "
              "experiments.evaluate writes them to EXPORT_eval beside the export)")
    raise ExportError(f"Export {export_dir} fails verification: " + "; ".join(problems) + hint)
  with open(os.path.join(export_dir, VERSION)) as f:
    if f.read().strip() != str(FORMAT_VERSION):  # listed, so only a writer bug gets here
      raise ExportError(f"{export_dir}: {VERSION} disagrees with the manifest's format version")
  return manifest


def _is_export(path: str) -> bool:
  return any(os.path.exists(os.path.join(path, n)) for n in (MANIFEST, VERSION))


def _load_trained_gate(config, pair: pair_lib.Pair, workdir: str):
  """`pair_lib.load_gate(workdir)`, restored onto this host's default device.

  gate.train saves the gate as it leaves pmap, sharded over all training devices, and orbax
  refuses to restore that layout untargeted under another device count (e.g. 8 fake CPU
  devices in training, 1 here): so restore into abstract leaves shaped by the config."""
  gate_cfg = gating.GateConfig(**config.gate.to_dict())
  shapes = jax.eval_shape(
      lambda: gating.init_gate(gate_cfg, pair.slm_cfg.d_model, jax.random.PRNGKey(0)))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                        shapes)
  return ckpt_lib.load_params(os.path.join(workdir, "gate"), target=target)


def write_export(config: ml_collections.ConfigDict, workdir: str, export_dir: str, *,
                 overwrite: bool = False) -> str:
  """Exports the gate trained in `workdir` and the pair `config` names to `export_dir`.

  Raises FileExistsError if `export_dir` exists (unless `overwrite`; even then a non-empty
  directory that is not an export is left alone). Returns the export's absolute path."""
  export_dir = os.path.abspath(os.fspath(export_dir))

  def check_target():
    if not os.path.exists(export_dir):
      return
    if not overwrite:
      raise FileExistsError(
          f"Export {export_dir} exists; pass overwrite=True (--overwrite) to replace it")
    if os.listdir(export_dir) and not _is_export(export_dir):
      raise FileExistsError(f"{export_dir} exists and is not an export: not replacing it")

  check_target()  # before the slow part, and again before the rename
  pair = pair_lib.load_pair(config)
  gate_params, gate_meta = _load_trained_gate(config, pair, workdir)
  fingerprint = pair.tokenizer.fingerprint
  tokenizer_lib.check_fingerprint(gate_meta["tokenizer_fingerprint"], pair.tokenizer,
                                  where=os.path.join(workdir, "gate"))
  if (gate_meta.get("slm"), gate_meta.get("llm")) != (config.slm, config.llm):
    raise ValueError(f"The gate in {workdir} was trained for {gate_meta.get('slm')} x "
                     f"{gate_meta.get('llm')}, the config names {config.slm} x {config.llm}")
  trained_with = gate_meta.get("config") or {}
  given = json.loads(config.to_json_best_effort())
  ignore = {"rl", "log_every", "ckpt_every", "max_to_keep"}  # training-only settings
  differ = sorted(k for k in set(given) | set(trained_with)
                  if k not in ignore and given.get(k) != trained_with.get(k))
  if differ:  # legitimate for eval settings, a mistake for task/rollout: say so, go on
    logging.warning("Exporting with a config that differs from the gate's training config "
                    "in %s (the training config stays in gate/ metadata)", differ)

  parent = os.path.dirname(export_dir)
  os.makedirs(parent, exist_ok=True)
  # Same directory, so the final rename stays on one filesystem (atomic).
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
  try:
    # Host (numpy) copies: orbax records each array's sharding, and the gate comes out of
    # pmapped training sharded over every training device; an export restores on any host.
    gate_params, slm_params, llm_params = jax.device_get(
        (gate_params, pair.slm_params, pair.llm_params))
    ckpt_lib.save_params(os.path.join(tmp, GATE), gate_params, metadata=gate_meta)
    llm_tok = pair.llm_tokenizer or pair.tokenizer
    for role, name, params, cfg, tok in (
        (SLM, config.slm, slm_params, pair.slm_cfg, pair.tokenizer),
        (LLM, config.llm, llm_params, pair.llm_cfg, llm_tok)):
      meta = {"model": name, "model_config": dataclasses.asdict(cfg),
              "tokenizer_fingerprint": tok.fingerprint}
      if pair.vocab:  # an imported pair: rows added to (or cropped from) the checkpoint's
        meta["vocab"] = {"rows": pair.vocab["rows"], **pair.vocab[role.upper()]}
      ckpt_lib.save_params(os.path.join(tmp, role), params, metadata=meta)
    pair.tokenizer.save(os.path.join(tmp, TOKENIZER))
    mixed = {}
    if pair.llm_tokenizer is not None:
      pair.llm_tokenizer.save(os.path.join(tmp, LLM_TOKENIZER))
      mixed = {"llm_tokenizer_fingerprint": pair.llm_tokenizer.fingerprint,
               "llm_step_ratio": pair.llm_step_ratio}
    with open(os.path.join(tmp, CONFIG), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    with open(os.path.join(tmp, INFO), "w") as f:
      json.dump({"format_version": FORMAT_VERSION, "package_version": package_version(),
                 "slm": config.slm, "llm": config.llm, "tokenizer_fingerprint": fingerprint,
                 "workdir": os.path.abspath(workdir), **mixed,
                 **({"vocab": pair.vocab} if pair.vocab else {})}, f, indent=2)
    with open(os.path.join(tmp, VERSION), "w") as f:
      f.write(f"{FORMAT_VERSION}\n")
    _write_manifest(tmp)  # last: a manifest vouches for a complete directory
    check_target()
    if os.path.exists(export_dir):
      # A directory cannot be renamed onto a non-empty one: move the old aside first.
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.old-", dir=parent)
      os.rename(export_dir, os.path.join(old, "export"))
      os.rename(tmp, export_dir)
      shutil.rmtree(old)
    else:
      os.rename(tmp, export_dir)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return export_dir


def _load_model(export_dir: str, role: str, tok: tokenizer_lib.TokenizerBase):
  path = os.path.join(export_dir, role)
  params, meta = ckpt_lib.load_params(path)  # numpy, as written
  tokenizer_lib.check_fingerprint(meta["tokenizer_fingerprint"], tok, where=path)
  return params, model_config.ModelConfig(**meta["model_config"])


def load_export(export_dir: str) -> tuple[ml_collections.ConfigDict, pair_lib.Pair, Any]:
  """(config, Pair, gate_params) of a verified export; ExportError if it does not verify."""
  export_dir = os.path.abspath(os.fspath(export_dir))
  verify_export(export_dir)
  with open(os.path.join(export_dir, CONFIG)) as f:
    config = config_from_json(f.read())
  tok = hf_tokenizer.load_any(os.path.join(export_dir, TOKENIZER))  # either kind
  llm_tok = None
  if os.path.exists(os.path.join(export_dir, LLM_TOKENIZER)):  # two tokenizers
    llm_tok = hf_tokenizer.load_any(os.path.join(export_dir, LLM_TOKENIZER))
  slm_params, slm_cfg = _load_model(export_dir, SLM, tok)
  llm_params, llm_cfg = _load_model(export_dir, LLM, llm_tok or tok)
  gate_params, gate_meta = ckpt_lib.load_params(os.path.join(export_dir, GATE))
  tokenizer_lib.check_fingerprint(gate_meta["tokenizer_fingerprint"], tok,
                                  where=os.path.join(export_dir, GATE))
  # On the default device once, rather than copied from host at every jitted call.
  slm_params, llm_params, gate_params = jax.device_put((slm_params, llm_params, gate_params))
  with open(os.path.join(export_dir, INFO)) as f:
    info = json.load(f)
  pair = pair_lib.Pair(slm_params, llm_params, slm_cfg, llm_cfg, tok, info.get("vocab"),
                       llm_tok, float(info.get("llm_step_ratio", 1.0)))
  return config, pair, gate_params
