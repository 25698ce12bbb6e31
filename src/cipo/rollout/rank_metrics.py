"""One step's rollout metrics from the metrics each training process computed on its shard.

Every rank collects an equal, disjoint share of the step's prompts (whole groups: a group never
spans ranks) and of its anchors, and ``collect_round`` returns that rank's metrics. Merging them
by averaging would be wrong for counts, extremes, timings and for rates whose denominators
differ between ranks (a rank with few correct anchors must weigh little in the retention, which
also drives the replay controller). The rules, by metric name:

    counts   verify/status_*, */num_*, */generated_tokens     sum
    extremes *_min / *_max                                    min / max
    time/*   the step waits for the slowest rank              max
    rates    fix_rate (per wrong anchor), retention and break_rate (per right anchor),
             other correction/* means (per revision), frac_anchors_in_band (per anchor)
                                                              count-weighted mean
    reward_std                                                pooled over all samples
    throughput/tokens_per_s                                   all tokens / slowest generation
    anything else: a per-sample or per-group mean over equal shards, so the plain mean is exact.
A rate a rank could not measure (no anchors of that kind) is absent there and weighs nothing.
"""

from __future__ import annotations

import math

_REVISIONS = ("correction/num_from_wrong", "correction/num_from_right")
_WEIGHTS = {
    "correction/fix_rate": ("correction/num_from_wrong",),
    "correction/retention": ("correction/num_from_right",),
    "correction/break_rate": ("correction/num_from_right",),
    "correction/frac_anchors_in_band": ("correction/num_anchors",),
    "correction/accuracy": _REVISIONS,
    "correction/accuracy_delta": _REVISIONS,
    "correction/reward_mean": _REVISIONS,
    "correction/completion_len_mean": _REVISIONS,
    "correction/frac_truncated": _REVISIONS,
}


def merge_rank_metrics(per_rank: list[dict[str, float]], samples_per_rank: int) -> dict[str, float]:
    """The step's metrics from each rank's (see the module docstring for the rules).

    Args:
        per_rank: one metrics dict per rank, in rank order.
        samples_per_rank: main-stream samples each rank drew (its prompts x group size).
    """
    if len(per_rank) == 1:
        return dict(per_rank[0])
    names = sorted({name for metrics in per_rank for name in metrics})
    merged: dict[str, float] = {}
    for name in names:
        present = [metrics for metrics in per_rank if name in metrics]
        values = [metrics[name] for metrics in present]
        if name.startswith("verify/status_") or "/num_" in name or name.endswith("generated_tokens"):
            merged[name] = sum(values)
        elif name.endswith("_min"):
            merged[name] = min(values)
        elif name.endswith("_max") or name.startswith("time/"):
            merged[name] = max(values)
        elif name in _WEIGHTS:
            weights = [sum(metrics.get(key, 0.0) for key in _WEIGHTS[name]) for metrics in present]
            total = sum(weights)
            merged[name] = sum(w * v for w, v in zip(weights, values)) / total if total else sum(values) / len(values)
        elif name.endswith("/reward_std"):
            means = [metrics.get(name.replace("_std", "_mean"), 0.0) for metrics in present]
            merged[name] = pooled_std(values, means, samples_per_rank)
        else:
            merged[name] = sum(values) / len(values)
    if "throughput/tokens_per_s" in merged:
        merged["throughput/tokens_per_s"] = merged.get("rollout/generated_tokens", 0.0) / max(
            merged.get("time/generate_s", 0.0), 1e-9
        )
    return merged


def pooled_std(stds: list[float], means: list[float], n: int) -> float:
    """Unbiased std of the union of equal-sized samples (n each) from their unbiased stds and means."""
    total = n * len(stds)
    if total < 2:
        return 0.0
    mean = sum(means) / len(means)
    squares = sum((n - 1) * s * s + n * (m - mean) ** 2 for s, m in zip(stds, means))
    return math.sqrt(max(squares, 0.0) / (total - 1))
