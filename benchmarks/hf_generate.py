"""transformers' `generate` on a GGUF file: the reference that benchmarks/real_decode.py times.

transformers loads the file itself (`gguf_file=`, dequantized to float32), so it runs the same
weights as collab.models.gguf_io, through its own import. Greedy, no end token (every row
writes all of its new tokens), unpadded prompts (no attention mask to differ on).

Two caches: transformers' default DynamicCache (grows by concatenation at every token) and its
StaticCache (`cache_implementation="static"`: preallocated, written in place). transformers
compiles the forward pass of a static-cache `generate` with torch.compile only on cuda / xpu /
neuron / tpu devices (GenerationMixin._valid_auto_compile_criteria), so on a CPU both caches run
eagerly, one Python-dispatched op at a time.
"""
from __future__ import annotations

import os

try:  # optional: the `parity` extra
  import torch
  import transformers
  IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - depends on the environment
  torch = transformers = None
  IMPORT_ERROR = f"{type(e).__name__}: {e}"

CACHES = ("dynamic", "static")


def unavailable_reason() -> str | None:
  if IMPORT_ERROR:
    return f"torch/transformers not importable ({IMPORT_ERROR}); install the 'parity' extra"
  try:
    import accelerate  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    return f"accelerate not importable ({e}); install the 'parity' extra"
  return None


def device() -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def load(gguf: str, threads: int):
  """The model in float32 on torch's device, with no end token in its generation config."""
  if threads > 0:
    torch.set_num_threads(threads)
  transformers.utils.logging.set_verbosity_error()
  transformers.utils.logging.disable_progress_bar()
  model = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf),
      dtype=torch.float32).eval().to(device())
  model.generation_config.eos_token_id = None
  return model


def generate(model, prompt_BxP, new_tokens: int, cache: str):
  """Greedy continuation of unpadded prompts (numpy int ids); returns the new ids, BxN numpy."""
  ids = torch.as_tensor(prompt_BxP, dtype=torch.long, device=device())
  kw = dict(cache_implementation="static") if cache == "static" else {}
  with torch.no_grad():
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=new_tokens, pad_token_id=0,
                         **kw)
  if device() == "cuda":
    torch.cuda.synchronize()
  return out[:, ids.shape[1]:].cpu().numpy()


def versions() -> dict:
  return dict(torch=torch.__version__, transformers=transformers.__version__, device=device(),
              threads=torch.get_num_threads())
