"""What one rollout round measured, as counts and sums: the source of every rollout metric.

``collect_round`` fills a ``RoundCounts``; everything downstream derives from it:

    metrics()     the logged rollout/*, verify/*, correction/*, time/*, throughput/* values
    retention_counts()  the replay controller's input (``update_replay_ratio``)
    merge(ranks)  the whole step's counts from each training process's shard

Several processes: every rank collects an equal, disjoint share of the step's prompts (whole
groups) and anchors. Counts and sums add up across ranks; extremes take the min / max; timings take
the max (the step waits for the slowest rank). Rates and means are derived from the merged sums, so
a rank with few correct anchors weighs little in the retention, and the merged metrics are those one
process would have computed on the whole step. How each field merges is declared on the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from cipo.algorithms.anchors import PASS_RATE_BUCKETS
from cipo.algorithms.correction import CorrectionCounts
from cipo.algorithms.replay import RetentionCounts
from cipo.types import Completion, VerifierResult, VerifyStatus

_MIN, _MAX, _ANY = {"merge": "min"}, {"merge": "max"}, {"merge": "any"}


@dataclass(frozen=True)
class StreamCounts:
    """One stream's generated samples (main attempts, or revisions)."""

    samples: int = 0
    correct: int = 0
    reward_sum: float = 0.0  # rewards as trained (the correction stream's are risk-averse shaped)
    reward_sq_sum: float = 0.0
    length_sum: int = 0  # generated tokens
    length_min: int | None = field(default=None, metadata=_MIN)
    length_max: int | None = field(default=None, metadata=_MAX)
    truncated: int = 0  # stopped by the length limit
    empty: int = 0  # no text at all (reward 0)

    @classmethod
    def of(cls, completions: Sequence[Completion], success: Tensor, rewards: Tensor) -> StreamCounts:
        """Counts of ``completions`` with their (N,) successes and (N,) rewards."""
        lengths = [len(c.token_ids) for c in completions]
        values = rewards.double()
        return cls(
            samples=len(completions),
            correct=int(success.sum()),
            reward_sum=float(values.sum()),
            reward_sq_sum=float((values * values).sum()),
            length_sum=sum(lengths),
            length_min=min(lengths, default=None),
            length_max=max(lengths, default=None),
            truncated=sum(not c.finished for c in completions),
            empty=sum(not c.text.strip() for c in completions),
        )

    def reward_std(self) -> float:
        """Unbiased std of the rewards (0.0 for fewer than two samples)."""
        n = self.samples
        if n < 2:
            return 0.0
        return math.sqrt(max(self.reward_sq_sum - self.reward_sum * self.reward_sum / n, 0.0) / (n - 1))

    def length_metrics(self, prefix: str) -> dict[str, float]:
        if not self.samples:
            return {}
        return {
            f"{prefix}completion_len_mean": self.length_sum / self.samples,
            f"{prefix}completion_len_min": float(self.length_min),
            f"{prefix}completion_len_max": float(self.length_max),
            f"{prefix}frac_truncated": self.truncated / self.samples,
            f"{prefix}num_empty": float(self.empty),
        }


def status_counts(results: Sequence[VerifierResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
    return counts


@dataclass(frozen=True)
class RoundCounts:
    """One round (one rank's shard, or the merged step) of main attempts and corrections."""

    main: StreamCounts = field(default_factory=StreamCounts)
    groups: int = 0  # prompts
    zero_std_groups: int = 0  # all rewards identical: no signal
    all_correct_groups: int = 0
    all_wrong_groups: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # main-stream verifier statuses
    correction_ran: bool = field(default=False, metadata=_ANY)  # anchors were selected this round
    anchors: int = 0
    correct_anchors: int = 0
    anchors_in_band: int = 0
    groups_in_band: int = 0
    anchors_by_pass_rate: dict[str, int] = field(default_factory=dict)  # PASS_RATE_BUCKETS of their prompts
    # the other G - 1 samples of each correct anchor's prompt: what re-solving would keep
    resolve_correct: int = 0
    resolve_samples: int = 0
    revisions: StreamCounts = field(default_factory=StreamCounts)
    outcomes: CorrectionCounts = field(default_factory=CorrectionCounts)
    transplanted: int = 0  # fixed revisions also trained as answers to their prompts
    generated_tokens: int = 0
    dynamic_sampling: bool = field(default=False, metadata=_ANY)  # algorithm.dynamic_sampling ran
    extra_rounds: int = field(default=0, metadata=_MAX)  # its refill rounds (the step waits for the most)
    trained_groups: int = 0  # groups the main stream's loss saw (dynamic sampling)
    generate_s: float = field(default=0.0, metadata=_MAX)
    verify_s: float = field(default=0.0, metadata=_MAX)
    rollout_s: float = field(default=0.0, metadata=_MAX)  # the whole round, set by the caller

    @property
    def retention(self) -> float | None:
        """Right -> right share of the revisions of correct anchors (None: no correct anchor)."""
        return self.outcomes.rates().get("retention")

    def retention_counts(self) -> RetentionCounts | None:
        """The replay controller's evidence (None: no correction stream ran this round)."""
        if not self.correction_ran:
            return None
        out = self.outcomes
        return RetentionCounts(out.kept, out.from_right, self.resolve_correct, self.resolve_samples)

    @staticmethod
    def merge(per_rank: Sequence[RoundCounts]) -> RoundCounts:
        """The step's counts from every rank's (one rank: returned as is)."""
        if len(per_rank) == 1:
            return per_rank[0]
        return _merge(list(per_rank))

    def metrics(self) -> dict[str, float]:
        """Every logged rollout value (names as in docs; rates absent when their denominator is 0)."""
        main, groups = self.main, max(self.groups, 1)
        metrics = {
            "rollout/reward_mean": main.reward_sum / main.samples if main.samples else 0.0,
            "rollout/reward_std": main.reward_std(),
            "rollout/accuracy": main.correct / main.samples if main.samples else 0.0,
            "rollout/frac_zero_std": self.zero_std_groups / groups if self.groups else 0.0,
            "rollout/frac_all_correct": self.all_correct_groups / groups,
            "rollout/frac_all_wrong": self.all_wrong_groups / groups,
            "rollout/frac_mixed": (self.groups - self.all_correct_groups - self.all_wrong_groups) / groups,
            **main.length_metrics("rollout/"),
            **{
                f"verify/status_{s.value}": float(self.statuses[s.value])
                for s in VerifyStatus
                if self.statuses.get(s.value)
            },
        }
        if self.dynamic_sampling:
            metrics["rollout/dynamic_extra_rounds"] = float(self.extra_rounds)
            metrics["rollout/dynamic_trained_groups"] = float(self.trained_groups)
        if self.correction_ran:
            metrics.update(self._correction_metrics())
        metrics["correction/num_anchors"] = float(self.anchors)
        metrics.update(
            {
                "time/generate_s": self.generate_s,
                "time/verify_s": self.verify_s,
                "rollout/generated_tokens": float(self.generated_tokens),
                "throughput/tokens_per_s": self.generated_tokens / max(self.generate_s, 1e-9),
            }
        )
        if self.rollout_s:
            metrics["time/rollout_s"] = self.rollout_s
        return metrics

    def _correction_metrics(self) -> dict[str, float]:
        out, revisions = self.outcomes, self.revisions
        metrics = {
            "correction/num_anchors": float(self.anchors),
            "correction/num_correct_anchors": float(self.correct_anchors),
            "correction/num_failed_anchors": float(self.anchors - self.correct_anchors),
            "correction/band_occupancy": self.groups_in_band / self.groups if self.groups else 0.0,
            "correction/frac_anchors_in_band": self.anchors_in_band / self.anchors if self.anchors else 0.0,
            "correction/num_from_wrong": out.from_wrong,
            "correction/num_from_right": out.from_right,
            "correction/num_fixed": out.fixed,
            "correction/num_kept": out.kept,
            "correction/num_broken": out.broken,
        }
        if self.anchors:
            metrics.update(
                {
                    f"correction/anchor_share_pass_{name}": self.anchors_by_pass_rate.get(name, 0) / self.anchors
                    for name in PASS_RATE_BUCKETS
                }
            )
        metrics["correction/num_resolve_correct"] = float(self.resolve_correct)
        metrics["correction/num_resolve_samples"] = float(self.resolve_samples)
        if self.resolve_samples:
            metrics["correction/resolve_rate"] = self.resolve_correct / self.resolve_samples
        metrics["correction/num_transplanted"] = float(self.transplanted)
        rates = out.rates()
        metrics.update(
            {f"correction/{name}": rates[name] for name in ("fix_rate", "retention", "break_rate") if name in rates}
        )
        if "delta" in rates:
            metrics["correction/accuracy_delta"] = rates["delta"]
        if revisions.samples:
            metrics["correction/accuracy"] = revisions.correct / revisions.samples
            metrics["correction/reward_mean"] = revisions.reward_sum / revisions.samples
            metrics.update(revisions.length_metrics("correction/"))
        return metrics


def _merge(values: list):
    """Field-wise merge of equal-typed dataclasses / dicts / numbers (see the field metadata)."""
    first = values[0]
    if dataclasses.is_dataclass(first):
        merged = {}
        for f in dataclasses.fields(first):
            items = [getattr(v, f.name) for v in values]
            rule = f.metadata.get("merge", "sum")
            if rule == "sum":
                merged[f.name] = _merge(items)
            else:
                present = [item for item in items if item is not None]
                reduce = {"min": min, "max": max, "any": any}[rule]
                merged[f.name] = reduce(present) if present else None
        return type(first)(**merged)
    if isinstance(first, dict):
        keys = dict.fromkeys(key for value in values for key in value)
        return {key: sum(value.get(key, 0) for value in values) for key in keys}
    return sum(values)
