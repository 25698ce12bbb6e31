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
    attention_mask: torch.Tensor,
    max_rows: int,
    max_pad_ratio: float = MAX_PAD_RATIO,
    prompt_lengths: torch.Tensor | None = None,
    hosts: dict[int, list[int]] | None = None,
) -> list[tuple[torch.Tensor, int]]:
    """``(rows, width)`` pairs covering every row of an (N, T) mask exactly once.

    ``rows`` (long, at most ``max_rows``) index the batch; ``width`` is the number of leading
    positions the micro-batch needs (its longest row's end, at least 1). Within one micro-batch,
    ``max_pad_ratio * shortest >= longest``, of the rows' lengths.

    With ``prompt_lengths`` (N,) (the trainer runs each shared prompt once,
    models/prefix_sharing.py) a row costs its prompt once per micro-batch plus its continuation,
    so rows are first split into classes of prompt lengths within ``max_pad_ratio`` of each other
    (the long correction prompts apart from the short ones), and each class is planned by
    continuation length (completion + the last prompt token).

    With ``hosts`` as well ({row: the rows whose prompt can hold it}, ``models.prefix_plan.row_hosts``:
    a correction stream's anchor and its revisions, whose prompt holds the anchor's prompt and attempt),
    a row in none of its hosts' micro-batches moves to the first of them. There it resides in the
    shared prompt and runs no forward of its own, so it does not count against ``max_rows``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if max_pad_ratio < 1:
        raise ValueError(f"max_pad_ratio must be >= 1, got {max_pad_ratio}")
    ends = row_ends(attention_mask)
    if prompt_lengths is None:
        return [(rows, max(int(ends[rows].max()), 1)) for rows in _runs(ends, max_rows, max_pad_ratio)]
    plan = []
    for prompt_class in _runs(prompt_lengths, len(ends), max_pad_ratio):
        continuations = (ends - prompt_lengths + 1)[prompt_class]
        for rows in _runs(continuations, max_rows, max_pad_ratio):
            plan.append((prompt_class[rows], max(int(ends[prompt_class[rows]].max()), 1)))
    return plan if not hosts else _move_residents(plan, hosts, ends)


def _move_residents(plan, hosts: dict[int, list[int]], ends: torch.Tensor):
    """The plan with each row whose hosts are all in other micro-batches moved to the first of those."""
    members = [rows.tolist() for rows, _ in plan]
    batch_of = {r: index for index, rows in enumerate(members) for r in rows}
    for r, candidates in sorted(hosts.items()):
        found = {batch_of[h] for h in candidates}
        if found and batch_of[r] not in found:
            members[batch_of[r]].remove(r)
            batch_of[r] = min(found)
            members[batch_of[r]].append(r)
    ends_ = ends.tolist()
    return [(torch.tensor(rows, dtype=torch.long), max(max(ends_[r] for r in rows), 1)) for rows in members if rows]


def _runs(lengths: torch.Tensor, max_rows: int, max_pad_ratio: float) -> list[torch.Tensor]:
    """Indices of ``lengths`` sorted longest first, cut into runs of at most ``max_rows`` whose
    shortest is within ``max_pad_ratio`` of their longest."""
    order = torch.argsort(lengths, descending=True, stable=True)
    values = lengths[order].tolist()
    runs, start = [], 0
    while start < len(values):
        stop = start + 1
        while stop < len(values) and stop - start < max_rows and max_pad_ratio * values[stop] >= values[start]:
            stop += 1
        runs.append(order[start:stop])
        start = stop
    return runs


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
