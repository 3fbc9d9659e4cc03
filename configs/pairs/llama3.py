"""Llama 3 pair: Llama-3.2-1B (SLM) with Llama-3.1-8B (LLM), from local Hugging Face checkpoints.

  python -m experiments.train_gate --workdir=runs/llama3 --config=configs/pairs/llama3.py:\
slm_dir=/ckpt/Llama-3.2-1B,llm_dir=/ckpt/Llama-3.1-8B,data_dir=/data/gsm8k

arg keys: slm, llm (sizes below), slm_dir, llm_dir (checkpoint directories: config.json,
safetensors, tokenizer.json), data_dir (GSM8K-style JSONL), tpu (a slice of
collab/models/sharding.TPUS; default v5e-8), model_axis (0: planned), seed, call_cost, steps,
eval_problems, runlocal (tiny random stand-ins on one CPU device).

Published config.json fields (bfloat16 weights, 'llama3' RoPE scaling). All sizes share the
Llama 3 tokenizer (128,256 ids, 250 of them reserved: the task markup takes five). On a v5e-8
(16 GiB per chip) the 8B (16.1 GB) is split 2 ways ('model' axis 2, 'data' axis 4); the 1B is
replicated.
"""
from configs import pairs


def _llama(hidden, inter, layers, heads, kv, factor, tie, head_dim=None):
  return dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=hidden,
              intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
              num_key_value_heads=kv, head_dim=head_dim or hidden // heads, vocab_size=128256,
              tie_word_embeddings=tie, max_position_embeddings=131072, rope_theta=500000.0,
              rope_scaling=dict(rope_type="llama3", factor=factor, low_freq_factor=1.0,
                                high_freq_factor=4.0, original_max_position_embeddings=8192),
              rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False, mlp_bias=False,
              torch_dtype="bfloat16")


SIZES = {
    "3.2-1b": _llama(2048, 8192, 16, 32, 8, factor=32.0, tie=True),
    "3.2-3b": _llama(3072, 8192, 28, 24, 8, factor=32.0, tie=True, head_dim=128),
    "3.1-8b": _llama(4096, 14336, 32, 32, 8, factor=8.0, tie=False),
}
# runlocal: the same features (GQA, llama3 RoPE; tied SLM, untied LLM), tiny and float32.
TINY = {
    "slm": dict(SIZES["3.2-1b"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=512,
                torch_dtype="float32"),
    "llm": dict(SIZES["3.1-8b"], hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=12, vocab_size=512,
                torch_dtype="float32"),
}


def get_config(arg=None):
  return pairs.pair_config(arg, family="Llama", sizes=SIZES, tiny=TINY, slm="3.2-1b",
                           llm="3.1-8b")
