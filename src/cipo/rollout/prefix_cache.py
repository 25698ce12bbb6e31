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


def _by_prompt(values: Tensor, layer: PromptSharedLayer, fill: float = 0.0) -> Tensor:
    """(R, kv, g, ...) per batch row -> (B, kv, n * g, ...) per prompt (empty slots: ``fill``)."""
    prompts, n = layer.prompt_keys.shape[0], layer.n
    slots = values.new_full((prompts * n, *values.shape[1:]), fill)
    slots[layer.rows] = values
    slots = slots.view(prompts, n, *values.shape[1:]).transpose(1, 2)  # (B, kv, n, g, ...)
    return slots.reshape(prompts, values.shape[1], n * values.shape[2], *values.shape[3:])


def _by_row(values: Tensor, layer: PromptSharedLayer, groups: int) -> Tensor:
    """Inverse of ``_by_prompt``: (B, kv, n * g, ...) -> (R, kv, g, ...) for the batch rows."""
    prompts, kv, n = values.shape[0], values.shape[1], layer.n
    slots = values.view(prompts, kv, n, groups, *values.shape[3:]).transpose(1, 2)
    return slots.reshape(prompts * n, kv, groups, *values.shape[3:])[layer.rows]


def shared_prompt_attention(
    module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling: float, dropout: float = 0.0, **kwargs
) -> tuple[Tensor, None]:
    """One decode step's attention: query (R, heads, 1, d); key/value (R, kv, S, d) the generated
    tokens (this step's included); returns (R, 1, heads, d) like transformers' sdpa function."""
    layer = kwargs.get("prompt_cache")
    if not isinstance(layer, list) or query.shape[2] != 1 or dropout or kwargs.get("sliding_window") is not None:
        raise RuntimeError(f"{ATTENTION_NAME} runs single-token decode steps of decode.sample only")
    layer = layer[module.layer_idx]
    rows, heads, _, dim = query.shape
    kv = key.shape[1]
    groups = heads // kv
    dtype = query.dtype
    q = query.view(rows, kv, groups, dim).float()
    prompt = (_by_prompt(q, layer) @ layer.prompt_keys.float().transpose(-1, -2)) * scaling
    prompt = prompt + layer.prompt_bias[:, None, None, :]  # (B, kv, n * g, P); -inf on prompt padding
    own = (q @ key.float().transpose(-1, -2)) * scaling  # (R, kv, g, S)
    top = torch.maximum(_by_row(prompt.amax(-1), layer, groups), own.amax(-1))  # (R, kv, g)
    prompt_weights = torch.exp(prompt - _by_prompt(top, layer)[..., None])
    own_weights = torch.exp(own - top[..., None])
    numerator = _by_row(prompt_weights @ layer.prompt_values.float(), layer, groups) + own_weights @ value.float()
    denominator = _by_row(prompt_weights.sum(-1), layer, groups) + own_weights.sum(-1)
    out = (numerator / denominator[..., None]).to(dtype)  # (R, kv, g, d)
    return out.view(rows, 1, heads, dim), None


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
