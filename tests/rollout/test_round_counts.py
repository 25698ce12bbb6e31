"""RoundCounts: the metrics derived from counts, and merging ranks gives what one process computes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cipo.algorithms.correction import CorrectionCounts
from cipo.rollout.round_counts import RoundCounts, StreamCounts
from cipo.types import Completion

G = 4


def _completions(lengths: list[int]) -> list[Completion]:
    """``length`` tokens each; 0 tokens is an empty completion, 6 or more hit the length limit."""
    return [Completion(text="x" * n, token_ids=[1] * n, logprobs=[0.0] * n, finished=n < 6) for n in lengths]


def _counts(rewards, anchor_success, revised, seconds, lengths=None) -> RoundCounts:
    """What collect_round counts, on a hand-made shard (G = 4, M = 1)."""
    success = rewards > 0
    grouped, by_group = success.view(-1, G), rewards.view(-1, G)
    lengths = lengths or [3 + i % 4 for i in range(rewards.numel())]
    return RoundCounts(
        main=StreamCounts.of(_completions(lengths), success, rewards),
        groups=grouped.shape[0],
        zero_std_groups=int((by_group.amax(1) == by_group.amin(1)).sum()),
        all_correct_groups=int(grouped.all(1).sum()),
        all_wrong_groups=int((~grouped).all(1).sum()),
        statuses={"ok": int(success.sum()), "wrong": int((~success).sum())},
        correction_ran=True,
        anchors=anchor_success.numel(),
        correct_anchors=int(anchor_success.sum()),
        anchors_in_band=anchor_success.numel(),
        groups_in_band=1,
        revisions=StreamCounts.of(_completions([5] * revised.numel()), revised, revised.float()),
        outcomes=CorrectionCounts.of(anchor_success, revised),
        generated_tokens=100,
        generate_s=seconds,
        verify_s=seconds / 2,
    )


REWARDS = torch.tensor([1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1], dtype=torch.float32)
ANCHORS = torch.tensor([True, True, True, False, False, False, False, False])  # rank 0: 3 right, rank 1: none
REVISED = torch.tensor([True, False, True, True, False, True, False, False])


def test_metrics_by_hand():
    m = _counts(REWARDS[:8], ANCHORS[:4], REVISED[:4], 2.0, lengths=[0, 3, 4, 5, 6, 7, 3, 4]).metrics()
    assert m["rollout/accuracy"] == m["rollout/reward_mean"] == 5 / 8
    assert m["rollout/reward_std"] == pytest.approx(float(REWARDS[:8].std()))
    assert m["rollout/frac_all_correct"] == 0.0 and m["rollout/frac_mixed"] == 1.0 and m["rollout/frac_zero_std"] == 0
    assert m["rollout/completion_len_mean"] == 32 / 8 and m["rollout/completion_len_min"] == 0
    assert m["rollout/completion_len_max"] == 7 and m["rollout/frac_truncated"] == 2 / 8
    assert m["rollout/num_empty"] == 1 and m["verify/status_ok"] == 5 and m["verify/status_wrong"] == 3
    assert m["correction/num_anchors"] == 4 and m["correction/num_failed_anchors"] == 1
    assert m["correction/band_occupancy"] == 0.5 and m["correction/frac_anchors_in_band"] == 1.0
    # anchors right, right, right, wrong; revisions right, wrong, right, right
    assert m["correction/retention"] == 2 / 3 and m["correction/break_rate"] == 1 / 3
    assert m["correction/fix_rate"] == 1.0 and m["correction/accuracy_delta"] == 0.0
    assert m["correction/accuracy"] == 3 / 4 and m["correction/reward_mean"] == 3 / 4
    assert m["throughput/tokens_per_s"] == 50.0 and m["time/verify_s"] == 1.0


def test_merge_equals_the_single_process_metrics():
    whole = _counts(REWARDS, ANCHORS, REVISED, 2.0)
    ranks = [_counts(REWARDS[:8], ANCHORS[:4], REVISED[:4], 2.0), _counts(REWARDS[8:], ANCHORS[4:], REVISED[4:], 1.0)]
    assert ranks[1].retention is None and "correction/retention" not in ranks[1].metrics()  # weighs nothing
    merged = RoundCounts.merge(ranks)
    assert merged.retention == whole.retention == 2 / 3  # what the replay controller reads
    m, expected = merged.metrics(), whole.metrics()
    assert m["rollout/generated_tokens"] == 200.0 and m["throughput/tokens_per_s"] == 100.0  # all tokens / slowest
    assert m["time/generate_s"] == 2.0  # the slowest rank
    for name, value in expected.items():
        if name not in ("rollout/generated_tokens", "throughput/tokens_per_s", "correction/band_occupancy"):
            assert m[name] == pytest.approx(value), name
    assert m["correction/band_occupancy"] == 2 / 4  # one band group per rank, of 2 + 2 groups


def test_merge_takes_extremes_and_any():
    a = _counts(REWARDS[:8], ANCHORS[:4], REVISED[:4], 1.0, lengths=[2] * 8)
    b = dataclasses.replace(_counts(REWARDS[8:], ANCHORS[4:], REVISED[4:], 3.0, lengths=[9] * 8), correction_ran=False)
    merged = RoundCounts.merge([a, b])
    assert (merged.main.length_min, merged.main.length_max) == (2, 9)
    assert merged.correction_ran and merged.generate_s == 3.0 and merged.statuses == {"ok": 8, "wrong": 8}
    empty = RoundCounts()
    assert RoundCounts.merge([empty, empty]).main.length_min is None


def test_one_rank_is_returned_as_is():
    counts = _counts(REWARDS[:8], ANCHORS[:4], REVISED[:4], 2.0)
    assert RoundCounts.merge([counts]) is counts


def test_grpo_round_has_no_correction_metrics_but_the_anchor_count():
    m = dataclasses.replace(_counts(REWARDS[:8], ANCHORS[:0], REVISED[:0], 1.0), correction_ran=False).metrics()
    assert m["correction/num_anchors"] == 0.0
    assert not [name for name in m if name.startswith("correction/") and name != "correction/num_anchors"]
