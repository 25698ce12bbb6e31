"""Adaptive replay-ratio controller."""

import json

import pytest

from cipo.algorithms.replay import ReplayControl, ReplayState, initial_replay_state, update_replay_ratio


def test_replay_hand_computed_steps():
    c = ReplayControl()
    s0 = initial_replay_state(c)
    assert s0 == ReplayState(ratio=0.3)
    s1 = update_replay_ratio(s0, 0.5, c)  # 1 + 0.8*0.3 + 0 + 0.05*1 = 1.29
    assert s1.ratio == pytest.approx(0.3 * 1.29) and s1.low_streak == 1 and s1.prev_retention == 0.5
    s2 = update_replay_ratio(s1, 0.4, c)  # 1 + 0.8*0.4 + 0.3*0.1 + 0.05*2 = 1.45
    assert s2.ratio == pytest.approx(0.3 * 1.29 * 1.45) and s2.low_streak == 2
    s3 = update_replay_ratio(s2, 0.9, c)  # 1 + 0.8*(-0.1) = 0.92, streak reset
    assert s3.ratio == pytest.approx(0.3 * 1.29 * 1.45 * 0.92) and s3.low_streak == 0


def test_replay_streak_is_capped():
    c = ReplayControl(w_gap=0.0, w_drop=0.0, w_streak=0.1, max=1.0, max_streak=2)
    s = ReplayState(ratio=0.3, prev_retention=0.5, low_streak=5)
    assert update_replay_ratio(s, 0.5, c).ratio == pytest.approx(0.3 * 1.2)


def test_replay_clipped_at_bounds():
    c = ReplayControl()
    assert update_replay_ratio(ReplayState(ratio=0.75), 0.0, c).ratio == 0.8
    s = ReplayState(ratio=0.21)
    for _ in range(3):
        s = update_replay_ratio(s, 1.0, c)
    assert s.ratio == 0.2


def test_replay_none_retention_keeps_state():
    s = ReplayState(ratio=0.4, prev_retention=0.6, low_streak=2)
    assert update_replay_ratio(s, None, ReplayControl()) is s


def test_replay_non_adaptive_tracks_but_holds():
    c = ReplayControl(adaptive=False, initial=0.5)
    s = update_replay_ratio(ReplayState(ratio=0.5), 0.1, c)
    assert s == ReplayState(ratio=0.5, prev_retention=0.1, low_streak=1)


def test_replay_zero_ratio_stays_zero():
    c = ReplayControl(initial=0.0, min=0.0)
    assert update_replay_ratio(initial_replay_state(c), 0.0, c).ratio == 0.0


def test_replay_bad_retention():
    with pytest.raises(ValueError, match="retention.*1.5"):
        update_replay_ratio(ReplayState(ratio=0.3), 1.5, ReplayControl())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(min=0.5, initial=0.3), "min=0.5, initial=0.3"),
        (dict(max=0.2, initial=0.3), "initial=0.3, max=0.2"),
        (dict(max=1.5), r"ReplayControl.max.*1.5"),
        (dict(target=-0.1), r"ReplayControl.target.*-0.1"),
        (dict(w_gap=-1.0), r"ReplayControl.w_gap.*-1.0"),
        (dict(max_streak=-1), r"ReplayControl.max_streak.*-1"),
    ],
)
def test_replay_control_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayControl(**kwargs)


def test_replay_state_round_trip():
    s = ReplayState(ratio=0.42, prev_retention=0.7, low_streak=2)
    d = json.loads(json.dumps(s.as_dict()))
    assert ReplayState.from_dict(d) == s
    assert ReplayState.from_dict({"ratio": 0.3}) == ReplayState(ratio=0.3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rho'\]"):
        ReplayState.from_dict({"ratio": 0.3, "rho": 1})
    with pytest.raises(ValueError, match="'ratio'"):
        ReplayState.from_dict({})
