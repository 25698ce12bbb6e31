"""Replay-ratio controller: hand-computed steps of both rules, bounds, state round trip.
The regulation requirements are simulated in test_replay_simulation.py."""

import json

import pytest

from cipo.algorithms.replay import (
    ReplayControl,
    ReplayState,
    RetentionCounts,
    initial_replay_state,
    resolve_gap_ratio,
    update_replay_ratio,
)

PUBLISHED = ReplayControl(rule="published", min=0.2)


def _seen(retention: float, revised: int = 100, resolve_rate: float = 0.5) -> RetentionCounts:
    return RetentionCounts(retention * revised, revised, resolve_rate * 70, 70)


# ------------------------------------------------------------------------- resolve_gap
def test_resolve_gap_hand_computed_steps():
    c = ReplayControl(smoothing=0.5)  # center 0.3, gain 1, margin 0.1
    s1 = update_replay_ratio(initial_replay_state(c), RetentionCounts(12, 16, 14, 28), c)
    # sums: kept 6, revised 8, resolve 7 / 14 -> retention 0.75, base 0.5, gap 0.25
    assert (s1.kept, s1.revised, s1.resolve_correct, s1.resolve_samples) == (6, 8, 7, 14)
    assert s1.ratio == pytest.approx(0.3 - 1.0 * (0.25 - 0.1))
    s2 = update_replay_ratio(s1, RetentionCounts(4, 16, 14, 28), c)
    # sums: kept 5, revised 12, resolve 10.5 / 21 -> retention 5/12, base 0.5
    assert s2.ratio == pytest.approx(0.3 - (5 / 12 - 0.5 - 0.1))


def test_resolve_gap_ratio_formula_and_clip():
    c = ReplayControl(center=0.4, gain=2.0, margin=0.05, min=0.1, max=0.7)
    assert resolve_gap_ratio(0.6, 0.5, c) == pytest.approx(0.4 - 2.0 * 0.05)
    assert resolve_gap_ratio(1.0, 0.2, c) == 0.1 and resolve_gap_ratio(0.0, 0.9, c) == 0.7


def test_a_step_without_correct_anchors_changes_nothing_but_the_decay():
    c = ReplayControl(smoothing=0.2)
    state = update_replay_ratio(initial_replay_state(c), _seen(0.7), c)
    after = update_replay_ratio(state, RetentionCounts(0, 0, 0, 0), c)
    assert after.ratio == pytest.approx(state.ratio)
    assert after.kept / after.revised == pytest.approx(state.kept / state.revised)


def test_resolve_gap_holds_the_initial_ratio_until_evidence():
    c = ReplayControl(initial=0.5)
    assert update_replay_ratio(initial_replay_state(c), RetentionCounts(0, 0, 0, 0), c).ratio == 0.5


def test_failed_only_stays_at_zero_under_both_rules():
    for rule in ("resolve_gap", "published"):
        c = ReplayControl(rule=rule, initial=0.0, min=0.0, max=0.0)
        assert update_replay_ratio(initial_replay_state(c), _seen(0.0), c).ratio == 0.0


def test_non_adaptive_tracks_but_holds():
    for rule in ("resolve_gap", "published"):
        c = ReplayControl(rule=rule, adaptive=False, initial=0.5, min=0.2)
        s = update_replay_ratio(ReplayState(ratio=0.5), _seen(0.1), c)
        assert s.ratio == 0.5 and s.revised > 0


def test_none_keeps_state():
    s = ReplayState(ratio=0.4, prev_retention=0.6, low_streak=2, kept=3.0, revised=4.0)
    assert update_replay_ratio(s, None, ReplayControl()) is s


# --------------------------------------------------------------------------- published
def test_published_hand_computed_steps():
    s0 = initial_replay_state(PUBLISHED)
    assert s0.ratio == 0.3
    s1 = update_replay_ratio(s0, _seen(0.5), PUBLISHED)  # 1 + 0.8*0.3 + 0 + 0.05*1 = 1.29
    assert s1.ratio == pytest.approx(0.3 * 1.29) and s1.low_streak == 1 and s1.prev_retention == 0.5
    s2 = update_replay_ratio(s1, _seen(0.4), PUBLISHED)  # 1 + 0.8*0.4 + 0.3*0.1 + 0.05*2 = 1.45
    assert s2.ratio == pytest.approx(0.3 * 1.29 * 1.45) and s2.low_streak == 2
    s3 = update_replay_ratio(s2, _seen(0.9), PUBLISHED)  # 1 + 0.8*(-0.1) = 0.92, streak reset
    assert s3.ratio == pytest.approx(0.3 * 1.29 * 1.45 * 0.92) and s3.low_streak == 0


def test_published_streak_is_capped():
    c = ReplayControl(rule="published", w_gap=0.0, w_drop=0.0, w_streak=0.1, max=1.0, max_streak=2)
    s = ReplayState(ratio=0.3, prev_retention=0.5, low_streak=5)
    assert update_replay_ratio(s, _seen(0.5), c).ratio == pytest.approx(0.3 * 1.2)


def test_published_clipped_at_bounds():
    assert update_replay_ratio(ReplayState(ratio=0.75), _seen(0.0), PUBLISHED).ratio == 0.8
    s = ReplayState(ratio=0.21)
    for _ in range(3):
        s = update_replay_ratio(s, _seen(1.0), PUBLISHED)
    assert s.ratio == 0.2


def test_published_step_without_correct_anchors_keeps_ratio_and_streak():
    s = ReplayState(ratio=0.4, prev_retention=0.6, low_streak=2)
    after = update_replay_ratio(s, RetentionCounts(0, 0, 0, 0), PUBLISHED)
    assert (after.ratio, after.prev_retention, after.low_streak) == (0.4, 0.6, 2)


# ------------------------------------------------------------------------- validation
def test_counts_validation():
    with pytest.raises(ValueError, match="kept.*-1"):
        RetentionCounts(-1, 2, 0, 0)
    with pytest.raises(ValueError, match="exceeds its total"):
        RetentionCounts(3, 2, 0, 0)
    assert RetentionCounts(0, 0, 0, 0).retention is None and RetentionCounts(1, 4, 1, 2).resolve_rate == 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(min=0.5, initial=0.3), "min=0.5, initial=0.3"),
        (dict(max=0.2, initial=0.3), "initial=0.3, max=0.2"),
        (dict(max=1.5), r"ReplayControl.max.*1.5"),
        (dict(target=-0.1), r"ReplayControl.target.*-0.1"),
        (dict(w_gap=-1.0), r"ReplayControl.w_gap.*-1.0"),
        (dict(max_streak=-1), r"ReplayControl.max_streak.*-1"),
        (dict(rule="pid"), r"ReplayControl.rule must be one of \('resolve_gap', 'published'\)"),
        (dict(smoothing=0.0), r"ReplayControl.smoothing must be in \(0, 1\]"),
        (dict(gain=-1.0), r"ReplayControl.gain.*-1.0"),
    ],
)
def test_replay_control_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayControl(**kwargs)


def test_replay_state_round_trip():
    s = ReplayState(ratio=0.42, prev_retention=0.7, low_streak=2, kept=3.5, revised=5.0)
    d = json.loads(json.dumps(s.as_dict()))
    assert ReplayState.from_dict(d) == s
    # a checkpoint written before the moving sums existed
    old = {"ratio": 0.3, "prev_retention": 0.6, "low_streak": 1}
    assert ReplayState.from_dict(old) == ReplayState(ratio=0.3, prev_retention=0.6, low_streak=1)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rho'\]"):
        ReplayState.from_dict({"ratio": 0.3, "rho": 1})
    with pytest.raises(ValueError, match="'ratio'"):
        ReplayState.from_dict({})
