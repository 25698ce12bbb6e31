"""The replay controller must regulate (method sheet step 10): simulations with the step's real counts.

Each simulated step revises round(rho * K) correct anchors (K = 8, ``select_anchors``' rule), M = 8
revisions each; an anchor keeps its answer with its own probability (drawn around the true
retention: revisions of one anchor are correlated), and its prompt's other G - 1 = 7 samples are
right with the prompt's pass rate p. Correct anchors come from prompts in proportion to p, so p is
drawn from the size-biased Beta(a + 1, b). 200 steps, five seeds.
"""

import math
import random
import statistics

import pytest

from cipo.algorithms.replay import (
    ReplayControl,
    RetentionCounts,
    initial_replay_state,
    resolve_gap_ratio,
    update_replay_ratio,
)

K, M, G, STEPS, SEEDS = 8, 8, 8, 200, range(5)
CONCENTRATION = 4.0  # spread of per-anchor keep probabilities and per-prompt pass rates


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def _beta(rng: random.Random, mean: float, concentration: float = CONCENTRATION) -> float:
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


def simulate(control, seed, retention=None, pass_rate=0.5, steps=STEPS) -> list[float]:
    """rho after each step. ``retention=None`` is a policy that re-solves: it keeps a right answer
    with its prompt's pass rate. Otherwise the anchor keeps with a probability around ``retention``."""
    rng = random.Random(seed)
    a, b = pass_rate * CONCENTRATION, (1 - pass_rate) * CONCENTRATION
    state, ratios = initial_replay_state(control), []
    for _ in range(steps):
        counts = [0, 0, 0, 0]
        for _anchor in range(math.floor(state.ratio * K + 0.5)):
            p = rng.betavariate(a + 1, b)  # the prompt of a *correct* attempt
            keep = p if retention is None else _beta(rng, retention)
            counts[0] += _binomial(rng, M, keep)
            counts[1] += M
            counts[2] += _binomial(rng, G - 1, p)
            counts[3] += G - 1
        state = update_replay_ratio(state, RetentionCounts(*counts), control)
        ratios.append(state.ratio)
    return ratios


def _size_biased_mean(pass_rate: float) -> float:
    """E[p | an attempt of the prompt is correct] for p ~ Beta(a, b): (a + 1) / (a + b + 1)."""
    a = pass_rate * CONCENTRATION
    return (a + 1) / (CONCENTRATION + 1)


def _tail(ratios: list[float]) -> list[float]:
    return ratios[STEPS // 2 :]


RESOLVE = ReplayControl()
PUBLISHED = ReplayControl(rule="published", min=0.2)
RETENTIONS = (0.55, 0.6, 0.65, 0.7, 0.75)
PASS_RATE = 0.5  # size-biased: correct anchors' prompts pass 0.6 of the time


@pytest.mark.parametrize("retention", RETENTIONS)
def test_constant_retention_settles_at_a_stable_interior_rho(retention):
    for seed in SEEDS:
        tail = _tail(simulate(RESOLVE, seed, retention, PASS_RATE))
        mean, spread = statistics.fmean(tail), statistics.pstdev(tail)
        assert RESOLVE.min + 0.05 < mean < RESOLVE.max - 0.05, (seed, mean)
        assert spread < 0.06, (seed, spread)  # settles: no drift, no swings between the bounds


def test_settled_rho_is_the_noise_free_value_and_falls_with_retention():
    """Averaged over seeds, the settled rho is what the rule gives without sampling noise (noise
    does not ratchet it) and it falls strictly as the true retention rises."""
    base = _size_biased_mean(PASS_RATE)
    means = []
    for retention in RETENTIONS:
        tails = [statistics.fmean(_tail(simulate(RESOLVE, seed, retention, PASS_RATE))) for seed in SEEDS]
        noise_free = resolve_gap_ratio(retention, base, RESOLVE)
        assert abs(statistics.fmean(tails) - noise_free) < 0.03, (retention, tails, noise_free)
        assert max(tails) - min(tails) < 0.1, (retention, tails)  # the seeds agree
        means.append(statistics.fmean(tails))
    assert all(high > low + 0.025 for high, low in zip(means, means[1:])), means


@pytest.mark.parametrize("pass_rate", [0.3, 0.5, 0.7])
def test_a_policy_that_re_solves_sits_inside_the_range(pass_rate):
    """Reachable without copying: re-solving keeps as often as the prompts' pass rate, which is
    the controller's reference point, so rho settles near center + gain * margin, not at a bound."""
    expected = resolve_gap_ratio(0.0, 0.0, RESOLVE)
    for seed in SEEDS:
        mean = statistics.fmean(_tail(simulate(RESOLVE, seed, None, pass_rate)))
        assert abs(mean - expected) < 0.08, (pass_rate, seed, mean, expected)


def test_copying_spends_the_stream_on_failures_and_breaking_replays():
    copying = statistics.fmean(_tail(simulate(RESOLVE, 0, 0.99, PASS_RATE)))
    breaking = statistics.fmean(_tail(simulate(RESOLVE, 0, 0.2, PASS_RATE)))
    assert copying == pytest.approx(RESOLVE.min, abs=0.01) and breaking == pytest.approx(RESOLVE.max, abs=0.01)


# ----------------------------------------------- the published rule fails the same requirements
def test_published_rule_is_ratcheted_by_noise():
    """At a true retention equal to its target, the noise-free published rule holds rho at 0.3
    (factor 1 every step); sampling noise alone drives it to the cap (method-audit.md)."""
    tails = [statistics.fmean(_tail(simulate(PUBLISHED, seed, PUBLISHED.target, PASS_RATE))) for seed in SEEDS]
    assert min(tails) > 0.6, tails


def test_published_target_is_reachable_only_by_copying():
    for seed in SEEDS:  # a re-solving policy (retention ~0.6 here) is pinned at the cap
        assert statistics.fmean(_tail(simulate(PUBLISHED, seed, None, PASS_RATE))) > PUBLISHED.max - 0.05


def test_the_simulation_counts_follow_select_anchors():
    """Sanity of the harness: rho = 0.1 revises one correct anchor per step (8 revisions), as
    select_anchors' round-half-up rule does at K = 8."""
    control = ReplayControl(initial=0.1, adaptive=False)
    seen = []

    def spy(state, counts, control):
        seen.append(counts.revised)
        return update_replay_ratio(state, counts, control)

    state = initial_replay_state(control)
    for _ in range(3):
        state = spy(state, RetentionCounts(8, 8, 7, 7), control)
    assert seen == [8, 8, 8] and state.ratio == 0.1 and math.floor(0.1 * K + 0.5) == 1
