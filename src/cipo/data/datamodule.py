"""Prompts for the rollout callback and the update schedule for the trainer.

``PromptDataModule`` owns the train and held-out records and a *stateful* prompt sampler
(its position is part of every checkpoint, so a resumed run sees the prompts it would have
seen). Its ``train_dataloader`` yields only update indices, ``updates_per_step`` per epoch:
the sequences themselves come from the rollout callback, generated at each epoch's start.

Prompt formatting: with ``prompt`` (a ``cipo.data.prompts.PromptStyle``, ``data.prompt`` in
config) the records' prompts are rendered at setup with the policy's tokenizer (chat template
or plain text) and the correction templates are derived from it; the tokenizer comes from
``attach_tokenizer`` (``cipo-train`` loads the policy first). Without it (the built-in task)
records and templates are used exactly as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from cipo.data.errors import BadRowError, DataError
from cipo.data.prompts import PromptStyle
from cipo.types import Record

RecordSource = Callable[[], list[Record]]
TRANSPLANT_FORMS = ("answer", "inline_check")


class UpdateIndices(Dataset):
    """0 .. n-1: one item per optimizer step of an RL step."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


def _lone_surrogate(text: str) -> int | None:
    """Where ``text`` holds half of a UTF-16 pair (a JSON escape like ``\\ud800`` alone), or None."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as err:
        return err.start


def check_records(records: list[Record], source: str) -> list[Record]:
    """Every record has a prompt and a string reference, and no text a tokenizer cannot encode."""
    for index, record in enumerate(records):
        if not isinstance(record.prompt, str) or not record.prompt.strip():
            raise ValueError(f"{source}: record {index} (id {record.id!r}) has an empty prompt")
        if not isinstance(record.reference, str):
            raise ValueError(f"{source}: record {index} (id {record.id!r}) has a non-string reference")
        texts = {"prompt": record.prompt, "reference": record.reference}
        texts.update({f"meta[{key!r}]": value for key, value in record.meta.items() if isinstance(value, str)})
        for name, text in texts.items():
            at = _lone_surrogate(text)
            if at is not None:
                raise ValueError(
                    f"{source}: record {index} (id {record.id!r}) has a lone surrogate {text[at]!r} in its {name} "
                    f"at character {at}: half of a UTF-16 pair (a JSON escape such as \\ud800 without its partner); "
                    "fix the data file"
                )
    return records


def require_heldout(datamodule: PromptDataModule, validation_every: int) -> None:
    """An empty held-out split is an error when validation is on: the run would train without
    ever validating (no ``val/*``), which is never what ``validation.every > 0`` asked for."""
    if validation_every and not datamodule.read_sources()[1]:
        raise ValueError(
            f"data.heldout produced no records, but validation.every={validation_every}: check data.heldout "
            "(its file, split, `where` filter, hash_split/heldout_percent or num_records) or set validation.every=0"
        )


def _read(key: str, source: RecordSource) -> list[Record]:
    try:
        return check_records(source(), key)
    except BadRowError as err:  # the hint names this node's on_error key
        raise err.for_key(key) from None
    except DataError as err:  # the loader names file, line and field; this names the config node
        raise DataError(f"{key}: {err}") from err


class PromptDataModule(L.LightningDataModule):
    def __init__(
        self,
        train: RecordSource,
        heldout: RecordSource,
        batch_size: int,
        correction_template: str | None = None,
        verdict_template: str | None = None,
        seed: int = 0,
        updates_per_step: int = 1,
        prompt: PromptStyle | None = None,
        verifier: str | None = None,
        transplant_as: str = "answer",
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size (prompts per RL step, an integer) must be >= 1, got {batch_size!r}")
        if prompt is None and (correction_template is None or verdict_template is None):
            raise ValueError("data.correction_template and data.verdict_template are required without data.prompt")
        if prompt is not None and (correction_template is not None or verdict_template is not None):
            raise ValueError(
                "data.prompt derives the correction templates: remove data.correction_template and "
                "data.verdict_template (or set data.prompt=null to use them as given)"
            )
        self.train_source, self.heldout_source = train, heldout
        self.batch_size = batch_size
        self.correction_template, self.verdict_template = correction_template, verdict_template
        self.seed, self.updates_per_step = seed, updates_per_step
        self.prompt, self.tokenizer = prompt, None
        # The verifier class (``_target_``) the records' references are written for; the commands
        # refuse another one before any work (cipo.settings.check_data_verifier).
        self.verifier = verifier
        # How algorithm.correction.transplant trains a fixed revision (rollout/collect.py):
        # "answer" to the original prompt, or as the "inline_check" that continues the attempt.
        if transplant_as not in TRANSPLANT_FORMS:
            raise ValueError(f"data.transplant_as must be one of {TRANSPLANT_FORMS}, got {transplant_as!r}")
        self.transplant_as = transplant_as
        self.train_records: list[Record] = []
        self.heldout_records: list[Record] = []
        self._sources: tuple[list[Record], list[Record]] | None = None
        self._pass, self._position = 0, 0
        self._order: list[int] = []

    def attach_tokenizer(self, tokenizer) -> None:
        """The policy's tokenizer, for chat-template prompts (call before ``setup``)."""
        self.tokenizer = tokenizer

    def read_sources(self) -> tuple[list[Record], list[Record]]:
        """Load and check both splits once (no tokenizer needed), so a bad data file fails before the policy loads."""
        if self._sources is None:
            train = _read("data.train", self.train_source)
            if not train:
                raise ValueError("data.train produced no records")
            self._sources = (train, _read("data.heldout", self.heldout_source))
        return self._sources

    def setup(self, stage: str | None = None) -> None:
        if not self.train_records:
            self.read_sources()
            train, heldout = self._sources
            if self.prompt is not None:
                formatter = self.prompt.build(self.tokenizer)
                train, heldout = formatter.format_records(train), formatter.format_records(heldout)
                self.correction_template = formatter.correction_template
                self.verdict_template = formatter.verdict_template
            self.train_records, self.heldout_records = train, heldout
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

    def next_prompts(self, count: int | None = None) -> list[Record]:
        """The next ``count`` (default ``batch_size``) train records; reshuffles after each full pass."""
        chosen, count = [], self.batch_size if count is None else count
        while len(chosen) < count:
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
