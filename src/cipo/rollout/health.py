"""Warnings about a step's samples that are handled (scored, counted) but worth a human's look.

An empty completion or one without a final answer gets reward 0 like any wrong answer and is
counted in ``rollout/num_empty`` / ``verify/status_no_answer``; that keeps a run alive through
a few degenerate samples. When they are common, though, the cause is usually a setting (a
length limit that cuts answers off, a verifier looking for another answer format), so the
callback logs the first occurrence of each kind with the fix, and only counts the rest.
"""

from __future__ import annotations

NO_ANSWER_SHARE = 0.5


def sample_warnings(metrics: dict[str, float], num_samples: int, step: int) -> dict[str, str]:
    """``{kind: message}`` for a step's merged rollout metrics over ``num_samples`` main samples."""
    found: dict[str, str] = {}
    empty = metrics.get("rollout/num_empty", 0.0) + metrics.get("correction/num_empty", 0.0)
    if empty:
        found["empty"] = (
            f"RL step {step}: {int(empty)} completion(s) are empty (the policy ended at once); they score 0 "
            "and are counted in rollout/num_empty and correction/num_empty (further ones are only counted)"
        )
    no_answer = metrics.get("verify/status_no_answer", 0.0)
    if num_samples and no_answer / num_samples >= NO_ANSWER_SHARE:
        truncated = metrics.get("rollout/frac_truncated", 0.0)
        cause = (
            f"{truncated:.0%} of the samples hit the length limit: raise rollout.max_new_tokens"
            if truncated >= NO_ANSWER_SHARE
            else "check that the verifier's answer format (verifier.*) is the one the prompts ask for"
        )
        found["no_answer"] = (
            f"RL step {step}: {int(no_answer)} of {num_samples} samples have no final answer "
            f"(verify/status_no_answer; they score 0); {cause} (further steps are only counted)"
        )
    return found
