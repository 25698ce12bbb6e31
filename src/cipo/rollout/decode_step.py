"""One decode step of ``decode.sample`` without the transformers model forward around it.

Why: a decode step of the built-in policy costs ~2.5 ms whatever its row count (docs/performance.md,
target 1), so the correction stream's second decode pass (half the rows) costs nearly what the
first one does. Part of that fixed cost is Python around the operators: the model forward's
output-capturing and config-default decorators, its mask function (which builds nothing for the
decode attention), the rotary module (cos/sin recomputed from the positions at every step), the
cache object's dispatch, output dataclasses, ~50 module calls and the norms' no-op casts. This
step runs a Llama / Qwen2 / Qwen3 decoder layer's computation in its order with the same
operators: plain linears, float32 RMSNorms and the gated MLP as the functional calls their
forwards make, anything else (LoRA layers, hooked modules, ``lm_head``) as a module call, and
cos/sin from a table the model's rotary module computes once per ``sample`` call. Its logits equal
``model(...)``'s bit for bit (tests/rollout/test_decode_step.py).

``unsupported_reason`` names what the step would skip (hooks on the modules whose forward it
replaces, global module hooks, sliding-window attention, a layer without the expected
submodules); ``decode.sample`` then calls the model as before.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules import module as nn_module

from cipo.rollout.prefix_cache import MODEL_TYPES, PromptSharedLayer, shared_prompt_attention

_LAYER_PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
# classes whose forward is exactly F.rms_norm (float32) / down(silu(gate(x)) * up(x))
_RMS_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")
_MLPS = ("LlamaMLP", "Qwen2MLP", "Qwen3MLP")


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
    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:  # they would miss the bypassed calls
        return "global module hooks"
    hooked = [type(module).__name__ for module in bypassed if _has_hooks(module)]
    if hooked:
        return f"hooks on {', '.join(hooked)}, whose forward the step replaces"
    return None


class DecodeStep:
    """``step(token_ids (R,), positions (R,)) -> logits (R, V)`` float, for the rows of ``layers``."""

    def __init__(self, model: torch.nn.Module, layers: list[PromptSharedLayer], positions: int) -> None:
        causal = _causal_lm(model)
        self.decoder = causal.get_decoder()
        self.lm_head = causal.get_output_embeddings()  # a module call: tests hook it to bias EOS
        self.layers = layers
        self.parts = [_LayerParts(layer) for layer in self.decoder.layers[: self.decoder.config.num_hidden_layers]]
        self.final_norm = _plain(self.decoder.norm)
        # cos/sin of positions 0 .. positions - 1 (each is the rotary module's output for that position:
        # an outer product and an element-wise cos/sin, so computing them together changes no value)
        weight = self.decoder.embed_tokens.weight
        cos, sin = self.decoder.rotary_emb(weight[:1], torch.arange(positions, device=weight.device)[None])
        half = cos.shape[-1] // 2
        # rope is x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1); as x * cos + roll(x) * sin
        # with the sign on sin's first half it is 4 operators instead of 7, and (-a) * b == a * (-b) exactly
        self.cos, self.signed_sin = cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)

    def __call__(self, token_ids: Tensor, positions: Tensor) -> Tensor:
        rows = token_ids.shape[0]
        hidden = self.decoder.embed_tokens(token_ids[:, None])  # (R, 1, H)
        cos, sin = self.cos[positions][:, None, None], self.signed_sin[positions][:, None, None]  # (R, 1, 1, d)
        for index, part in enumerate(self.parts):
            normed = part.input_norm(hidden)
            shape = (rows, 1, -1, part.head_dim)
            query, key = part.q_proj(normed).view(shape), part.k_proj(normed).view(shape)  # (R, 1, heads, d)
            if part.q_norm is not None:  # Qwen3 normalises each head's query and key before rope
                query, key = part.q_norm(query), part.k_norm(key)
            heads = query.shape[2]
            both = torch.cat((query, key), dim=2)  # one rope for queries and keys
            both = both * cos + both.roll(part.head_dim // 2, -1) * sin
            query, key = both[:, :, :heads].transpose(1, 2), both[:, :, heads:].transpose(1, 2)
            value = part.v_proj(normed).view(shape).transpose(1, 2)
            key, value = self.layers[index].update(key, value)
            out, _ = shared_prompt_attention(
                part.attention, query, key, value, None, part.scaling, part.dropout, prompt_cache=self.layers
            )
            hidden = hidden + part.o_proj(out.reshape(rows, 1, -1))
            hidden = hidden + part.mlp(part.post_norm(hidden))
        return self.lm_head(self.final_norm(hidden))[:, -1].float()


class _LayerParts:
    """A decoder layer's submodules as the step calls them (plain functions where that is the same)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        attention = self.attention = layer.self_attn
        self.head_dim, self.scaling = attention.head_dim, attention.scaling
        self.dropout = attention.attention_dropout if attention.training else 0.0
        self.input_norm, self.post_norm = _plain(layer.input_layernorm), _plain(layer.post_attention_layernorm)
        self.q_proj, self.k_proj = _plain(attention.q_proj), _plain(attention.k_proj)
        self.v_proj, self.o_proj = _plain(attention.v_proj), _plain(attention.o_proj)
        self.q_norm = _plain(attention.q_norm) if hasattr(attention, "q_norm") else None
        self.k_norm = _plain(attention.k_norm) if hasattr(attention, "k_norm") else None
        self.mlp = _plain_mlp(layer.mlp)


def _plain(module: torch.nn.Module):
    """``module`` as the functional call its forward makes, where that is exactly it (a plain
    ``nn.Linear``; a family RMSNorm in float32, whose formula is ``F.rms_norm``'s); else the module,
    so LoRA layers and hooks run. Saves the module call and the norm's no-op casts (~9 us a norm)."""
    if _has_hooks(module):
        return module
    if type(module) is torch.nn.Linear:
        return functools.partial(F.linear, weight=module.weight, bias=module.bias)
    if type(module).__name__ in _RMS_NORMS and module.weight.dtype == torch.float32:
        return functools.partial(
            F.rms_norm, normalized_shape=tuple(module.weight.shape), weight=module.weight, eps=module.variance_epsilon
        )
    return module


def _plain_mlp(mlp: torch.nn.Module):
    """The gated MLP ``down(silu(gate(x)) * up(x))`` of the three families, without its module calls."""
    if type(mlp).__name__ not in _MLPS or _has_hooks(mlp) or _has_hooks(mlp.act_fn):
        return mlp
    if type(mlp.act_fn).__name__ != "SiLUActivation":
        return mlp
    gate, up, down = _plain(mlp.gate_proj), _plain(mlp.up_proj), _plain(mlp.down_proj)
    return lambda x: down(F.silu(gate(x)) * up(x))
