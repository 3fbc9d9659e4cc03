"""Model size presets. The tokenizer decides the vocabulary, so `get_model_config` fills it in.

On this 2-core CPU a bigger model learns less per minute (DESIGN.md), so SLM strength comes
mostly from fact coverage and compute (collab/train/recipes.py); sizes grow gently. Training
throughput (forward+backward, batch 64 x 128 tokens, float32) is in the module's report and
`benchmarks/`; llm_l is the largest that still trains in tens of minutes here.
"""
from __future__ import annotations

from collab.models.config import ModelConfig

# PRESETS hold a placeholder vocabulary; use get_model_config(name, vocab_size).
_PLACEHOLDER_VOCAB = 512


def _llama(d, layers, heads, kv_heads, d_ff, **kw) -> ModelConfig:
  return ModelConfig(arch="llama", vocab_size=_PLACEHOLDER_VOCAB, d_model=d, num_layers=layers,
                     num_heads=heads, num_kv_heads=kv_heads, d_ff=d_ff, max_len=192, **kw)


def _gpt2(d, layers, heads, d_ff, **kw) -> ModelConfig:
  return ModelConfig(arch="gpt2", vocab_size=_PLACEHOLDER_VOCAB, d_model=d, num_layers=layers,
                     num_heads=heads, d_ff=d_ff, max_len=192, **kw)


PRESETS: dict[str, ModelConfig] = {
    # Tests: compile and run in a blink.
    "test_tiny": _llama(32, 2, 4, 2, 64),
    "gpt2_tiny": _gpt2(32, 2, 4, 128),
    # Small language models.
    "slm_s": _llama(64, 2, 4, 2, 176),
    "slm_m": _llama(80, 2, 4, 2, 224),
    "slm_l": _llama(96, 2, 4, 2, 256),
    # Large language models.
    "llm_s": _llama(128, 2, 4, 2, 352),
    "llm_m": _llama(128, 3, 4, 2, 352),
    "llm_l": _llama(160, 3, 4, 2, 432),
    # Another lineage (GPT-2 blocks), about the size of llm_m.
    "gpt2_m": _gpt2(128, 3, 4, 448),
}


def get_model_config(name: str, vocab_size: int) -> ModelConfig:
  """The preset `name` with the tokenizer's vocabulary size."""
  if name not in PRESETS:
    raise ValueError(f"Unknown model preset {name!r}; valid: {sorted(PRESETS)}")
  return PRESETS[name].replace(vocab_size=int(vocab_size))
