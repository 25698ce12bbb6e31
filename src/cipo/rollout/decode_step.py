"""One decode step of ``decode.sample`` without the transformers model forward around it.

Why: a decode step of the built-in policy costs ~2.5 ms whatever its row count (docs/performance.md,
target 1), so the correction stream's second decode pass (half the rows) costs nearly what the
first one does. Part of that fixed cost is the forward's own Python around the operators: its
output-capturing and config-default decorators, the mask function (which builds nothing for the
decode attention), the rotary module (cos/sin recomputed from the positions at every step), the
cache object's dispatch and the output dataclasses. This step calls the same submodules (norms,
projections, MLPs, ``lm_head``, so LoRA layers and hooks on them still run) in the order the Llama,
Qwen2 and Qwen3 decoder layers call them, with the family's own rotary function, and reads cos/sin
from a table the model's rotary module computes once per ``sample`` call. Its logits equal
``model(...)``'s bit for bit (tests/rollout/test_decode_step.py).

``unsupported_reason`` names what the step would skip (hooks or accelerate hooks on the modules
whose forward it replaces, sliding-window attention, a layer without the expected submodules);
``decode.sample`` then calls the model as before.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

from cipo.rollout.prefix_cache import MODEL_TYPES, PromptSharedLayer, shared_prompt_attention

_LAYER_PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")


def _causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (its LoRA layers are inside it), else the model."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def _has_hooks(module: torch.nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks) or hasattr(module, "_hf_hook")


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why ``DecodeStep`` would not compute what ``model(...)`` computes, or None."""
    causal = _causal_lm(model)
    if getattr(causal.config, "model_type", None) not in MODEL_TYPES:
        return f"model type {getattr(causal.config, 'model_type', None)!r}"
    decoder = causal.get_decoder()
    bypassed = [model, causal, decoder, decoder.rotary_emb]
    for layer in decoder.layers:
        missing = [name for name in _LAYER_PARTS if not hasattr(layer, name)]
        missing += [name for name in _ATTENTION_PARTS if not hasattr(getattr(layer, "self_attn", None), name)]
        if missing:
            return f"{type(layer).__name__} has no {', '.join(missing)}"
        if getattr(layer.self_attn, "sliding_window", None) is not None:
            return "sliding-window attention"
        bypassed += [layer, layer.self_attn]
    hooked = [type(module).__name__ for module in bypassed if _has_hooks(module)]
    if hooked:
        return f"hooks on {', '.join(hooked)}, whose forward the step replaces"
    return None


class DecodeStep:
    """``step(token_ids (R,), positions (R,)) -> logits (R, V)`` float, for the rows of ``layers``."""

    def __init__(self, model: torch.nn.Module, layers: list[PromptSharedLayer], positions: int) -> None:
        causal = _causal_lm(model)
        self.decoder = causal.get_decoder()
        self.lm_head = causal.get_output_embeddings()
        self.layers = layers
        # the family's own rope function (Llama, Qwen2 and Qwen3 each define one; the same formula)
        self.apply_rotary = sys.modules[type(self.decoder.layers[0].self_attn).__module__].apply_rotary_pos_emb
        # cos/sin of positions 0 .. positions - 1 (each is the rotary module's output for that position:
        # an outer product and an element-wise cos/sin, so computing them together changes no value)
        weight = self.decoder.embed_tokens.weight
        cos, sin = self.decoder.rotary_emb(weight[:1], torch.arange(positions, device=weight.device)[None])
        self.cos, self.sin = cos[0], sin[0]  # (positions, head_dim)

    def __call__(self, token_ids: Tensor, positions: Tensor) -> Tensor:
        rows = token_ids.shape[0]
        hidden = self.decoder.embed_tokens(token_ids[:, None])  # (R, 1, H)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (R, 1, head_dim)
        for index, layer in enumerate(self.decoder.layers[: self.decoder.config.num_hidden_layers]):
            attention = layer.self_attn
            normed = layer.input_layernorm(hidden)
            shape = (rows, 1, -1, attention.head_dim)
            query, key = attention.q_proj(normed).view(shape), attention.k_proj(normed).view(shape)
            if hasattr(attention, "q_norm"):  # Qwen3 normalises each head's query and key before rope
                query, key = attention.q_norm(query), attention.k_norm(key)
            value = attention.v_proj(normed).view(shape).transpose(1, 2)
            query, key = self.apply_rotary(query.transpose(1, 2), key.transpose(1, 2), cos, sin)
            key, value = self.layers[index].update(key, value)
            dropout = attention.attention_dropout if attention.training else 0.0
            out, _ = shared_prompt_attention(
                attention, query, key, value, None, attention.scaling, dropout, prompt_cache=self.layers
            )
            hidden = hidden + attention.o_proj(out.reshape(rows, 1, -1).contiguous())
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return self.lm_head(self.decoder.norm(hidden))[:, -1].float()
