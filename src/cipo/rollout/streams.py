"""The rows of one rollout stream before packing (``collect.py``'s working data)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from cipo.types import Completion, VerifierResult


@dataclass
class Stream:
    """Flat rows of one stream, group by group (G samples of a prompt / M revisions of an anchor).

    ``prompts`` are texts (for the sample table), ``prompt_ids`` the exact ids each row was sampled
    from (what the trainer packs: token in, token out).
    """

    prompts: list[str] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    results: list[VerifierResult] = field(default_factory=list)
    rewards: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    advantages: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    keep: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    sft: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))

    @property
    def success(self) -> torch.Tensor:
        return torch.tensor([r.success for r in self.results], dtype=torch.bool)

    def rows(self, index: list[int]) -> Stream:
        """The rows ``index``, in that order (every field that has one entry per row)."""
        picked = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                picked[f.name] = value[index] if value.numel() else value
            else:
                picked[f.name] = [value[i] for i in index] if value else value
        return Stream(**picked)

    def concat(self, other: Stream) -> Stream:
        """This stream's rows, then ``other``'s (both verified and scored alike)."""
        joined = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            joined[f.name] = torch.cat([mine, theirs]) if isinstance(mine, torch.Tensor) else mine + theirs
        return Stream(**joined)
