"""Comparison tables of grouped runs: paired rows, marks, noise and compute (the 3-seed example of test_paired)."""

import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cipo.reporting.comparison import compute_markdown, noise_markdown, paired_markdown, paired_rows
from cipo.reporting.runs import Run


def make_run(seed, final, retention, tokens_per_step, correction=False):
    scalars = {
        "val/accuracy": {0: 0.3, 4: final},
        "val/retention": {4: retention},
        "val/num_problems": {4: 512.0},
        "val/samples_per_problem": {4: 16.0},
        "compute/generated_tokens": {s: tokens_per_step * (s + 1) for s in range(4)},
    }
    config = {
        "seed": seed,
        "data": {"batch_size": 16},
        "algorithm": {
            "group_size": 8,
            "correction": {"enabled": correction, "num_anchors": 8, "samples_per_anchor": 8},
        },
    }
    return Run(Path(f"run{seed}"), OmegaConf.create(config), [], scalars, seed=seed)


GRPO = [make_run(s, f, 0.70, 100.0) for s, f in {1: 0.60, 2: 0.50, 3: 0.55}.items()]
CIPO = [
    make_run(s, f, r, 150.0, True) for s, f, r in ((1, 0.63, 0.80), (2, 0.55, 0.81), (3, 0.56, 0.83), (4, 0.9, 0.9))
]


def test_paired_rows_by_hand():
    rows = {row.key: row for row in paired_rows(GRPO, CIPO)}
    final = rows["final_accuracy"]
    assert final.difference.seeds == (1, 2, 3) and final.difference.unpaired == (4,)
    assert final.mean_a == pytest.approx(0.55) and final.mean_b == pytest.approx((0.63 + 0.55 + 0.56 + 0.9) / 4)
    assert final.difference.mean == pytest.approx(0.03) and final.difference.p_value == pytest.approx(
        0.121690, abs=1e-6
    )
    assert rows["retention"].difference.excludes_zero  # +0.10, +0.11, +0.13
    assert "fix_rate" not in rows  # neither group logged it: no row
    # equal generated tokens: the smallest final cost over both groups is GRPO's 400 (4 steps x 100);
    # CIPO reaches 400 tokens at 400/600 of the way from step 0 to step 4
    equal = rows["accuracy_at_generated_tokens"]
    assert "(400)" in equal.label
    assert equal.mean_a == pytest.approx(0.55)
    assert equal.difference.differences[0] == pytest.approx(0.3 + (0.63 - 0.3) * 400 / 600 - 0.60)


def test_paired_markdown_marks_differences_that_exclude_zero():
    table = paired_markdown(paired_rows(GRPO, CIPO), "grpo", "cipo").splitlines()
    assert table[0].startswith("| quantity | SCoRe | grpo | cipo | difference [95% CI] | p | seeds |")
    (final,) = [line for line in table if line.startswith("| held-out accuracy, final |")]
    assert "+0.030 [-0.020, +0.080] | 0.122 | 3 (unpaired: 4) |  |" in final
    (retention,) = [line for line in table if line.startswith("| retention")]
    assert "**+0.113 [" in retention and retention.endswith("| ✓ |")
    assert table[-1] == "Differences are cipo minus grpo, paired by seed; 95% t interval, paired t-test."
    assert paired_markdown([], "a", "b").startswith("(no seed in common")


def test_noise_and_compute_tables():
    noise = noise_markdown({"grpo": GRPO}).splitlines()
    per_run = [math.sqrt(p * (1 - p) / (512 * 16)) for p in (0.60, 0.50, 0.55)]  # 0.0054, 0.0055, 0.0055
    assert (
        noise[2] == f"| grpo | 3 | 0.550 | 0.050 | {sum(per_run) / 3:.3f} |" == "| grpo | 3 | 0.550 | 0.050 | 0.005 |"
    )
    compute = compute_markdown({"grpo": GRPO, "cipo": CIPO}).splitlines()
    assert compute[2] == "| grpo | 128 | 400 ± 0 | - | - |"
    assert compute[3] == "| cipo | 192 | 600 ± 0 | - | - |"
