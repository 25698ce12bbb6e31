"""Merging per-rank rollout metrics gives what one process computes on the whole step."""

from __future__ import annotations

import pytest
import torch

from cipo.algorithms.advantages import group_outcome_fractions
from cipo.algorithms.correction import correction_outcomes
from cipo.rollout.rank_metrics import merge_rank_metrics, pooled_std


def _step_metrics(rewards: torch.Tensor, anchor_success: torch.Tensor, revised: torch.Tensor, seconds: float):
    """The metrics collect_round computes, on a hand-made shard (G = 4)."""
    success = rewards > 0
    outcomes = correction_outcomes(anchor_success, revised)
    metrics = {
        "rollout/reward_mean": float(rewards.mean()),
        "rollout/reward_std": float(rewards.std()),
        "rollout/accuracy": float(success.float().mean()),
        **{f"rollout/{k}": v for k, v in group_outcome_fractions(success, 4).items()},
        "rollout/completion_len_min": float(rewards.numel()),
        "verify/status_ok": float(success.sum()),
        "correction/num_anchors": float(anchor_success.numel()),
        "correction/accuracy": float(revised.float().mean()),
        "time/generate_s": seconds,
        "rollout/generated_tokens": 100.0,
        "throughput/tokens_per_s": 100.0 / seconds,
    }
    metrics.update({f"correction/{k}": float(v) for k, v in outcomes.items() if v is not None})
    return metrics


def test_merge_equals_the_single_process_metrics():
    rewards = torch.tensor([1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1], dtype=torch.float32)
    anchors = torch.tensor([True, True, True, False, False, False, False, False])  # rank 0: 3 right, rank 1: none
    revised = torch.tensor([True, False, True, True, False, True, False, False])
    whole = _step_metrics(rewards, anchors, revised, 2.0)
    ranks = [
        _step_metrics(rewards[:8], anchors[:4], revised[:4], 2.0),
        _step_metrics(rewards[8:], anchors[4:], revised[4:], 1.0),
    ]
    assert "correction/retention" not in ranks[1]  # no right anchor there: weighs nothing
    merged = merge_rank_metrics(ranks, samples_per_rank=8)
    assert merged["rollout/completion_len_min"] == 8.0  # min of the per-rank values
    assert merged["rollout/generated_tokens"] == 200.0 and merged["throughput/tokens_per_s"] == 100.0
    for name in whole:
        if name not in ("rollout/completion_len_min", "rollout/generated_tokens", "throughput/tokens_per_s"):
            assert merged[name] == pytest.approx(whole[name]), name


def test_pooled_std_matches_torch():
    data = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    stds = [float(row.std()) for row in data]
    means = [float(row.mean()) for row in data]
    assert pooled_std(stds, means, 10) == pytest.approx(float(data.flatten().std()), rel=1e-5)


def test_one_rank_is_returned_as_is():
    assert merge_rank_metrics([{"rollout/accuracy": 0.5}], samples_per_rank=4) == {"rollout/accuracy": 0.5}
