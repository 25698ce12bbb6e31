"""Prefix-shared training forward: a prompt shared by several rows is computed once.

The G samples of one prompt, and the M revisions of one anchor's correction prompt, share their
prompt tokens. The plain forward recomputes that prompt for every row. Here each distinct prompt
(all but its last token: the "prefix") runs once, with gradient, and returns its key/value cache;
the cache is indexed out to the rows that share the prefix, and every row's continuation (its last
prompt token, then its completion) runs against that cache with its true position ids. The
continuation starts at the last prompt token because that position's logits score the first
completion token; no logits of the prefix are needed.

Exact: a continuation token attends to exactly the keys and values it attends to in the plain
forward (its prefix's, computed from the same tokens at the same positions, and its own row's
earlier tokens); the padding between a short prefix and its continuation is masked out. Logits,
loss and gradients (which reach the prefix through the cache) equal the plain forward's up to float
reassociation (tests/models/test_prefix_sharing.py: built-in, Llama, Qwen2 and Qwen3 shapes, tied
and untied embeddings, grouped-query attention, LoRA adapters through PEFT).

Resident rows. A row whose every scored token lies inside another group's prefix needs no forward of
its own: the prefix forward's logits at those positions are the row's (causal attention sees the
same tokens there). That is the correction stream's anchor: its correction prompt is the anchor's
own prompt and attempt, then a short suffix, so the anchor row resides in its revisions' prefix and
its attempt is computed once instead of twice. Its logits are taken from the prefix forward (which
then keeps the logits of the positions a resident reads, instead of only the last).

This rests on the transformers cache API (``DynamicCache`` of plain ``DynamicLayer`` s, its
``batch_select_indices``, a 2-D padding mask over cache + new tokens). ``unsupported_reason`` names
what it cannot handle (sliding-window or other cache layers, gradient checkpointing, active dropout,
attention kernels it was not tested with); the caller then runs the plain forward.
"""

from __future__ import annotations

import inspect
import logging

import torch
from torch import Tensor

from cipo.models.prefix_plan import PrefixPlan, plan_prefix_sharing

log = logging.getLogger(__name__)

# The attention kernels whose mask handling this was tested with (CPU); others fall back.
TESTED_ATTENTION = ("sdpa", "eager")


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why ``prefix_shared_logits`` cannot run ``model`` exactly, or None when it can."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_decoder"):
        return f"{type(model).__name__} is not a transformers causal LM"
    attention = getattr(config, "_attn_implementation", None)
    if attention not in TESTED_ATTENTION:
        return f"attention implementation {attention!r} (tested: {', '.join(TESTED_ATTENTION)})"
    if getattr(model, "is_gradient_checkpointing", False) or any(
        "CheckpointWrapper" in type(m).__name__ for m in model.modules()
    ):
        return "activation checkpointing is on (a recomputed layer would write the cache twice)"
    # A PEFT (LoRA) wrapper's forward passes its keywords on to the wrapped model's.
    inner = model.get_base_model() if hasattr(model, "peft_config") and hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(inner.forward).parameters:
        return f"{type(inner).__name__}.forward takes no logits_to_keep"
    if model.training:
        dropout = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
        if dropout or float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
            return "dropout is active (a shared prefix would share its dropout mask across the group)"
    return None


class UnsupportedCache(RuntimeError):
    """The model returned a cache this module cannot index exactly (e.g. sliding-window layers)."""


def prefix_shared_logits(model: torch.nn.Module, plan: PrefixPlan, input_ids: Tensor) -> Tensor:
    """(N, C, V) logits of each row's continuation: position j of row r is its column ``plan.columns[r, j]``.

    Only the logits that score a token are the model's (those before a row's last real column): a
    resident row's logits at its last column are its host's at that position.

    ``input_ids`` is the (N, T) batch the plan was made from. Raises ``UnsupportedCache`` before
    the continuation runs if the prefix cache is not a list of plain dynamic layers.
    """
    from transformers.cache_utils import DynamicCache, DynamicLayer

    device = input_ids.device
    width = plan.prefix_ids.shape[1]
    resident = plan.resident.to(device)
    # the prefix positions residents read (from the earliest): their logits are kept, else only the last
    first = int(plan.columns[plan.resident, 0].min()) if bool(plan.resident.any()) else width - 1
    prefix = model(input_ids=plan.prefix_ids.to(device), use_cache=True, logits_to_keep=width - first)
    cache = prefix.past_key_values
    if not isinstance(cache, DynamicCache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
        kinds = sorted({type(layer).__name__ for layer in getattr(cache, "layers", [])})
        raise UnsupportedCache(f"the model's cache is {type(cache).__name__} with layers {kinds}")
    running = (~resident).nonzero().flatten()
    logits = _continuation_logits(model, plan, input_ids, cache, running) if len(running) else None
    if len(running) == len(resident):
        return logits
    # residents: the prefix logits at their columns (clamped past a row's end, where nothing is scored)
    stays = resident.nonzero().flatten()
    columns = (plan.columns.to(device)[stays] - first).clamp(0, width - first - 1)
    kept = prefix.logits[plan.row_prefix.to(device)[stays]]  # (R, width - first, V)
    resident_logits = kept.gather(1, columns[..., None].expand(-1, -1, kept.shape[-1]))
    out = resident_logits.new_zeros(len(resident), plan.columns.shape[1], kept.shape[-1])
    out = out.index_copy(0, stays, resident_logits)
    if logits is not None:
        out = out.index_copy(0, running, torch.nn.functional.pad(logits, (0, 0, 0, out.shape[1] - logits.shape[1])))
    return out


def _continuation_logits(model, plan: PrefixPlan, input_ids: Tensor, cache, running: Tensor) -> Tensor:
    """(n, C', V) logits of the ``running`` rows' continuations against their prefixes' ``cache``
    (indexed out to them in place); C' is the longest of their continuations."""
    device = input_ids.device
    row_prefix = plan.row_prefix.to(device)[running]
    cache.batch_select_indices(row_prefix)  # (U, ...) -> (n, ...): autograd sums the rows' gradients back
    width = plan.prefix_ids.shape[1]
    prefix_lengths = plan.prefix_lengths.to(device)[row_prefix]
    prefix_mask = torch.arange(width, device=device)[None, :] < prefix_lengths[:, None]
    steps = int(plan.valid[running.cpu()].sum(dim=1).max())
    continuation = plan.take(input_ids)[running, :steps]
    # Ones over the continuation: its padding comes after a row's real tokens, which causal attention
    # never lets them see.
    mask = torch.cat([prefix_mask, torch.ones(len(row_prefix), steps, dtype=torch.bool, device=device)], dim=1)
    positions = prefix_lengths[:, None] + torch.arange(steps, device=device)
    return model(
        input_ids=continuation, attention_mask=mask.long(), position_ids=positions, past_key_values=cache
    ).logits


class PrefixSharing:
    """Plans each micro-batch for ``prefix_shared_logits``, or says the plain forward must run.

    Per model (by identity), once: ``unsupported_reason``, then a self-check on the first shared
    micro-batch (shared vs plain log-probabilities of a few rows, no gradient) that catches an
    architecture this was not tested on. A failed check, like any reason, is logged once and the
    model keeps the plain forward from then on.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.reasons: dict[int, str | None] = {}  # id(model) -> why not (None: it runs shared)
        self._verified: set[int] = set()

    def active(self, model) -> bool:
        """Whether ``model``'s micro-batches may run shared (no reason against it known so far)."""
        if not self.enabled:
            return False
        if id(model) not in self.reasons:
            self._set_reason(model, unsupported_reason(model))
        return self.reasons[id(model)] is None

    def plan(self, model, input_ids: Tensor, attention_mask: Tensor, prompt_lengths: Tensor | None):
        """A ``PrefixPlan`` for this (N, T) micro-batch, or None: run the plain forward."""
        if prompt_lengths is None or not self.active(model):
            return None
        key = id(model)
        plan = plan_prefix_sharing(input_ids, attention_mask, prompt_lengths)
        if plan is not None and key not in self._verified:
            self._verified.add(key)
            self._set_reason(model, self_check(model, plan, input_ids))
        return plan if self.reasons[key] is None else None

    def _set_reason(self, model, reason: str | None) -> None:
        self.reasons[id(model)] = reason
        if reason is not None:
            log.warning("prefix-shared training forward off for %s: %s", type(model).__name__, reason)


@torch.no_grad()
def self_check(model, plan: PrefixPlan, input_ids: Tensor, max_prefixes: int = 2) -> str | None:
    """Why the shared and plain log-probabilities of the first ``max_prefixes`` prefixes' rows differ, or None."""
    rows = (plan.row_prefix < max_prefixes).nonzero().flatten()
    sub_ids = input_ids[rows.to(input_ids.device)]
    sub = PrefixPlan(
        prefix_ids=plan.prefix_ids[:max_prefixes],
        prefix_lengths=plan.prefix_lengths[:max_prefixes],
        row_prefix=plan.row_prefix[rows],
        columns=plan.columns[rows],
        valid=plan.valid[rows],
        resident=plan.resident[rows],
    )
    try:
        shared = torch.log_softmax(prefix_shared_logits(model, sub, sub_ids).float(), dim=-1)
    except UnsupportedCache as error:
        return str(error)
    plain = torch.log_softmax(model(input_ids=sub_ids).logits.float(), dim=-1)
    plain = plain.gather(1, sub.columns.to(plain.device)[..., None].expand(-1, -1, plain.shape[-1]))
    # the logits that score a token: a row's last one scores nothing (and for a resident row it is the
    # host's next position, not the row's)
    valid = torch.zeros_like(sub.valid)
    valid[:, :-1] = sub.valid[:, 1:]
    valid = valid.to(plain.device)
    gap = float((shared - plain).abs().amax(dim=-1)[valid].max())
    tolerance = 1e-3 if next(model.parameters()).dtype == torch.float32 else 5e-2
    if not gap <= tolerance:
        return f"its shared and plain log-probabilities differ by {gap:.2g} (> {tolerance:g}) on this model"
    return None
