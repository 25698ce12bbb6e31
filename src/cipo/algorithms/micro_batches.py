"""How one RL step's batch is cut into mini-batches (optimizer steps) and micro-batches (forwards).

``mini_batch_rows``: with ``num_mini_batches`` > 1 each PPO epoch reshuffles the rows (a seeded
permutation per RL step and epoch) and mini-batch ``u`` takes chunk ``u % num_mini_batches``.

``plan_micro_batches``: how one mini-batch is cut into micro-batches for the forward/backward passes.

Only memory and speed depend on this plan, never the gradient: every row's loss terms are
normalised by the whole mini-batch's denominators (``losses.loss_denominator``), so any split gives
the same sum, taken in another order.

Rows are sorted longest first and each micro-batch is cut after its longest row's last real token.
A micro-batch also refuses a row shorter than ``1 / max_pad_ratio`` of its first one: the short
main rows and the long correction rows (whose prompt holds a whole attempt) then land in different
micro-batches. On the built-in task 46% of a GRPO step's padded positions were padding before this
(docs/performance.md).
"""

from __future__ import annotations

import torch

# Our choice: lower means less padding but more (smaller) forward calls; 1.5 keeps the built-in
# task's main and correction rows apart.
MAX_PAD_RATIO = 1.5


def row_ends(attention_mask: torch.Tensor) -> torch.Tensor:
    """(N,) long: 1 + the index of each row's last real token (0 for an all-padding row).

    ``attention_mask`` is (N, T), 1 on real tokens.
    """
    positions = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
    return (attention_mask.bool() * positions).amax(dim=1)


def plan_micro_batches(
    attention_mask: torch.Tensor, max_rows: int, max_pad_ratio: float = MAX_PAD_RATIO
) -> list[tuple[torch.Tensor, int]]:
    """``(rows, width)`` pairs covering every row of an (N, T) mask exactly once.

    ``rows`` (long, at most ``max_rows``) index the batch, longest first; ``width`` is the number
    of leading positions the micro-batch needs (its longest row's end, at least 1). Within one
    micro-batch, ``max_pad_ratio * shortest >= longest``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if max_pad_ratio < 1:
        raise ValueError(f"max_pad_ratio must be >= 1, got {max_pad_ratio}")
    ends = row_ends(attention_mask)
    order = torch.argsort(ends, descending=True, stable=True)
    lengths = ends[order].tolist()
    plan, start = [], 0
    while start < len(lengths):
        stop = start + 1
        while stop < len(lengths) and stop - start < max_rows and max_pad_ratio * lengths[stop] >= lengths[start]:
            stop += 1
        plan.append((order[start:stop], max(lengths[start], 1)))
        start = stop
    return plan


def mini_batch_rows(num_rows: int, update: int, num_mini_batches: int, step: int) -> torch.Tensor:
    """(rows,) long: the rows of optimizer update ``update`` (0-based) of RL step ``step``.

    Update ``u`` is mini-batch ``u % num_mini_batches`` of PPO epoch ``u // num_mini_batches``;
    the row order is reshuffled every PPO epoch (seeded by step and epoch, so a resumed run
    draws the same mini-batches).
    """
    if num_mini_batches == 1:
        return torch.arange(num_rows)
    generator = torch.Generator().manual_seed(step * 1000 + update // num_mini_batches)
    order = torch.randperm(num_rows, generator=generator)
    return order.chunk(num_mini_batches)[update % num_mini_batches]
