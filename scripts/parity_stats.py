"""The statistics of the cipo-vs-TRL learning comparison (``parity_vs_trl.py``): pure functions, no I/O.

Two sources of noise sit in every held-out accuracy of a trained policy:

* the training run's own randomness (prompt order, sampled completions): measured by repeating the
  run over seeds, so a Student-t interval over seeds covers it;
* the evaluation's sampling: ``n`` problems x ``k`` samples of the policy. The problems are the same
  for every run (a fixed held-out set), so only the within-problem binomial spread is noise for a
  comparison between runs: var(accuracy) = sum_p p_p (1 - p_p) / (k n^2), with the unbiased
  per-problem estimate p(1 - p) k / (k - 1). Each run is evaluated with its own sampling seed, so this
  noise is already inside the over-seeds interval; ``eval_sampling_se`` says how much of it it is.

Intervals: Student t over seeds for one side; Welch (unequal variances) for the difference of two
sides; the paired-by-seed t interval is ``cipo.reporting.paired`` (the same seed gives both sides the same
prompts in the same order and the same evaluation seed); Brown-Forsythe (Levene on medians) for
"do the two sides vary equally across seeds".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval; ``n`` the number of values it rests on."""

    estimate: float
    low: float
    high: float
    n: int
    sd: float = float("nan")  # sample standard deviation of the values (one side), when it means something
    p_value: float = float("nan")  # for a difference: the test that it is 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes(self, value: float = 0.0) -> bool:
        return not self.low <= value <= self.high

    def text(self, digits: int = 3) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def mean_interval(values: list[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with its Student-t interval (a single value: an unbounded interval)."""
    if not values:
        raise ValueError("mean_interval needs at least one value")
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Interval(mean, -math.inf, math.inf, 1)
    sd = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def welch_difference(a: list[float], b: list[float], confidence: float = 0.95) -> Interval:
    """mean(a) - mean(b) with the Welch interval and two-sided p-value (both sides need >= 2 values)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_difference needs >= 2 values per side, got {len(a)} and {len(b)}")
    var_a, var_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(var_a + var_b)
    if se == 0:
        return Interval(diff, diff, diff, len(a) + len(b), p_value=1.0 if diff == 0 else 0.0)
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = 2 * stats.t.sf(abs(diff) / se, df)
    return Interval(diff, diff - half, diff + half, len(a) + len(b), p_value=float(p_value))


def spread_test(a: list[float], b: list[float]) -> float:
    """p-value of Brown-Forsythe's test that ``a`` and ``b`` vary equally (robust to non-normal values)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"spread_test needs >= 2 values per side, got {len(a)} and {len(b)}")
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return 1.0
    return float(stats.levene(a, b, center="median").pvalue)


def eval_sampling_se(correct_per_problem: list[int], samples: int) -> float:
    """Standard error of one evaluation's accuracy from sampling alone (the problems held fixed).

    ``correct_per_problem``: correct samples out of ``samples`` (k >= 2) for each of the n problems.
    """
    if samples < 2:
        raise ValueError(f"eval_sampling_se needs >= 2 samples per problem, got {samples}")
    if not correct_per_problem:
        raise ValueError("eval_sampling_se needs at least one problem")
    n = len(correct_per_problem)
    variance = 0.0
    for correct in correct_per_problem:
        if not 0 <= correct <= samples:
            raise ValueError(f"{correct} correct out of {samples} samples")
        p = correct / samples
        variance += p * (1 - p) * samples / (samples - 1) / samples
    return math.sqrt(variance) / n


def curve_band(values_by_seed: dict[int, list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per-step mean and 95% t interval (low, high) over seeds, as long as the longest curve.

    ``values_by_seed``: {seed: [value at step 1, 2, ...]}; each step is over the seeds whose curve reaches
    it (a study may run some seeds for fewer steps), and NaN values (a metric a side did not log at a step)
    are left out of that step.
    """
    means, lows, highs = [], [], []
    for step in range(max(map(len, values_by_seed.values()), default=0)):
        column = [v[step] for v in values_by_seed.values() if step < len(v) and not math.isnan(v[step])]
        if not column:
            means.append(math.nan), lows.append(math.nan), highs.append(math.nan)
            continue
        interval = mean_interval(column)
        means.append(interval.estimate)
        lows.append(interval.low if column[1:] else interval.estimate)
        highs.append(interval.high if column[1:] else interval.estimate)
    return means, lows, highs


def parity_verdict(cipo: list[float], trl: list[float], confidence: float = 0.95) -> str:
    """One line: each side's mean held-out accuracy over seeds [interval], and whether they differ beyond chance.

    They differ only when the Welch interval of cipo - TRL excludes 0; with one seed a side there is no verdict.
    """
    sides = "; ".join(
        f"{name} {mean_interval(values, confidence).text()} over {len(values)} seed(s)"
        for name, values in (("cipo", cipo), ("TRL", trl))
    )
    if len(cipo) < 2 or len(trl) < 2:
        return f"{sides}. One seed a side: no verdict (one seed's outcome varies by several points); use --repeats 5+"
    difference = welch_difference(cipo, trl, confidence)
    verdict = "DIFFER beyond chance" if difference.excludes(0.0) else "no difference beyond chance"
    return (
        f"{sides}; cipo - TRL {difference.text()} (Welch {confidence:.0%} CI, p {difference.p_value:.2f}): {verdict}"
        + (" (compare the curves: scripts/parity_vs_trl.py)" if difference.excludes(0.0) else "")
    )
