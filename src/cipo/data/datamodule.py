"""Prompts for the rollout callback and the update schedule for the trainer.

``PromptDataModule`` owns the train and held-out records and a *stateful* prompt sampler
(its position is part of every checkpoint, so a resumed run sees the prompts it would have
seen). Its ``train_dataloader`` yields only update indices, ``updates_per_step`` per epoch:
the sequences themselves come from the rollout callback, generated at each epoch's start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from cipo.types import Record

RecordSource = Callable[[], list[Record]]


class UpdateIndices(Dataset):
    """0 .. n-1: one item per optimizer step of an RL step."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


def check_records(records: list[Record], source: str) -> list[Record]:
    for index, record in enumerate(records):
        if not isinstance(record.prompt, str) or not record.prompt.strip():
            raise ValueError(f"{source}: record {index} (id {record.id!r}) has an empty prompt")
        if not isinstance(record.reference, str):
            raise ValueError(f"{source}: record {index} (id {record.id!r}) has a non-string reference")
    return records


class PromptDataModule(L.LightningDataModule):
    def __init__(
        self,
        train: RecordSource,
        heldout: RecordSource,
        batch_size: int,
        correction_template: str,
        verdict_template: str,
        seed: int = 0,
        updates_per_step: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size (prompts per RL step, an integer) must be >= 1, got {batch_size!r}")
        self.train_source, self.heldout_source = train, heldout
        self.batch_size = batch_size
        self.correction_template, self.verdict_template = correction_template, verdict_template
        self.seed, self.updates_per_step = seed, updates_per_step
        self.train_records: list[Record] = []
        self.heldout_records: list[Record] = []
        self._pass, self._position = 0, 0
        self._order: list[int] = []

    def setup(self, stage: str | None = None) -> None:
        if not self.train_records:
            self.train_records = check_records(self.train_source(), "data.train")
            self.heldout_records = check_records(self.heldout_source(), "data.heldout")
            if not self.train_records:
                raise ValueError("data.train produced no records")
            self._order = self._permutation(self._pass)

    def keep_records(self, keep: Callable[[Record], bool]) -> tuple[int, int]:
        """Drop the records ``keep`` rejects from both splits (at start); returns (train, held-out) dropped."""
        before = len(self.train_records), len(self.heldout_records)
        self.train_records = [record for record in self.train_records if keep(record)]
        self.heldout_records = [record for record in self.heldout_records if keep(record)]
        self._order = self._permutation(self._pass)
        return before[0] - len(self.train_records), before[1] - len(self.heldout_records)

    def _permutation(self, pass_index: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 7919 + pass_index)
        return torch.randperm(len(self.train_records), generator=generator).tolist()

    def next_prompts(self) -> list[Record]:
        """The next ``batch_size`` train records; reshuffles after each full pass."""
        chosen = []
        while len(chosen) < self.batch_size:
            if self._position >= len(self._order):
                self._pass, self._position = self._pass + 1, 0
                self._order = self._permutation(self._pass)
            chosen.append(self.train_records[self._order[self._position]])
            self._position += 1
        return chosen

    def train_dataloader(self) -> DataLoader:
        # Its own generator: a DataLoader draws a base seed from the *global* RNG each time Lightning
        # makes an iterator, which happens at a different moment in a resumed epoch than in a fresh
        # one; the indices need no randomness, and the global RNG stream then resumes exactly.
        return DataLoader(
            UpdateIndices(self.updates_per_step), batch_size=None, shuffle=False, generator=torch.Generator()
        )

    def state_dict(self) -> dict[str, Any]:
        return {"pass": self._pass, "position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pass, self._position = int(state["pass"]), int(state["position"])
        if self.train_records:
            self._order = self._permutation(self._pass)
