"""What a round reports besides its batch: the counts behind its metrics (``RoundCounts``) and a
few (prompt, attempt, correction) rows for the step's sample table."""

from __future__ import annotations

import dataclasses

from cipo.algorithms.correction import CorrectionCounts
from cipo.rollout.round_counts import RoundCounts, StreamCounts, status_counts
from cipo.rollout.streams import Stream


def main_counts(main: Stream, group_size: int) -> RoundCounts:
    grouped = main.success.view(-1, group_size)
    rewards = main.rewards.view(-1, group_size)
    return RoundCounts(
        main=StreamCounts.of(main.completions, main.success, main.rewards),
        groups=grouped.shape[0],
        zero_std_groups=int((rewards.amax(dim=1) == rewards.amin(dim=1)).sum()),
        all_correct_groups=int(grouped.all(dim=1).sum()),
        all_wrong_groups=int((~grouped).all(dim=1).sum()),
        statuses=status_counts(main.results),
    )


def correction_counts(counts, anchor_counts, main, anchors, correction, group_size, transplanted) -> RoundCounts:
    m = correction.success.numel() // max(len(anchors), 1)
    anchor_success = main.success[anchors]
    # what re-solving would keep: the other G - 1 samples of each correct anchor's prompt
    group_correct = main.success.view(-1, group_size).sum(dim=1)
    right = [a for a, ok in zip(anchors, anchor_success.tolist()) if ok]
    return dataclasses.replace(
        counts,
        correction_ran=True,
        anchors=int(anchor_counts["num_anchors"]),
        correct_anchors=int(anchor_counts["num_correct_anchors"]),
        anchors_in_band=int(anchor_counts["num_anchors_in_band"]),
        groups_in_band=int(anchor_counts["num_groups_in_band"]),
        anchors_by_pass_rate={
            name.removeprefix("num_anchors_pass_"): int(value)
            for name, value in anchor_counts.items()
            if name.startswith("num_anchors_pass_")
        },
        resolve_correct=sum(int(group_correct[a // group_size]) - 1 for a in right),
        resolve_samples=len(right) * (group_size - 1),
        revisions=StreamCounts.of(correction.completions, correction.success, correction.rewards),
        outcomes=CorrectionCounts.of(anchor_success.repeat_interleave(m), correction.success),
        transplanted=len(transplanted.completions),
    )


def correction_samples(main, anchors, correction, m, limit) -> list[dict[str, str]]:
    return [
        {
            "prompt": main.prompts[anchor],
            "attempt": main.completions[anchor].text,
            "attempt_verdict": main.results[anchor].status.value,
            "correction": correction.completions[k * m].text,
            "correction_verdict": correction.results[k * m].status.value,
        }
        for k, anchor in enumerate(anchors[:limit])
    ]


def main_samples(main, group_size, limit) -> list[dict[str, str]]:
    return [
        {
            "prompt": main.prompts[i],
            "attempt": main.completions[i].text,
            "attempt_verdict": main.results[i].status.value,
        }
        for i in range(0, min(len(main.prompts), limit * group_size), group_size)
    ]
