"""Paired-by-seed differences between two configurations: confidence intervals and p-values.

Two runs with the same seed draw the same prompt order, start from the same policy and use the
same sampling seeds, so the difference ``b - a`` of a metric within a seed removes the variance
the runs share; the seeds are the independent units. For metric values ``{seed: value}`` of
configurations a and b:

* **pairing**: the seeds both have (with a finite value) are paired; a seed that only one side
  has is left out of the comparison and listed (``unpaired``), never matched to another seed.
  Fewer than 2 pairs give the mean difference without an interval or p-value (nan), and so do
  differences without any spread (equal in every seed: the t-test and the bootstrap have no
  variance to work with; the sign-flip test still gives its p).
* **interval** (95% by default): ``t`` is mean +- t_{n-1, (1+level)/2} * sd / sqrt(n);
  ``bootstrap`` is the percentile interval of the mean over ``resamples`` resamples of the
  seeds (seeded: the same numbers every time). With 3-5 seeds the bootstrap interval is too
  narrow (it cannot see beyond the observed differences); the t interval is the default.
* **p-value** (two-sided, H0: mean difference 0): ``t`` is the paired t-test; ``sign-flip`` is
  the permutation test that flips the signs of the differences, exact (all 2^n sign patterns)
  for n <= ``EXACT_SIGN_FLIP_MAX`` seeds. Its smallest possible p is 2 / 2^n: 0.0625 at 5 seeds,
  so with 5 seeds it can never reach 0.05.

All distributions come from scipy.stats; nothing statistical is written by hand here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

INTERVALS = ("t", "bootstrap")
TESTS = ("t", "sign-flip")
EXACT_SIGN_FLIP_MAX = 16  # 65,536 sign patterns: exact; more seeds are sampled (resamples)


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` over the paired seeds; ``low``/``high``/``p_value`` are nan with < 2 pairs."""

    seeds: tuple
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    p_value: float
    interval: str
    test: str
    unpaired: tuple = ()

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely on one side of 0 (False when there is no interval)."""
        return (self.low > 0 or self.high < 0) and not math.isnan(self.low)


def pair_by_seed(a: Mapping[object, float], b: Mapping[object, float]) -> tuple[list, np.ndarray, list]:
    """(paired seeds, differences b - a, seeds left out), seeds in sorted order.

    A seed is paired when both sides have a finite value for it; every other seed of either
    side is left out (listed once).
    """

    def finite(values: Mapping[object, float]) -> set:
        return {seed for seed, value in values.items() if value is not None and math.isfinite(value)}

    both, either = finite(a) & finite(b), set(a) | set(b)
    seeds = sorted(both, key=str)
    differences = np.array([b[seed] - a[seed] for seed in seeds], dtype=np.float64)
    return seeds, differences, sorted(either - both, key=str)


def t_interval(differences: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """mean +- t quantile x standard error (n >= 2)."""
    n, mean = len(differences), float(np.mean(differences))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * float(np.std(differences, ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(
    differences: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds (seeded, so it is reproducible)."""
    result = stats.bootstrap(
        (differences,),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_t_p(differences: np.ndarray) -> float:
    """Two-sided p of the paired t-test."""
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def sign_flip_p(differences: np.ndarray, resamples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p of the sign-flip permutation test of the mean (exact for <= 16 seeds)."""
    if not differences.any():
        return 1.0
    exact = len(differences) <= EXACT_SIGN_FLIP_MAX
    result = stats.permutation_test(
        (differences,),
        np.mean,
        permutation_type="samples",  # one sample: each observation's sign is flipped
        n_resamples=np.inf if exact else resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def paired_difference(
    a: Mapping[object, float],
    b: Mapping[object, float],
    interval: str = "t",
    test: str = "t",
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """``b - a`` paired by seed, with its interval and p-value (see the module docstring)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    seeds, differences, unpaired = pair_by_seed(a, b)
    mean = float(np.mean(differences)) if len(differences) else math.nan
    low = high = p_value = math.nan
    if len(differences) >= 2 and test == "sign-flip":
        p_value = sign_flip_p(differences, seed=seed)
    spread = len(differences) >= 2 and np.ptp(differences) > 1e-12 * max(1.0, float(np.abs(differences).max()))
    if spread:  # without any (float rounding aside): no interval, no t-test
        if interval == "t":
            low, high = t_interval(differences, level)
        else:
            low, high = bootstrap_interval(differences, level, resamples, seed)
        if test == "t":
            p_value = paired_t_p(differences)
    return PairedDifference(
        tuple(seeds), tuple(map(float, differences)), mean, low, high, p_value, interval, test, tuple(unpaired)
    )


def binomial_se(accuracy: float, problems: float, samples_per_problem: float) -> float:
    """sqrt(p (1 - p) / (P n)): the evaluation's standard error if all P x n samples were independent.

    Samples of one problem share its difficulty, so for a fixed problem set the sampling error
    is at most this (sum_i p_i (1 - p_i) <= P p (1 - p)); it is the bound the audit quoted.
    """
    total = problems * samples_per_problem
    if not total > 0 or not 0 <= accuracy <= 1:
        return math.nan
    return math.sqrt(accuracy * (1 - accuracy) / total)
