"""Dataclasses that cross module boundaries.

Shapes: ``N`` is the number of sequences in a batch, ``T`` the padded token length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: verifier worker processes import this module and must not pay for torch
    # (about 1 s and 200 MB per process).
    import torch


class VerifyStatus(str, Enum):
    """Why a completion got the reward it got.

    Skips (``is_skip``: ``skipped``, ``unparseable_gold``) are never a reward or a penalty: the
    rollout drops the whole group. Math uses ok/wrong/no_answer/malformed/unparseable_gold;
    code uses passed/failed/runtime_error/syntax_error/memory_exceeded/no_code; both use
    timeout (the sample ran out of time) and error (the verifier itself failed, e.g. a crashed
    worker process).
    """

    OK = "ok"
    WRONG = "wrong"
    NO_ANSWER = "no_answer"
    MALFORMED = "malformed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    ERROR = "error"
    UNPARSEABLE_GOLD = "unparseable_gold"
    PASSED = "passed"
    FAILED = "failed"
    MEMORY_EXCEEDED = "memory_exceeded"
    RUNTIME_ERROR = "runtime_error"
    SYNTAX_ERROR = "syntax_error"
    NO_CODE = "no_code"

    @property
    def is_skip(self) -> bool:
        """True when the sample must not be trained on (the reference, not the policy, is at fault)."""
        return self in (VerifyStatus.SKIPPED, VerifyStatus.UNPARSEABLE_GOLD)


@dataclass(frozen=True)
class SamplingSettings:
    """What to sample: shared by the train, correction and validation rounds."""

    max_new_tokens: int = 96
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"rollout.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"rollout.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"rollout.top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class VerifierResult:
    """``success`` is the all-or-nothing verdict (all tests pass); ``score`` the fraction of
    tests passed where a verifier has several tests (code), else None."""

    success: bool
    reward: float
    status: VerifyStatus
    feedback: str = ""
    score: float | None = None


@dataclass(frozen=True)
class Record:
    """One problem: what the policy sees and what the verifier checks against."""

    id: str
    prompt: str
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a prompt.

    ``token_ids`` are the generated ids without padding (EOS included if it was sampled);
    ``logprobs`` the sampling engine's log-probabilities of those ids, one per id.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finished: bool


@dataclass
class RolloutBatch:
    """Everything one RL step trains on, already tokenised and padded.

    Tensors (``N`` sequences, ``T`` tokens; prompt + completion, left-aligned, right padded):
      input_ids        (N, T) long
      attention_mask   (N, T) long   1 on real tokens
      loss_mask        (N, T) float  1 on completion tokens that the loss sees
      advantages       (N,)   float  one scalar per sequence
      is_correction    (N,)   bool   True for correction episodes
      sft_mask         (N,)   bool   sequences trained with a supervised loss instead of RL
      is_transplant    (N,)   bool   main-stream rows that are transplanted revisions (off-policy:
                                     trained with policy shaping, not the clipped ratio)
      engine_logprobs  (N, T) float  the engine's sampling logprobs (for is_weights / diffs)
      old_logprobs     (N, T) float  the trainer's logprobs before this step's first update
                                     (read on loss tokens only; prompt positions may be 0);
                                     None until the module computes them (only needed when
                                     one rollout batch feeds several optimizer steps)
      prompt_lengths   (N,)   long   prompt tokens of each row (None: unknown, so the trainer
                                     cannot share prompts between rows)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    is_correction: torch.Tensor
    sft_mask: torch.Tensor
    is_transplant: torch.Tensor
    engine_logprobs: torch.Tensor
    old_logprobs: torch.Tensor | None = None
    prompt_lengths: torch.Tensor | None = None
    step: int = -1

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def select(self, index: torch.Tensor, width: int | None = None) -> RolloutBatch:
        """Rows ``index`` of every tensor field (metadata is not copied); with ``width``, only the
        first ``width`` positions of the (N, T) fields (e.g. cutting right padding)."""
        cols = slice(None, width)
        return RolloutBatch(
            input_ids=self.input_ids[index, cols],
            attention_mask=self.attention_mask[index, cols],
            loss_mask=self.loss_mask[index, cols],
            advantages=self.advantages[index],
            is_correction=self.is_correction[index],
            sft_mask=self.sft_mask[index],
            is_transplant=self.is_transplant[index],
            engine_logprobs=self.engine_logprobs[index, cols],
            old_logprobs=None if self.old_logprobs is None else self.old_logprobs[index, cols],
            prompt_lengths=None if self.prompt_lengths is None else self.prompt_lengths[index],
            step=self.step,
        )

    def take_columns(self, columns: torch.Tensor, valid: torch.Tensor) -> RolloutBatch:
        """Every row's own columns: (N, T) fields -> (N, C) with ``columns`` (N, C) long, zero (and
        masked out) where ``valid`` (N, C) bool is False. Per-row fields are kept; prompt lengths
        no longer apply (None)."""

        def take(values: torch.Tensor) -> torch.Tensor:
            return values.gather(1, columns).masked_fill(~valid, 0)

        return RolloutBatch(
            input_ids=take(self.input_ids),
            attention_mask=take(self.attention_mask),
            loss_mask=take(self.loss_mask),
            advantages=self.advantages,
            is_correction=self.is_correction,
            sft_mask=self.sft_mask,
            is_transplant=self.is_transplant,
            engine_logprobs=take(self.engine_logprobs),
            old_logprobs=None if self.old_logprobs is None else take(self.old_logprobs),
            step=self.step,
        )
