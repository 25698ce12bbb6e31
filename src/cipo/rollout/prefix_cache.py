"""The decode-time cache of ``decode.sample``: each prompt's keys/values stored once, read once.

The n samples of a prompt share its keys and values. ``generate`` copies them into every row and
every decode step reads all n copies; for the correction stream (prompts that hold a whole
attempt) that reading was most of a step. Here each layer keeps the prompts' keys/values once
(``(B, kv_heads, P, d)``, left-padded) and a buffer of each row's generated tokens, written in
place. The attention of a decode step is computed in two parts and merged exactly (the
log-sum-exp merge of two softmax partitions, as in cascade / shared-prefix attention):

    prompt part:  the queries of a prompt's n rows as one (n * group, d) block against its keys
    own part:     each row's query against its own generated tokens

It is a transformers attention function (``ATTENTION_NAME``), active only while ``decoding``
runs; transformers then builds no mask (the prompt padding is a bias here, the generated tokens
are all visible). Tested against ``generate`` token for token (tests/rollout/test_decode.py).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from transformers import AttentionInterface
from transformers.cache_utils import DynamicLayer

ATTENTION_NAME = "cipo_shared_prompt"
# Decoder families whose attention modules call the attention function with nothing beyond
# q, k, v, mask, dropout, scaling (and sliding_window=None); others keep generate().
MODEL_TYPES = ("llama", "qwen2", "qwen3")


class PromptSharedLayer(DynamicLayer):
    """One layer: the prompts' keys/values once, plus every row's generated tokens (in place).

    ``update`` stores a step's keys/values and returns the generated part only; the attention
    function reads the prompt part from here. ``rows`` maps batch rows to their (prompt, sample)
    slot ``prompt * n + sample``; ``keep_rows`` drops finished rows without touching the prompts.
    """

    def __init__(self, keys: Tensor, values: Tensor, prompt_bias: Tensor, n: int, capacity: int) -> None:
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.prompt_keys, self.prompt_values, self.prompt_bias, self.n = keys, values, prompt_bias, n
        self.prompt_mask = prompt_bias[:, None, None, :].float()  # (B, 1, 1, P), as the attention adds it
        rows = keys.shape[0] * n
        self.key_buffer = keys.new_empty((rows, keys.shape[1], capacity, keys.shape[-1]))
        self.value_buffer = values.new_empty((rows, values.shape[1], capacity, values.shape[-1]))
        self.length = 0
        self.rows = torch.arange(rows, device=keys.device)
        self._expose()

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        end = self.length + key_states.shape[-2]
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.length

    def keep_rows(self, keep: Tensor) -> None:
        """Keep only batch rows ``keep`` (copies their generated tokens only)."""
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty((len(keep), *old.shape[1:]))
            new[:, :, : self.length] = old[keep, :, : self.length]
            setattr(self, name, new)
        self.rows = self.rows[keep]
        self._expose()


def _by_prompt(values: Tensor, layer: PromptSharedLayer) -> Tensor:
    """(R, kv, g, d) per batch row -> (B, kv, n * g, d) per prompt (slots of finished rows: 0)."""
    prompts, n = layer.prompt_keys.shape[0], layer.n
    if len(layer.rows) < prompts * n:  # compacted: rows go back to their (prompt, sample) slots
        values = values.new_zeros((prompts * n, *values.shape[1:])).index_copy_(0, layer.rows, values)
    kv, groups, dim = values.shape[1:]
    return values.view(prompts, n, kv, groups, dim).transpose(1, 2).reshape(prompts, kv, n * groups, dim)


def _by_row(values: Tensor, layer: PromptSharedLayer, groups: int) -> Tensor:
    """Inverse of ``_by_prompt``: (B, kv, n * g, ...) -> (R, kv, g, ...) for the batch rows."""
    prompts, kv, n = values.shape[0], values.shape[1], layer.n
    slots = values.view(prompts, kv, n, groups, *values.shape[3:]).transpose(1, 2)
    slots = slots.reshape(prompts * n, kv, groups, *values.shape[3:])
    return slots if len(layer.rows) == prompts * n else slots[layer.rows]


def shared_prompt_attention(
    module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling: float, dropout: float = 0.0, **kwargs
) -> tuple[Tensor, None]:
    """One decode step's attention: query (R, heads, 1, d); key/value (R, kv, S, d) the generated
    tokens (this step's included); returns (R, 1, heads, d) like transformers' sdpa function.

    Each part is a softmax with its log-sum-exp; softmax over both parts together is then
    ``own + sigmoid(lse_prompt - lse_own) * (prompt - own)``. Both parts read keys/values, so a step
    costs the bytes of B prompts plus R rows' own tokens instead of R copies of the prompts.
    """
    layers = kwargs.get("prompt_cache")
    if not isinstance(layers, list) or query.shape[2] != 1 or dropout or kwargs.get("sliding_window") is not None:
        raise RuntimeError(f"{ATTENTION_NAME} runs single-token decode steps of decode.sample only")
    layer = layers[module.layer_idx]
    rows, heads, _, dim = query.shape
    kv = key.shape[1]
    groups = heads // kv
    if rows <= layer.prompt_keys.shape[0]:  # few rows left: copying their prompts is cheaper than grouping
        return _per_row_attention(query, key, value, layer, scaling)
    # As separate operators (bmm, softmax, logsumexp) each part costs per row and head, not per FLOP
    # (rows x heads tiny products); one fused kernel per part that also returns its log-sum-exp is
    # ~40% cheaper on CPU (docs/performance.md, target 1).
    q = query.view(rows, kv, groups, dim).float()  # (R, kv, g, d); per prompt (B, kv, n * g, d) below
    prompt_out, prompt_lse = _attention_with_lse(
        _by_prompt(q, layer), layer.prompt_keys.float(), layer.prompt_values.float(), layer.prompt_mask, scaling
    )
    own_out, own_lse = _attention_with_lse(q, key.float(), value.float(), None, scaling)
    prompt_out, prompt_lse = _by_row(prompt_out, layer, groups), _by_row(prompt_lse[..., None], layer, groups)
    share = torch.sigmoid(prompt_lse - own_lse[..., None])
    out = torch.lerp(own_out, prompt_out, share).to(query.dtype)  # own + share * (prompt - own), (R, kv, g, d)
    return out.view(rows, 1, heads, dim), None


# SDPA's CPU flash kernel (torch >= 2.2) returns (output, lse); a private op, so a torch without it
# takes the unfused formula (tests/rollout/test_prefix_cache.py checks the two agree).
_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _attention_with_lse(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float):
    """softmax(q k^T * scaling + mask) v and its log-sum-exp per query: (N, h, L, d), (N, h, L)."""
    if query.device.type == "cpu" and _CPU_FLASH is not None:  # the public SDPA does not return the lse
        return _CPU_FLASH(query, key, value, 0.0, False, attn_mask=mask, scale=scaling)
    return _attention_with_lse_unfused(query, key, value, mask, scaling)


def _attention_with_lse_unfused(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float):
    """``_attention_with_lse`` in separate operators (other devices)."""
    scores = (query * scaling) @ key.transpose(-1, -2)
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ value, torch.logsumexp(scores, dim=-1)


def _per_row_attention(query: Tensor, key: Tensor, value: Tensor, layer: PromptSharedLayer, scaling: float):
    """The same attention for a few rows: each row's prompt copied in front of its own tokens, one SDPA."""
    prompts = torch.div(layer.rows, layer.n, rounding_mode="floor")
    keys = torch.cat([layer.prompt_keys[prompts], key], dim=2)
    values = torch.cat([layer.prompt_values[prompts], value], dim=2)
    bias = torch.cat([layer.prompt_bias[prompts], layer.prompt_bias.new_zeros(len(prompts), key.shape[2])], dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, keys, values, attn_mask=bias[:, None, None, :].to(query.dtype), scale=scaling, enable_gqa=True
    )
    return out.transpose(1, 2), None


AttentionInterface.register(ATTENTION_NAME, shared_prompt_attention)


@contextlib.contextmanager
def decoding(model):
    """Route the model's attention through ``shared_prompt_attention`` (restored on exit)."""
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
