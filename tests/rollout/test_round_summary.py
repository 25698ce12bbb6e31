"""A round's counts and sample rows, on hand-built streams (2 prompts x G=3; 2 anchors x M=2)."""

from __future__ import annotations

import torch

from cipo.rollout.round_summary import correction_counts, correction_samples, main_counts, main_samples
from cipo.rollout.streams import Stream
from cipo.types import Completion, VerifierResult, VerifyStatus


def stream(prompts: list[str], verdicts: list[bool], lengths: list[int]) -> Stream:
    results = [VerifierResult(ok, float(ok), VerifyStatus.PASSED if ok else VerifyStatus.FAILED) for ok in verdicts]
    completions = [Completion(f"c{i}", [7] * n, [0.0] * n, True) for i, n in enumerate(lengths)]
    return Stream(
        prompts=prompts,
        completions=completions,
        results=results,
        rewards=torch.tensor([r.reward for r in results]),
    )


MAIN = stream(["p0"] * 3 + ["p1"] * 3, [True, True, False, False, False, False], [4, 5, 6, 1, 2, 3])


def test_main_counts_by_group():
    counts = main_counts(MAIN, group_size=3)
    assert (counts.groups, counts.zero_std_groups, counts.all_correct_groups, counts.all_wrong_groups) == (2, 1, 0, 1)
    assert (counts.main.samples, counts.main.correct, counts.main.length_sum) == (6, 2, 21)
    assert counts.statuses == {"passed": 2, "failed": 4}


def test_correction_counts_compare_revisions_with_resolving():
    anchors = [0, 3]  # a correct anchor of p0 (one other correct sample of 3) and a wrong one of p1
    correction = stream(["r"] * 4, [False, True, True, False], [2, 2, 2, 2])
    anchor_counts = {"num_anchors": 2, "num_correct_anchors": 1, "num_anchors_in_band": 1, "num_groups_in_band": 1}
    counts = correction_counts(main_counts(MAIN, 3), anchor_counts, MAIN, anchors, correction, 3, Stream())
    assert counts.correction_ran and (counts.anchors, counts.correct_anchors) == (2, 1)
    # re-solving p0 keeps 1 of its other 2 samples; the correct anchor's 2 revisions keep 1
    assert (counts.resolve_correct, counts.resolve_samples) == (1, 2)
    assert (counts.revisions.samples, counts.revisions.correct) == (4, 2)
    assert counts.transplanted == 0


def test_sample_rows_show_one_row_per_group_or_anchor_up_to_the_limit():
    assert [row["prompt"] for row in main_samples(MAIN, 3, limit=4)] == ["p0", "p1"]
    assert len(main_samples(MAIN, 3, limit=1)) == 1
    correction = stream(["r"] * 4, [False, True, True, False], [2, 2, 2, 2])
    rows = correction_samples(MAIN, [0, 3], correction, m=2, limit=4)
    assert [(r["attempt"], r["attempt_verdict"], r["correction"], r["correction_verdict"]) for r in rows] == [
        ("c0", "passed", "c0", "failed"),
        ("c3", "failed", "c2", "passed"),
    ]
