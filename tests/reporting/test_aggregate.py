"""Seed statistics: cumulative costs, curves with bands, table numbers checked by hand."""

import math

import pytest
from fake_runs import make_multirun

from cipo.reporting.aggregate import cumulative_at, markdown_table, mean_std, seed_curve, table_rows
from cipo.reporting.runs import load_runs


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    return load_runs([make_multirun(tmp_path_factory.mktemp("multirun"))])[0]


def test_cumulative_cost_reaching_each_validation_point():
    per_step = {0: 10.0, 1: 20.0, 2: 5.0}
    assert cumulative_at(per_step, [0, 1, 2, 3]) == {0: 0.0, 1: 10.0, 2: 30.0, 3: 35.0}


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_std([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_seed_curve_bands(groups):
    curve = seed_curve(groups["experiment=a"], "val/accuracy")
    assert curve.x == [0, 1, 2, 3] and curve.count == [2, 2, 2, 2]
    assert curve.mean[-1] == pytest.approx(0.6) and (curve.low[-1], curve.high[-1]) == pytest.approx((0.5, 0.7))
    std = seed_curve(groups["experiment=a"], "val/accuracy", band="std")
    assert std.high[-1] - std.mean[-1] == pytest.approx(math.sqrt(0.02))
    # against cumulative generated tokens: seeds 100 and 300 tokens per step -> mean x 200 * k
    by_tokens = seed_curve(
        groups["experiment=a"], "val/accuracy", lambda s, steps: cumulative_at(s["rollout/generated_tokens"], steps)
    )
    assert by_tokens.x == pytest.approx([0, 200, 400, 600])
    assert seed_curve(groups["experiment=a"], "val/nothing") is None
    with pytest.raises(ValueError, match="band"):
        seed_curve(groups["experiment=a"], "val/accuracy", band="iqr")


def test_table_rows_and_markdown(groups):
    rows = {row["group"]: row for row in table_rows(groups)}
    a, b = rows["experiment=a"], rows["experiment=b"]
    assert a["seeds"] == 2 and a["val/accuracy"] == pytest.approx((0.6, math.sqrt(0.02)))
    assert a["val/pass@2"] == pytest.approx((0.8, math.sqrt(0.02)))
    assert a["generated_tokens"] == pytest.approx((600.0, math.sqrt(2) * 300))  # 3 steps x 100 / 300
    assert a["step_s"] == pytest.approx((2.0, math.sqrt(2)))
    assert b["val/accuracy"] == pytest.approx((0.4, 0.0))
    assert all(math.isnan(v) for v in b["val/fix_rate"])  # b never logged it
    table = markdown_table(list(rows.values())).splitlines()
    assert table[0].startswith("| group | seeds | final val/accuracy | final val/pass@2 | final val/fix_rate |")
    assert "val/pass@1" not in table[0]  # the accuracy again
    assert "| experiment=a | 2 | 0.600 ± 0.141 |" in table[2]
    assert "600 ± 424" in table[2] and "2.00 ± 1.41" in table[2]
    assert table[3].startswith("| experiment=b | 2 | 0.400 |") and "| - |" in table[3]
