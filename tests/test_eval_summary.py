"""cipo-eval's outputs: each rate printed with the counts it is made of; problems.jsonl rows hold
the problem and its gold answer."""

from __future__ import annotations

import pytest

from cipo.cli.eval_summary import format_summary, outcome_counts, problem_row
from cipo.rollout.evaluate import ProblemResult, Verdict, summarize
from cipo.types import Record


def verdict(success: bool) -> Verdict:
    return Verdict("Ans:1" if success else "Ans:0", success, "ok" if success else "wrong")


def results() -> list[ProblemResult]:
    """Three problems, n = 2: first attempts (T, F), (F, F), (T, T); the revision keeps problem
    0's right attempt, fixes none, breaks problem 2's."""
    rows = [((True, False), True), ((False, False), False), ((True, True), False)]
    out = []
    for index, (samples, revised) in enumerate(rows):
        result = ProblemResult(f"p{index}", level=index % 2 + 1, samples=[verdict(s) for s in samples])
        result.attempt, result.attempt_source = result.samples[0], "own"
        result.revisions = [verdict(revised)]
        out.append(result)
    return out


def summary() -> dict:
    problems = results()
    metrics, per_round = summarize(problems, 2, [1, 2], rounds=1)
    settings = {"samples": 2, "ks": [1, 2], "temperature": 1.0, "max_new_tokens": 8, "engine": "x.HFEngine"}
    return {
        "policy": "p",
        "split": "heldout",
        "num_problems": 3,
        "settings": {**settings, "attempts": "own"},
        "metrics": metrics,
        "counts": outcome_counts(problems),
        "rounds": per_round,
    }


def test_counts_of_the_first_attempts():
    counts = outcome_counts(results())
    assert counts == {
        "problems": 3, "samples": 6, "correct": 3, "mixed_problems": 1, "status_ok": 3, "status_wrong": 3,
        "level_1_correct": 3, "level_1_samples": 4, "level_2_correct": 0, "level_2_samples": 2,
    }  # fmt: skip


def test_every_rate_in_the_table_shows_its_counts():
    lines = format_summary(summary()).splitlines()
    assert "  accuracy              0.5000  3/6" in lines
    assert "  frac_mixed            0.3333  1/3" in lines
    assert "  status_wrong          0.5000  3/6" in lines
    assert "  accuracy_level_1      0.7500  3/4" in lines
    assert "  pass@2                0.6667" in lines  # an estimate, not a ratio of counts
    header = next(i for i, line in enumerate(lines) if line.startswith("  round"))
    round0, round1 = lines[header + 1].split(), lines[header + 2].split()
    assert round0 == ["0", "0.6667", "2/3", "-", "-", "-", "-"]
    # round 1: right 1 of 3; fixed 0 of 1 wrong; kept 1 of 2 right; broke 1 of 2
    assert round1 == ["1", "0.3333", "1/3", "0.0000", "0/1", "0.5000", "1/2", "0.5000", "1/2", "-0.3333"]


@pytest.mark.parametrize("save_texts", [True, False])
def test_a_problem_row_holds_the_prompt_and_the_gold_answer(save_texts):
    record = Record("p0", "Q:1+0\nA:", "1", {"level": 1})
    row = problem_row(results()[0], record, save_texts)
    assert row["reference"] == "1" and row["c"] == 1 and row["statuses"] == ["ok", "wrong"]
    assert ("prompt" in row, "texts" in row) == (save_texts, save_texts)
    if save_texts:
        assert row["prompt"] == "Q:1+0\nA:"
