"""Per-run endpoints and compute axes, on hand-written scalars."""

import math

import pytest

from cipo.reporting.endpoints import (
    ENDPOINTS,
    accuracy_at_cost,
    cost_at,
    evaluation_se,
    final_cost,
    last_quarter_mean,
    pass_at_k_endpoints,
)

# 8 RL steps, validations at 0, 2, 4, 6, 8; running totals at the index of the step that completed them
SCALARS = {
    "val/accuracy": {0: 0.30, 2: 0.40, 4: 0.50, 6: 0.60, 8: 0.70},
    "val/pass@4": {0: 0.50, 8: 0.90},
    "val/pass@2": {8: 0.80},
    "val/first_attempt_accuracy": {8: 0.65},
    "val/second_attempt_accuracy": {8: 0.60},
    "val/fix_rate": {8: 0.25},
    "val/retention": {8: 0.75},
    # 100 problems: 65 right at t1 (kept 50, broken 15), 35 wrong (fixed 10, unfixed 25): t2 = 60
    "val/num_fixed": {8: 10.0},
    "val/num_kept": {8: 50.0},
    "val/num_broken": {8: 15.0},
    "val/num_unfixed": {8: 25.0},
    "val/num_problems": {8: 100.0},
    "val/samples_per_problem": {8: 4.0},
    "compute/generated_tokens": {s: 100.0 * (s + 1) for s in range(8)},
    "rollout/generated_tokens": {s: 100.0 for s in range(8)},
    "time/step_s": {s: 2.0 for s in range(8)},
}


def value(key, scalars=SCALARS):
    return ENDPOINTS[key][2](scalars)


def test_final_and_last_quarter_accuracy():
    assert value("final_accuracy") == 0.70
    assert value("last_quarter_accuracy") == pytest.approx((0.60 + 0.70) / 2)  # steps >= 6 = 3/4 of 8
    assert last_quarter_mean({"val/accuracy": {0: 0.3, 10: 0.5}}) == 0.5  # only the last point qualifies
    assert math.isnan(last_quarter_mean({}))


def test_score_two_attempt_metrics_from_the_counts():
    assert value("acc_t1") == 0.65 and value("acc_t2") == 0.60
    assert value("delta_t1_t2") == pytest.approx((10 - 15) / 100)  # = Acc@t2 - Acc@t1
    assert value("delta_i_to_c") == pytest.approx(0.10) and value("delta_c_to_i") == pytest.approx(0.15)
    assert value("fix_rate") == 0.25 and value("retention") == 0.75
    older = {k: v for k, v in SCALARS.items() if not k.startswith("val/num_") and k != "val/first_attempt_accuracy"}
    assert value("delta_t1_t2", older) == pytest.approx(0.60 - 0.70)  # second attempt - mean accuracy
    assert math.isnan(value("delta_i_to_c", older)) and math.isnan(value("acc_t1", older))


def test_pass_at_k_endpoints_for_every_k_above_one():
    endpoints = pass_at_k_endpoints([SCALARS, {"val/pass@16": {0: 0.9}, "val/pass@1": {0: 0.3}}])
    assert list(endpoints) == ["pass@2", "pass@4", "pass@16"]
    assert endpoints["pass@4"][2](SCALARS) == 0.90 and math.isnan(endpoints["pass@16"][2](SCALARS))


def test_cost_axes_prefer_running_totals_and_fall_back_to_per_step_sums():
    points = [0, 2, 4, 8]
    assert cost_at(SCALARS, "step", points) == {0: 0.0, 2: 2.0, 4: 4.0, 8: 8.0}
    assert cost_at(SCALARS, "generated_tokens", points) == {0: 0.0, 2: 200.0, 4: 400.0, 8: 800.0}
    assert cost_at(SCALARS, "step_s", points) == {0: 0.0, 2: 4.0, 4: 8.0, 8: 16.0}  # sum of time/step_s
    assert cost_at(SCALARS, "processed_tokens", points) == {}  # not logged by this run
    totals_only = {"compute/step_s": {0: 1.5, 1: 3.0}}
    assert cost_at(totals_only, "step_s", [0, 1, 2, 3]) == {0: 0.0, 1: 1.5, 2: 3.0}  # 3 steps not logged
    with pytest.raises(ValueError, match="axis"):
        cost_at(SCALARS, "flops", points)


def test_accuracy_at_equal_cost_interpolates_between_validations():
    assert accuracy_at_cost(SCALARS, "generated_tokens", 300.0) == pytest.approx(0.45)  # between 200 and 400
    assert accuracy_at_cost(SCALARS, "generated_tokens", 800.0) == pytest.approx(0.70)
    assert math.isnan(accuracy_at_cost(SCALARS, "generated_tokens", 801.0))  # beyond the run
    assert final_cost(SCALARS, "generated_tokens") == 800.0 and math.isnan(final_cost(SCALARS, "processed_tokens"))


def test_evaluation_standard_error_from_the_logged_counts():
    assert evaluation_se(SCALARS) == pytest.approx(math.sqrt(0.7 * 0.3 / 400))
    assert math.isnan(evaluation_se({"val/accuracy": {0: 0.5}}))
