"""How a micro-batch's rows share prompts: the plan the prefix-shared forward runs (no model here).

Rows that repeat a prompt (a group's samples, an anchor's revisions) share it: each distinct prompt
minus its last token (its "prefix") runs once, and every row continues from its last prompt token.
A row whose scored positions all lie inside another prompt's prefix *resides* there and runs nothing
of its own: the correction stream's anchor, whose revisions' prompt is its own prompt and attempt
plus a suffix. ``models/prefix_sharing.py`` runs a plan; ``row_hosts`` tells the micro-batch planner
(``algorithms/micro_batches.py``) which rows to keep together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PrefixPlan:
    """How a batch of N right-padded rows splits into U shared prefixes and N continuations.

    prefix_ids      (U, P) long   each distinct prompt minus its last token, right-padded (pad = 0)
    prefix_lengths  (U,)   long   real tokens of each prefix (>= 1)
    row_prefix      (N,)   long   the prefix of each row
    columns         (N, C) long   the column of the original (N, T) row each continuation token is
                                  (clamped into range past a row's end)
    valid           (N, C) bool   True on a row's real continuation tokens
    resident        (N,)   bool   rows whose logits come from their prefix's forward (its
                                  ``row_prefix``, which holds all their scored positions): no
                                  continuation runs for them
    """

    prefix_ids: Tensor
    prefix_lengths: Tensor
    row_prefix: Tensor
    columns: Tensor
    valid: Tensor
    resident: Tensor

    @property
    def processed_tokens(self) -> int:
        """Real tokens the shared forward runs: each prefix once, then every non-resident row's continuation."""
        return int(self.prefix_lengths.sum()) + int(self.valid[~self.resident].sum())

    def take(self, values: Tensor, fill: float | int = 0) -> Tensor:
        """(N, T) -> (N, C): each row's continuation columns, ``fill`` past the row's end."""
        taken = values.gather(1, self.columns.to(values.device))
        return taken.masked_fill(~self.valid.to(values.device), fill)

    def put(self, continuation: Tensor, width: int) -> Tensor:
        """(N, C) -> (N, width): values back in their original columns, 0 elsewhere."""
        out = continuation.new_zeros(continuation.shape[0], width)
        valid = self.valid.to(continuation.device)
        rows = torch.arange(len(valid), device=valid.device)[:, None].expand_as(valid)
        out[rows[valid], self.columns.to(valid.device)[valid]] = continuation[valid]
        return out


def plan_prefix_sharing(input_ids: Tensor, attention_mask: Tensor, prompt_lengths: Tensor) -> PrefixPlan | None:
    """Group rows by identical prompt tokens; None when no prompt is shared, a prompt is a single
    token, or the rows are not right-padded.

    ``input_ids`` and ``attention_mask`` (N, T): rows of prompt then completion, real tokens first;
    ``prompt_lengths`` (N,) prompt tokens per row.
    """
    mask = attention_mask.bool().cpu()
    if mask.shape[1] > 1 and not bool((mask[:, 1:] <= mask[:, :-1]).all()):
        return None  # padding before a real token: rows are not prompt-at-column-0
    lengths, ends = prompt_lengths.tolist(), mask.sum(dim=1).tolist()
    if not lengths or min(lengths) < 2 or any(e < p for p, e in zip(lengths, ends)):
        return None
    rows = input_ids.cpu()
    index: dict[tuple[int, ...], int] = {}
    row_prefix = [index.setdefault(tuple(rows[r, : lengths[r]].tolist()), len(index)) for r in range(len(lengths))]
    prompts = list(index)
    resident = [False] * len(lengths)
    for r, host_rows in _row_hosts(rows, ends, lengths).items():
        row_prefix[r], resident[r] = row_prefix[host_rows[0]], True  # the first host's prefix holds it
    used = sorted(set(row_prefix))  # a prompt all of whose rows reside elsewhere is not run
    if len(used) == len(lengths) and not any(resident):
        return None  # nothing shared: the plain forward is as cheap
    renumber = {old: new for new, old in enumerate(used)}
    row_prefix = [renumber[u] for u in row_prefix]
    prompts = [prompts[u] for u in used]
    prefix_lengths = torch.tensor([len(p) - 1 for p in prompts])
    prefix_ids = torch.zeros(len(prompts), int(prefix_lengths.max()), dtype=torch.long)
    for u, prompt in enumerate(prompts):
        prefix_ids[u, : len(prompt) - 1] = torch.tensor(prompt[:-1])
    starts = torch.tensor(lengths) - 1  # the last prompt token opens the continuation
    spans = torch.tensor(ends) - starts
    offsets = torch.arange(int(spans.max()))
    columns = (starts[:, None] + offsets).clamp(max=input_ids.shape[1] - 1)
    return PrefixPlan(
        prefix_ids=prefix_ids.to(input_ids.device),
        prefix_lengths=prefix_lengths,
        row_prefix=torch.tensor(row_prefix),
        columns=columns,
        valid=offsets[None, :] < spans[:, None],
        resident=torch.tensor(resident),
    )


def prefix_starts(prefixes: Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], list[int]]:
    """Every start (>= 2 tokens) of each prefix -> the indices of the prefixes that begin with it, in order."""
    starts: dict[tuple[int, ...], list[int]] = {}
    for index, prefix in enumerate(prefixes):
        for length in range(2, len(prefix) + 1):
            holders = starts.setdefault(prefix[:length], [])
            if not holders or holders[-1] != index:
                holders.append(index)
    return starts


def reads(row: Tensor, end: int) -> tuple[int, ...]:
    """The tokens a row's scored positions read: all but its last real one."""
    return tuple(row[: end - 1].tolist())


def row_hosts(input_ids: Tensor, attention_mask: Tensor, prompt_lengths: Tensor) -> dict[int, list[int]]:
    """{row: the rows whose prompt can hold it}, over a whole (N, T) right-padded batch: the rows
    whose prompt minus its last token starts with everything the row's scored positions read."""
    ends = attention_mask.bool().sum(dim=1).tolist()
    return _row_hosts(input_ids.cpu(), ends, prompt_lengths.tolist())


def _row_hosts(tokens: Tensor, ends: list[int], lengths: list[int]) -> dict[int, list[int]]:
    """``row_hosts`` from (N, T) CPU token ids and each row's real and prompt token counts, which
    ``plan_prefix_sharing`` has already read off its micro-batch."""
    owners: dict[tuple[int, ...], list[int]] = {}  # each distinct prompt minus its last token -> its rows
    for r, length in enumerate(lengths):
        owners.setdefault(tuple(tokens[r, : length - 1].tolist()), []).append(r)
    prefixes = list(owners)
    starts = prefix_starts(prefixes)
    hosts = {}
    for r, (end, length) in enumerate(zip(ends, lengths, strict=True)):
        if end - 1 >= length:  # reads past its own prompt's prefix
            holders = starts.get(reads(tokens[r], end), ())
            if holders:
                hosts[r] = [h for u in holders for h in owners[prefixes[u]]]
    return hosts
