"""Paired-by-seed statistics against a 3-seed example worked by hand.

a = {1: 0.60, 2: 0.50, 3: 0.55}, b = {1: 0.63, 2: 0.55, 3: 0.56}: differences d = (0.03, 0.05, 0.01),
mean 0.03, sd = sqrt((0 + 0.02^2 + 0.02^2) / 2) = 0.02, standard error 0.02 / sqrt(3).
With 2 degrees of freedom the t distribution has closed forms (no tables needed):
  quantile  t_q = (2q - 1) / sqrt(2 q (1 - q)):  t_0.975 = 0.95 / sqrt(0.04875) = 4.302653
  two-sided p = 1 - t / sqrt(2 + t^2):  t = 0.03 / (0.02 / sqrt(3)) = 1.5 sqrt(3) = 2.598076,
            p = 1 - 2.598076 / sqrt(8.75) = 0.121690
  95% interval 0.03 +- 4.302653 x 0.011547 = (-0.019683, 0.079683): contains 0.
Sign flips: of the 8 sign patterns only (+,+,+) and (-,-,-) reach |mean| >= 0.03: p = 2/8 = 0.25.
"""

import math

import numpy as np
import pytest

from cipo.reporting.paired import (
    binomial_se,
    bootstrap_interval,
    pair_by_seed,
    paired_difference,
    sign_flip_p,
)

A = {1: 0.60, 2: 0.50, 3: 0.55}
B = {1: 0.63, 2: 0.55, 3: 0.56}
T_Q = 0.95 / math.sqrt(2 * 0.975 * 0.025)
SE = 0.02 / math.sqrt(3)


def test_t_interval_and_paired_t_p_by_hand():
    diff = paired_difference(A, B)
    assert diff.seeds == (1, 2, 3) and diff.differences == pytest.approx((0.03, 0.05, 0.01))
    assert diff.mean == pytest.approx(0.03)
    assert T_Q == pytest.approx(4.302653, abs=1e-6)
    assert (diff.low, diff.high) == pytest.approx((0.03 - T_Q * SE, 0.03 + T_Q * SE))
    assert (diff.low, diff.high) == pytest.approx((-0.019683, 0.079683), abs=1e-6)
    t = 0.03 / SE
    assert diff.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t)) and diff.p_value == pytest.approx(
        0.121690, abs=1e-6
    )
    assert not diff.excludes_zero and diff.unpaired == ()


def test_direction_and_a_difference_that_excludes_zero():
    reverse = paired_difference(B, A)
    assert reverse.mean == pytest.approx(-0.03) and reverse.low == pytest.approx(-0.079683, abs=1e-6)
    tight = paired_difference(A, {1: 0.64, 2: 0.54, 3: 0.60})  # d = (0.04, 0.04, 0.05): sd 0.005774
    half = T_Q * math.sqrt(1 / 3 * 0.01**2) / math.sqrt(3)  # sd^2 = ((-1/3)^2 * 2 + (2/3)^2) 0.01^2 / 2
    assert (tight.low, tight.high) == pytest.approx((0.04333333 - half, 0.04333333 + half))
    assert tight.excludes_zero and tight.low > 0


def test_exact_sign_flip_p_by_hand():
    diff = paired_difference(A, B, test="sign-flip")
    assert diff.p_value == pytest.approx(2 / 8)
    five = np.array([0.01, 0.02, 0.03, 0.04, 0.05])  # all positive: the most extreme of 32 patterns
    assert sign_flip_p(five) == pytest.approx(2 / 32)  # 5 seeds can never reach p < 0.05
    assert sign_flip_p(np.zeros(4)) == 1.0


def test_bootstrap_interval_is_seeded_and_within_the_observed_differences():
    # Of the 27 equally likely resamples of 3 values, (0.01, 0.01, 0.01) has probability 1/27 > 2.5%:
    # the percentile interval's ends are the extreme means themselves.
    diff = paired_difference(A, B, interval="bootstrap")
    assert (diff.low, diff.high) == pytest.approx((0.01, 0.05))
    d = np.array([0.03, 0.05, 0.01, 0.02, -0.01])
    assert bootstrap_interval(d, seed=7) == bootstrap_interval(d, seed=7)
    low, high = bootstrap_interval(d, seed=7)
    assert d.min() <= low < d.mean() < high <= d.max()


def test_unmatched_seeds_are_left_out_and_named():
    a = {**A, 4: 0.7, 6: math.nan}
    b = {**B, 5: 0.1, 6: 0.5}
    seeds, differences, unpaired = pair_by_seed(a, b)
    assert seeds == [1, 2, 3] and unpaired == [4, 5, 6]  # 6: a has no value
    diff = paired_difference(a, b)
    assert (
        diff.unpaired == (4, 5, 6)
        and diff.mean == pytest.approx(0.03)
        and diff.p_value == pytest.approx(0.121690, abs=1e-6)
    )
    one = paired_difference({1: 0.5}, {1: 0.6, 2: 0.7})
    assert one.mean == pytest.approx(0.1) and math.isnan(one.low) and math.isnan(one.p_value)
    assert not one.excludes_zero and one.unpaired == (2,)
    none = paired_difference({1: 0.5}, {2: 0.6})
    assert math.isnan(none.mean) and none.seeds == ()


def test_no_spread_gives_no_interval_and_bad_options():
    same = paired_difference(A, dict(A))
    assert same.mean == 0.0 and all(math.isnan(v) for v in (same.low, same.high, same.p_value))
    shifted = paired_difference(A, {seed: value + 0.0625 for seed, value in A.items()}, interval="bootstrap")
    assert shifted.mean == pytest.approx(0.0625) and math.isnan(shifted.low) and not shifted.excludes_zero
    flips = paired_difference(A, {seed: value + 0.0625 for seed, value in A.items()}, test="sign-flip")
    assert flips.p_value == pytest.approx(2 / 8) and math.isnan(flips.low)  # the sign-flip test still answers
    assert paired_difference(A, dict(A), test="sign-flip").p_value == 1.0
    with pytest.raises(ValueError, match="interval"):
        paired_difference(A, B, interval="bca")
    with pytest.raises(ValueError, match="test"):
        paired_difference(A, B, test="wilcoxon")
    with pytest.raises(ValueError, match="level"):
        paired_difference(A, B, level=95)


def test_binomial_standard_error():
    # the audit's figure: 128 problems x 4 samples at accuracy 0.6 -> 0.0217
    assert binomial_se(0.6, 128, 4) == pytest.approx(math.sqrt(0.24 / 512)) and binomial_se(
        0.6, 128, 4
    ) == pytest.approx(0.02165, abs=1e-5)
    assert binomial_se(0.6, 512, 16) == pytest.approx(math.sqrt(0.24 / 8192))
    assert math.isnan(binomial_se(0.6, 0, 16))
