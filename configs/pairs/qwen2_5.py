"""Qwen2.5 pair: Qwen2.5-0.5B (SLM) with Qwen2.5-7B (LLM), from local Hugging Face checkpoints.

  python -m experiments.train_gate --workdir=runs/qwen2_5 --config=configs/pairs/qwen2_5.py:\
slm_dir=/ckpt/Qwen2.5-0.5B,llm_dir=/ckpt/Qwen2.5-7B,data_dir=/data/gsm8k

arg keys: slm, llm (sizes below), slm_dir, llm_dir (checkpoint directories: config.json,
safetensors, tokenizer.json), data_dir (GSM8K-style JSONL), tpu (a slice of
collab/models/sharding.TPUS; default v5e-8), model_axis (0: planned), seed, call_cost, steps,
eval_problems, runlocal (tiny random stand-ins on one CPU device).

Published config.json fields (bfloat16 weights). All sizes share one tokenizer of 151,665 ids;
the embedding is padded to 151,936 rows up to 3B and 152,064 from 7B on, so SLM and LLM logits
differ in width but every id the tokenizer emits exists in both. On a v5e-8 (16 GiB per chip)
the 7B (15.2 GB) is split 2 ways ('model' axis 2, 'data' axis 4); the 0.5B is replicated.
"""
from configs import pairs


def _qwen(hidden, inter, layers, heads, kv, vocab=151936, tie=True, max_pos=32768, eps=1e-6):
  return dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=hidden,
              intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
              num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=tie,
              max_position_embeddings=max_pos, rope_theta=1000000.0, rms_norm_eps=eps,
              hidden_act="silu", use_sliding_window=False, torch_dtype="bfloat16")


SIZES = {
    "0.5b": _qwen(896, 4864, 24, 14, 2),
    "1.5b": _qwen(1536, 8960, 28, 12, 2),
    "3b": _qwen(2048, 11008, 36, 16, 2),
    "7b": _qwen(3584, 18944, 28, 28, 4, vocab=152064, tie=False, max_pos=131072),
    "14b": _qwen(5120, 13824, 48, 40, 8, vocab=152064, tie=False, max_pos=131072, eps=1e-5),
}
# runlocal: the same features (q/k/v biases; tied SLM, untied LLM), tiny and float32.
TINY = {
    "slm": dict(SIZES["0.5b"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                torch_dtype="float32"),
    "llm": dict(SIZES["7b"], hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=1, vocab_size=512,
                torch_dtype="float32"),
}


def get_config(arg=None):
  return pairs.pair_config(arg, family="Qwen2.5", sizes=SIZES, tiny=TINY, slm="0.5b", llm="7b")
