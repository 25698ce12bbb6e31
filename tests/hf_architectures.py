"""Tiny random Hugging Face causal LMs of real architectures, built from configs (no downloads).

Imported as ``hf_architectures`` (tests/ is on sys.path). Each shape exercises something the
built-in policy does not: untied embeddings, grouped-query attention, qkv biases (Qwen2),
query/key norms (Qwen3).
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

VOCAB = 99  # the character tokenizer's size, so HFEngine can drive these models too
_COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, pad_token_id=0)

CONFIGS = {
    "llama_gqa_untied": lambda: LlamaConfig(
        **_COMMON, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, eos_token_id=1
    ),
    "llama_mha_tied": lambda: LlamaConfig(
        **_COMMON, num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True, eos_token_id=1
    ),
    "qwen2_gqa_tied": lambda: Qwen2Config(
        **_COMMON, num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True, eos_token_id=1
    ),
    "qwen2_gqa_untied": lambda: Qwen2Config(
        **_COMMON, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, eos_token_id=1
    ),
    "qwen3_gqa_untied": lambda: Qwen3Config(
        **_COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False, eos_token_id=1
    ),
}


def build(name: str, attn_implementation: str = "sdpa", seed: int = 0) -> torch.nn.Module:
    """A random model of ``CONFIGS[name]`` in train mode."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CONFIGS[name](), attn_implementation=attn_implementation).train()


def sliding_window_model() -> torch.nn.Module:
    """A Qwen2 whose every layer uses sliding-window attention: its cache layers are not plain
    dynamic ones, which both prefix-shared paths refuse (the training forward, decode.sample)."""
    config = Qwen2Config(
        **_COMMON,
        num_attention_heads=4,
        num_key_value_heads=1,
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=0,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").train()
