"""The contract every generation backend meets (Hugging Face ``generate``, vLLM).

``SamplingSettings`` (what to sample) lives in ``cipo.types``; it is imported here for the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cipo.types import Completion, SamplingSettings

# A prompt is text (tokenised by the engine with the trainer's tokenizer, no special tokens
# added) or token ids, used as given: a correction prompt carries the attempt's *sampled* ids,
# which re-encoding its decoded text could split differently (token in, token out).
Prompt = str | list[int]


def spread_seed(*parts: int) -> int:
    """A sampling seed in [0, 2**32) hashed from ``parts`` (numpy's ``SeedSequence``).

    Why: reseeding the sampler every step from seeds only a few apart (``base + 7 x step``) left
    cipo 0.02-0.03 behind TRL's single stream at 100 steps over 20 seeds a side (docs/parity.md),
    although no correlation between nearby seeds of torch's generator was found; seeds hashed
    from the same values matched the single stream. Negative parts are taken modulo 2**64.
    """
    entropy = [part % 2**64 for part in parts]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def prompt_token_ids(tokenizer, prompt: Prompt) -> list[int]:
    """The ids an engine feeds the model for ``prompt``."""
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return list(prompt)


@dataclass(frozen=True)
class SyncReport:
    """What a weight sync proved: the engine and the trainer score a fixed probe alike.

    ``logprob_diff`` is the max absolute per-token log-probability difference on the probe;
    above ``tolerance`` (``rollout.sync_tolerance``) the sync is treated as failed.
    """

    logprob_diff: float
    tolerance: float
    push_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.logprob_diff <= self.tolerance


class RolloutEngine(Protocol):
    """Generates completions with per-token sampling logprobs from the current policy."""

    def generate(self, prompts: list[Prompt], n: int, settings: SamplingSettings, seed: int) -> list[list[Completion]]:
        """``n`` completions per prompt (text or token ids), outer list aligned with ``prompts``."""
        ...

    def sync_weights(self) -> SyncReport | None:
        """Make the engine sample from the trainer's current weights.

        Engines with their own copy of the weights return a ``SyncReport`` (the caller logs
        and enforces it); engines that sample from the trainer's model return None.
        An engine may also define ``sleep()``: the callback calls it before training so the
        engine frees accelerator memory; the next ``generate`` / ``sync_weights`` wakes it.
        """
        ...
