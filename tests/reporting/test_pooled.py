"""Differences pooled over tasks, and the comparisons table: values checked by hand (t quantiles 3.182446
for 3 df, 12.706205 for 1 df)."""

import math

import pytest
from fake_study import make_run

from cipo.reporting.endpoints import final_value
from cipo.reporting.pooled import common_tasks, comparisons_markdown, largest_k, pooled_difference

# task -> config -> seed -> final accuracy (pass@16 = accuracy + 0.3)
ACCURACY = {
    "a": {"x": {1: 0.50, 2: 0.60}, "y": {1: 0.55, 2: 0.62}, "z": {1: 0.50, 2: 0.50}},
    "b": {"x": {1: 0.40, 2: 0.30}, "y": {1: 0.46, 2: 0.33}},
}
STUDY = {
    task: {config: [make_run(seed, acc, acc + 0.3) for seed, acc in seeds.items()] for config, seeds in configs.items()}
    for task, configs in ACCURACY.items()
}
ACC = lambda scalars: final_value(scalars, "val/accuracy")  # noqa: E731


def test_largest_k_is_the_largest_every_run_logged():
    assert largest_k([make_run(1, 0.5, 0.8), make_run(2, 0.5, 0.8, pass_ks=(2, 4))]) == 2
    assert largest_k([make_run(1, 0.5, 0.8, pass_ks=())]) is None


def test_pooled_pairs_task_seeds_within_their_task():
    assert common_tasks(STUDY, "x", "y") == ["a", "b"] and common_tasks(STUDY, "x", "z") == ["a"]
    result = pooled_difference(STUDY, "x", "y", ACC)
    # differences a: +0.05, +0.02; b: +0.06, +0.03 -> mean 0.04, sd sqrt(0.001 / 3), se sd / 2
    assert sorted(result.pooled.differences) == pytest.approx([0.02, 0.03, 0.05, 0.06])
    half = 3.182446 * math.sqrt(0.001 / 3) / 2
    assert (result.pooled.low, result.pooled.high) == pytest.approx((0.04 - half, 0.04 + half), abs=1e-6)
    assert result.by_task["a"].mean == pytest.approx(0.035) and result.by_task["b"].mean == pytest.approx(0.045)
    only_a = pooled_difference(STUDY, "x", "z", ACC)
    assert list(only_a.by_task) == ["a"] and only_a.pooled.differences == pytest.approx((0.0, -0.1))


def test_comparisons_table_has_a_column_per_pair_with_runs():
    table = comparisons_markdown(STUDY, [("x", "y"), ("x", "z"), ("x", "missing")]).splitlines()
    assert table[0] == "| quantity | y - x | z - x |"  # a pair without runs on both sides has no column
    rows = {
        line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in table[2:] if line.startswith("|")
    }
    half_3df = 3.182446 * math.sqrt(0.001 / 3) / 2  # y - x: as in the test above
    half_1df = 12.706205 * math.sqrt(0.005) / math.sqrt(2)  # z - x: 0, -0.1 -> sd sqrt(0.005)
    assert rows["held-out accuracy, final"] == [
        f"**+0.040 [{0.04 - half_3df:+.3f}, {0.04 + half_3df:+.3f}], n 4**",
        f"-0.050 [{-0.05 - half_1df:+.3f}, {-0.05 + half_1df:+.3f}], n 2 |",
    ]
    assert list(rows)[2] == "pass@16, final"  # after the two accuracy rows
    assert rows["pass@16, final"][0].startswith("**+0.040")  # pass@16 moved with the accuracy here
    assert rows["retention (right -> right)"] == ["-", "- |"]  # never logged: no pairs
    assert comparisons_markdown(STUDY, [("x", "missing")]).startswith("(no comparison")
