"""The paper's claims as paired differences: values checked by hand (t quantile 3.182446 for 3 df)."""

import math

import pytest
from fake_study import make_run

from cipo.reporting.claims import Claim, claim_rows, claims_markdown, verdict
from cipo.reporting.paired import paired_difference

# task -> config -> seed -> (final accuracy, pass@16, counts)
VALUES = {
    "a": {
        "grpo": {1: (0.50, 0.80, (10, 50, 5, 35)), 2: (0.60, 0.90, (10, 50, 5, 35))},
        "cipo": {1: (0.55, 0.90, (20, 50, 5, 25)), 2: (0.62, 0.93, (14, 50, 5, 31))},
    },
    "b": {
        "grpo": {1: (0.40, 0.70, (10, 50, 5, 35)), 2: (0.30, 0.60, (10, 50, 5, 35))},
        "cipo": {1: (0.46, 0.80, (10, 50, 5, 35)), 2: (0.33, 0.70, (10, 50, 10, 30))},
    },
}
STUDY = {
    task: {config: [make_run(seed, *v) for seed, v in seeds.items()] for config, seeds in configs.items()}
    for task, configs in VALUES.items()
}


def rows_by_quantity(study=STUDY):
    return {row.claim.quantity.split(":")[0].split(",")[0]: row for row in claim_rows(study, "cipo", "grpo")}


def test_first_attempts_pooled_over_tasks_by_hand():
    row = rows_by_quantity()["held-out accuracy (pass@1)"]
    # differences a: +0.05, +0.02; b: +0.06, +0.03 -> mean 0.04, sd sqrt(0.001 / 3), se sd / 2
    pooled = row.pooled
    assert sorted(pooled.differences) == pytest.approx([0.02, 0.03, 0.05, 0.06])
    half = 3.182446 * math.sqrt(0.001 / 3) / 2
    assert (pooled.low, pooled.high) == pytest.approx((0.04 - half, 0.04 + half), abs=1e-6)
    assert pooled.p_value == pytest.approx(0.02202, abs=1e-4)  # t = 4.382 on 3 df
    assert row.verdict == "supports"
    assert row.by_task["a"].mean == pytest.approx(0.035) and row.by_task["b"].mean == pytest.approx(0.045)
    assert math.isnan(row.by_task["a"].p_value) is False and len(row.by_task["a"].seeds) == 2


def test_gap_growth_is_the_gap_at_k_minus_the_gap_at_1():
    rows = rows_by_quantity()
    gap_k, growth, gap_1 = (
        rows["gap at k = 16"],
        rows["growth of the gap from k = 1 to 16"],
        rows["held-out accuracy (pass@1)"],
    )
    # pass@16 gaps: a +0.10, +0.03; b +0.10, +0.10; minus the pass@1 gaps per unit
    by_unit = dict(zip(gap_k.pooled.seeds, gap_k.pooled.differences, strict=True))
    first = dict(zip(gap_1.pooled.seeds, gap_1.pooled.differences, strict=True))
    expected = {unit: by_unit[unit] - first[unit] for unit in by_unit}
    assert dict(zip(growth.pooled.seeds, growth.pooled.differences, strict=True)) == pytest.approx(expected)
    assert sorted(expected.values()) == pytest.approx([0.01, 0.04, 0.05, 0.07])
    assert growth.pooled.mean == pytest.approx(0.0425)


def test_correction_from_the_revision_counts():
    rows = rows_by_quantity()
    delta = rows["second minus first attempt"].pooled
    # (fixed - broken) / 100: grpo 0.05 everywhere; cipo a 0.15, 0.09, b 0.05, 0.00
    assert sorted(delta.differences) == pytest.approx([-0.05, 0.0, 0.04, 0.10])
    assert rows["second minus first attempt"].verdict == "not separated"
    assert rows["share wrong -> right"].pooled.mean == pytest.approx((0.10 + 0.04 + 0.0 + 0.0) / 4)
    assert rows["... without hurting first attempts"].verdict == "supports"  # Acc@t1 is the accuracy here


def test_units_pair_within_a_task_only():
    study = {
        "a": {"grpo": [make_run(1, 0.5, 0.8)], "cipo": [make_run(1, 0.6, 0.9), make_run(3, 0.9, 0.9)]},
        "b": {"grpo": [make_run(1, 0.4, 0.7), make_run(3, 0.1, 0.5)], "cipo": [make_run(1, 0.5, 0.8)]},
    }
    pooled = rows_by_quantity(study)["held-out accuracy (pass@1)"].pooled
    assert pooled.seeds == (("a", 1), ("b", 1))  # seed 3 of a is not paired with seed 3 of b
    assert set(pooled.unpaired) == {("a", 3), ("b", 3)}
    assert pooled.differences == pytest.approx((0.1, 0.1))
    assert rows_by_quantity(study)["held-out accuracy (pass@1)"].verdict == "too few pairs"  # no spread: no interval


def test_verdicts():
    claim = Claim("c", "q", lambda s: 0.0, +1)
    worse = paired_difference({1: 0.5, 2: 0.5, 3: 0.5}, {1: 0.4, 2: 0.41, 3: 0.39})
    mixed = paired_difference({1: 0.5, 2: 0.5, 3: 0.5}, {1: 0.4, 2: 0.6, 3: 0.5})
    assert verdict(claim, worse) == "contradicts" and verdict(claim, mixed) == "not separated"
    assert verdict(Claim("c", "q", lambda s: 0.0, +1, non_inferiority=True), mixed) == "no harm detected"
    assert verdict(Claim("c", "q", lambda s: 0.0, -1), worse) == "supports"


def test_markdown_bolds_what_excludes_zero_and_names_each_task():
    table = claims_markdown(claim_rows(STUDY, "cipo", "grpo"), "cipo", "grpo").splitlines()
    assert table[0] == "| claim | quantity | pooled: cipo - grpo [95% CI] | verdict | a | b |"
    (first,) = [line for line in table if "(pass@1), final" in line]
    assert "| **+0.040 [+0.011, +0.069], p 0.022, n 4** | supports |" in first
    assert claims_markdown([], "cipo", "grpo_matched") == "(no task has complete runs of both cipo and grpo_matched)"


def test_no_pass_at_k_rows_without_pass_at_k():
    quantities = [
        row.claim.quantity
        for row in claim_rows({"a": {c: [make_run(1, 0.5, 0.8, pass_ks=())] for c in ("grpo", "cipo")}}, "cipo", "grpo")
    ]
    assert not any("pass@" in q and "pass@1)" not in q for q in quantities)
