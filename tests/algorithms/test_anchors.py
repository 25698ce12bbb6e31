"""Anchor selection: band, closeness to pass rate 1/2 (binds at G = 8), uniform, all-wrong share,
eligible rows, spread over prompts, replay-ratio extremes."""

import pytest
import torch

from cipo.algorithms.anchors import select_anchors


def _b(*xs):
    return torch.tensor(xs, dtype=torch.bool)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# groups of 4: acc 0.25 (in band), 1.0, 0.0, 0.5 (in band)
MIXED = _b(1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0)


# ----------------------------------------------------------------------- anchors
@pytest.mark.parametrize("seed", range(5))
def test_band_preference_and_spread(seed):
    idx, m = select_anchors(MIXED, 4, num_anchors=4, replay_ratio=0.5, generator=_gen(seed))
    chosen = idx.tolist()
    assert chosen == sorted(chosen)
    correct = [i for i in chosen if MIXED[i]]
    failed = [i for i in chosen if not MIXED[i]]
    assert correct[0] == 0 and correct[1] in (12, 13)  # one per in-band prompt
    assert failed[0] in (1, 2, 3) and failed[1] in (14, 15)
    assert m == {
        "num_anchors": 4.0,
        "num_correct_anchors": 2.0,
        "num_failed_anchors": 2.0,
        "band_occupancy": 0.5,
        "frac_anchors_in_band": 1.0,
        "num_anchors_in_band": 4.0,
        "num_groups_in_band": 2.0,
        # buckets of the anchors' prompts: 0.25 (low) twice, 0.5 (mid) twice
        "num_anchors_pass_0": 0.0,
        "num_anchors_pass_low": 2.0,
        "num_anchors_pass_mid": 2.0,
        "num_anchors_pass_high": 0.0,
        "num_anchors_pass_1": 0.0,
    }


def test_uniform_choice_reaches_out_of_band():
    out_of_band = set()
    for seed in range(20):
        idx, _ = select_anchors(MIXED, 4, 4, 0.5, preference="uniform", generator=_gen(seed))
        out_of_band |= {i // 4 for i in idx.tolist()} & {1, 2}
    assert out_of_band == {1, 2}


def test_band_is_exhausted_before_falling_back():
    # 3 failed in band (group 0) but 5 failed wanted: the other 2 come from group 2.
    idx, m = select_anchors(MIXED, 4, 5, 0.0, generator=_gen(0))
    groups = [i // 4 for i in idx.tolist()]
    assert sorted(i for i in idx.tolist() if i // 4 in (0, 3)) == [1, 2, 3, 14, 15]
    assert m["num_anchors"] == 5.0 and m["frac_anchors_in_band"] == 1.0
    assert groups.count(2) == 0
    idx, m = select_anchors(MIXED, 4, 7, 0.0, generator=_gen(0))
    assert [i // 4 for i in idx.tolist()].count(2) == 2 and m["frac_anchors_in_band"] == 5 / 7


def test_fallback_when_no_group_in_band():
    s = _b(1, 1, 0, 0)
    idx, m = select_anchors(s, 2, 3, 0.3, generator=_gen(0))  # round(0.9) = 1 correct
    assert m["num_correct_anchors"] == 1.0 and m["num_failed_anchors"] == 2.0
    assert m["band_occupancy"] == 0.0 and m["frac_anchors_in_band"] == 0.0
    assert idx.tolist()[-2:] == [2, 3]


def test_all_correct_fills_with_correct():
    idx, m = select_anchors(torch.ones(8, dtype=torch.bool), 4, 4, 0.3, generator=_gen(0))
    assert m["num_correct_anchors"] == 4.0 and m["num_failed_anchors"] == 0.0
    assert sorted(i // 4 for i in idx.tolist()) == [0, 0, 1, 1]  # spread over prompts


def test_all_wrong_fills_with_failed():
    idx, m = select_anchors(torch.zeros(8, dtype=torch.bool), 4, 4, 0.7, generator=_gen(0))
    assert m["num_failed_anchors"] == 4.0 and m["num_correct_anchors"] == 0.0


def test_replay_ratio_extremes_are_strict():
    s = _b(1, 1, 1, 0, 1, 1, 1, 0)
    idx, m = select_anchors(s, 4, 4, 0.0, generator=_gen(0))
    assert idx.tolist() == [3, 7] and m["num_correct_anchors"] == 0.0
    idx, m = select_anchors(_b(1, 0, 0, 0), 4, 4, 1.0, generator=_gen(0))
    assert idx.tolist() == [0] and m["num_failed_anchors"] == 0.0


def test_replay_ratio_rounds_half_up():
    _, m = select_anchors(MIXED, 4, 5, 0.5, generator=_gen(0))  # 2.5 -> 3
    assert m["num_correct_anchors"] == 3.0 and m["num_failed_anchors"] == 2.0


def test_groups_of_one():
    s = _b(1, 0, 1, 0, 0)
    idx, m = select_anchors(s, 1, 3, 0.34, generator=_gen(0))
    assert m["num_correct_anchors"] == 1.0 and m["num_failed_anchors"] == 2.0
    assert m["band_occupancy"] == 0.0


def test_fewer_candidates_than_requested():
    idx, m = select_anchors(_b(1, 0, 0, 1), 2, 10, 0.3, generator=_gen(0))
    assert idx.tolist() == [0, 1, 2, 3] and m["num_anchors"] == 4.0


def test_spread_across_prompts_first():
    s = torch.zeros(12, dtype=torch.bool)
    for seed in range(5):
        idx, _ = select_anchors(s, 4, 3, 0.0, generator=_gen(seed))
        assert sorted(i // 4 for i in idx.tolist()) == [0, 1, 2]
        idx, _ = select_anchors(s, 4, 6, 0.0, generator=_gen(seed))
        assert sorted(i // 4 for i in idx.tolist()) == [0, 0, 1, 1, 2, 2]


def test_deterministic_given_seed():
    s = torch.rand(64, generator=_gen(3)) > 0.5
    a, _ = select_anchors(s, 8, 10, 0.3, generator=_gen(7))
    b, _ = select_anchors(s, 8, 10, 0.3, generator=_gen(7))
    assert torch.equal(a, b)
    others = {tuple(select_anchors(s, 8, 10, 0.3, generator=_gen(k))[0].tolist()) for k in range(8)}
    assert len(others) > 1


def test_empty_inputs():
    for s, k in ((MIXED, 0), (torch.zeros(0, dtype=torch.bool), 4)):
        idx, m = select_anchors(s, 4, k, 0.3)
        assert idx.numel() == 0 and idx.dtype == torch.long and m["num_anchors"] == 0.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(acc_low=0.9, acc_high=0.5), r"acc_low \(0.9\).*acc_high \(0.5\)"),
        (dict(acc_low=-0.1), "acc_low.*-0.1"),
        (dict(acc_high=1.2), "acc_high.*1.2"),
        (dict(replay_ratio=1.5), "replay_ratio.*1.5"),
        (dict(num_anchors=-1), "num_anchors.*-1"),
        (dict(group_size=0), "group_size.*0"),
        (dict(group_size=3), "N=16.*group_size=3"),
        (dict(preference="medium"), r"preference must be one of \('closeness', 'band', 'uniform'\)"),
        (dict(all_wrong_share=2.0), "all_wrong_share.*2.0"),
        (dict(eligible=torch.ones(3, dtype=torch.bool)), r"eligible \(3,\) and success \(16,\)"),
    ],
)
def test_select_anchors_validation(kwargs, match):
    args = dict(success=MIXED, group_size=4, num_anchors=2, replay_ratio=0.3) | kwargs
    with pytest.raises(ValueError, match=match):
        select_anchors(**args)


# ------------------------------------------------------------------------ replay


# ---------------------------------------------------------- difficulty that binds (G = 8)
def _batch(pass_counts: list[int], group_size: int = 8) -> torch.Tensor:
    """Groups with the given numbers of correct samples (correct ones first in each group)."""
    return torch.tensor([i < c for c in pass_counts for i in range(group_size)], dtype=torch.bool)


# 16 prompts as the built-in task sees them at G = 8: 3 all-wrong, 1 all-right, 12 mixed
BATCH = [0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 7, 8]


def _mean_distance_from_half(preference: str, seeds=range(40), **kwargs) -> float:
    acc = torch.tensor(BATCH, dtype=torch.float64) / 8
    distances = []
    for seed in seeds:
        idx, _ = select_anchors(_batch(BATCH), 8, 8, 0.25, preference=preference, generator=_gen(seed), **kwargs)
        distances += (acc[idx // 8] - 0.5).abs().tolist()
    return sum(distances) / len(distances)


def test_closeness_ranking_binds_where_the_wide_band_does_not():
    """At G = 8 the [1/8, 7/8] band is every mixed group: it picks like uniform choice among
    them. Ranking by closeness to 1/2 really selects medium pass rates."""
    closeness, band, uniform = (_mean_distance_from_half(p) for p in ("closeness", "band", "uniform"))
    assert closeness < 0.13 < band and band < uniform
    idx, m = select_anchors(_batch(BATCH), 8, 8, 0.25, preference="closeness", generator=_gen(0))
    # 2 correct + 6 failed, one per prompt, from the prompts with pass rates 3/8..5/8 then 2/8, 6/8
    assert m["num_anchors_pass_mid"] >= 4 and m["num_anchors_pass_0"] == 0 and m["num_anchors_pass_1"] == 0
    for kind in (True, False):  # spread: one anchor of each kind per prompt
        rows = [i for i in idx.tolist() if bool(_batch(BATCH)[i]) == kind]
        assert len({i // 8 for i in rows}) == len(rows)


def test_a_narrow_band_binds_too():
    narrow = _mean_distance_from_half("band", acc_low=3 / 8, acc_high=5 / 8)
    assert narrow < _mean_distance_from_half("band") - 0.05


def test_all_wrong_share_draws_failed_anchors_from_all_wrong_prompts():
    idx, m = select_anchors(_batch(BATCH), 8, 8, 0.25, preference="closeness", all_wrong_share=0.5, generator=_gen(0))
    assert m["num_anchors_pass_0"] == 3.0 and m["num_correct_anchors"] == 2.0  # round(0.5 * 6) = 3
    assert {i // 8 for i in idx.tolist() if BATCH[i // 8] == 0} == {0, 1, 2}  # spread over the three
    idx, m = select_anchors(_batch([0, 4]), 8, 8, 0.0, all_wrong_share=1.0, generator=_gen(0))
    assert m["num_anchors_pass_0"] == 8.0  # all from the all-wrong prompt (there are 8 there)
    _, m = select_anchors(_batch([0, 4]), 8, 12, 0.0, all_wrong_share=1.0, generator=_gen(0))
    assert m["num_anchors_pass_0"] == 8.0 and m["num_anchors"] == 12.0  # topped up from the other prompt


def test_ineligible_rows_are_never_anchors_and_the_rest_fill_k():
    """Before, anchors from skipped groups were dropped after the choice (K' < K) and counted."""
    eligible = torch.ones(16, dtype=torch.bool)
    eligible[:4] = False  # group 0's reference was unusable
    for seed in range(10):
        idx, m = select_anchors(MIXED, 4, 5, 0.0, eligible=eligible, generator=_gen(seed))
        assert not set(idx.tolist()) & {0, 1, 2, 3} and m["num_anchors"] == 5.0 == idx.numel()


def test_band_choice_is_unchanged_by_the_new_options():
    """preference=band with everything eligible draws exactly what the published choice drew."""
    for seed in range(5):
        plain, _ = select_anchors(MIXED, 4, 5, 0.4, generator=_gen(seed))
        full, _ = select_anchors(
            MIXED,
            4,
            5,
            0.4,
            preference="band",
            eligible=torch.ones(16, dtype=torch.bool),
            all_wrong_share=0.0,
            generator=_gen(seed),
        )
        assert torch.equal(plain, full)
