"""Shaping that cannot cancel (method sheet step 7): property tests, one per clause, over random
batches of anchors, every advantage method and both std scopes. Each clause is also run on main's
old computation (the penalty in the reward, then a pooled std: ``shaping="reward"``), which
violates it: the tests fail on the code they replace."""

import pytest
import torch

from cipo.algorithms.advantages import (
    ADVANTAGE_METHODS,
    correction_advantages,
    group_advantages,
    group_advantages_with_extra,
)
from cipo.algorithms.correction import shape_correction_rewards

M = 4
SCOPES = ("group", "batch")


def _batch(seed: int, num_anchors: int = 6):
    """Anchors with random verdicts; revisions random, plus one correct anchor whose M revisions all
    break and one failed anchor whose revisions all fail (the cases a z-score zeroes)."""
    g = torch.Generator().manual_seed(seed)
    anchor = torch.rand(num_anchors, generator=g) < 0.5
    revision = torch.rand(num_anchors * M, generator=g) < 0.6
    anchor[0], revision[:M] = True, False  # a correct anchor, all revisions broken
    anchor[1], revision[M : 2 * M] = False, False  # a failed anchor, none fixed
    s_a = anchor.repeat_interleave(M)
    return s_a, s_a.float(), revision, revision.float()


def _advantages(batch, penalty, method="grpo", scope="group", shaping="advantage", bonus=0.0, valid=None):
    s_a, r_a, s_c, r_c = batch
    return correction_advantages(
        s_a, r_a, s_c, r_c, M, method=method, penalty=penalty, progress_bonus=bonus,
        shaping=shaping, std_scope=scope, valid=valid,
    )[1]  # fmt: skip


def _old_main(batch, penalty):
    """rollout/collect.py before this change: shaped reward, then the pooled std."""
    s_a, _, s_c, _ = batch
    return group_advantages(shape_correction_rewards(s_a.float(), s_c.float(), penalty), M, "grpo", std_scope="batch")


CASES = [(seed, method, scope) for seed in range(8) for method in ADVANTAGE_METHODS for scope in SCOPES]


@pytest.mark.parametrize("seed, method, scope", CASES)
def test_breaking_a_correct_anchor_costs_lambda_in_every_case(seed, method, scope):
    batch = _batch(seed)
    broken = (batch[0] & ~batch[2]).float()
    for penalty in (0.5, 1.0, 3.0):
        shift = _advantages(batch, penalty, method, scope) - _advantages(batch, 0.0, method, scope)
        assert torch.allclose(shift, -penalty * broken, atol=1e-6)
    assert torch.allclose(_advantages(batch, 2.0, method, scope)[:M], torch.full((M,), -2.0))  # all M broke


@pytest.mark.parametrize("seed, method, scope", CASES)
def test_failed_anchors_are_never_touched_and_lambda_zero_is_no_shaping(seed, method, scope):
    batch = _batch(seed)
    plain = group_advantages(batch[3], M, method, std_scope=scope)
    assert torch.equal(_advantages(batch, 0.0, method, scope), plain)
    failed = ~batch[0]
    assert torch.equal(_advantages(batch, 5.0, method, scope)[failed], plain[failed])


def test_per_anchor_normalisation_is_the_default():
    batch = _batch(3)
    s_a, r_a, s_c, r_c = batch
    default = correction_advantages(s_a, r_a, s_c, r_c, M, penalty=0.0)[1]
    for k in range(6):
        rows = slice(k * M, (k + 1) * M)
        assert torch.equal(default[rows], group_advantages(r_c[rows], M, "grpo"))


def test_the_old_computation_violates_the_clauses():
    """What the audit found, as the tests above would report it on main."""
    batch = _batch(0)
    broken = (batch[0] & ~batch[2]).float()
    assert torch.equal(_old_main(batch, 2.0)[:M], torch.zeros(M))  # all M broke: advantage 0
    shift = _old_main(batch, 1.0) - _old_main(batch, 0.0)
    assert not torch.allclose(shift, -1.0 * broken, atol=1e-3)  # lambda rescales instead of costing
    failed = ~batch[0]
    assert not torch.allclose(_old_main(batch, 3.0)[failed], _old_main(batch, 0.0)[failed])  # touched
    # the published form with per-anchor z-scores cancels lambda exactly
    per_anchor = [_advantages(batch, p, shaping="reward") for p in (0.0, 1.0, 3.0)]
    assert torch.allclose(per_anchor[0], per_anchor[1]) and torch.allclose(per_anchor[0], per_anchor[2])


@pytest.mark.parametrize("scope", SCOPES)
def test_progress_bonus_is_beta_times_the_reward_change(scope):
    batch = _batch(5)
    s_a, r_a, s_c, r_c = batch
    shift = _advantages(batch, 1.0, scope=scope, bonus=0.5) - _advantages(batch, 1.0, scope=scope)
    assert torch.allclose(shift, 0.5 * (r_c - r_a))
    # a fix earns +beta, a break -beta on top of lambda, a kept answer nothing
    fixed = ~s_a & s_c
    assert torch.allclose(shift[fixed], torch.full_like(shift[fixed], 0.5))
    assert torch.allclose(shift[s_a & s_c], torch.zeros_like(shift[s_a & s_c]))


def test_fractional_rewards_are_normalised_and_success_decides_breakage():
    s_a = torch.tensor([True] * M)
    r_a = torch.ones(M)
    r_c = torch.tensor([1.0, 0.5, 0.25, 0.0])  # code verifier: share of tests passed
    s_c = r_c == 1.0
    rewards, adv = correction_advantages(s_a, r_a, s_c, r_c, M, penalty=1.0)
    assert torch.equal(rewards, r_c)  # the verifier's reward is what gets normalised
    assert torch.allclose(adv, group_advantages(r_c, M) - torch.tensor([0.0, 1.0, 1.0, 1.0]))


def test_invalid_anchors_get_zero_and_stay_out_of_the_pooled_std():
    batch = _batch(2)
    valid = torch.ones(6 * M, dtype=torch.bool)
    valid[-M:] = False
    with_invalid = _advantages(batch, 1.0, scope="batch", valid=valid)
    without = correction_advantages(*(t[:-M] for t in batch), M, penalty=1.0, std_scope="batch")[1]
    assert torch.equal(with_invalid[-M:], torch.zeros(M)) and torch.allclose(with_invalid[:-M], without)


def test_bad_arguments():
    batch = _batch(0)
    with pytest.raises(ValueError, match="shaping must be one of"):
        _advantages(batch, 1.0, shaping="loss")
    with pytest.raises(ValueError, match="penalty and progress_bonus must be >= 0"):
        _advantages(batch, -1.0)
    with pytest.raises(ValueError, match=r"anchor_success must have shape \(24,\)"):
        correction_advantages(batch[0][:3], batch[1], batch[2], batch[3], M)


# ----------------------------------------------------------------- transplant: mixed groups
@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
def test_with_no_extra_rows_it_is_group_advantages(method):
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])
    main, extra = group_advantages_with_extra(rewards, 4, torch.zeros(0), torch.zeros(0, dtype=torch.long), method)
    assert torch.equal(main, group_advantages(rewards, 4, method)) and extra.numel() == 0


@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
def test_extra_rows_join_their_group(method):
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])
    extra_rewards, extra_groups = torch.tensor([1.0, 1.0]), torch.tensor([1, 1])
    main, extra = group_advantages_with_extra(rewards, 4, extra_rewards, extra_groups, method)
    union = group_advantages(torch.tensor([0.0, 0, 0, 0, 1, 1]), 6, method)  # group 1 with its two extras
    assert torch.allclose(main[4:], union[:4]) and torch.allclose(extra, union[4:])
    assert torch.equal(main[:4], group_advantages(rewards[:4], 4, method))  # other groups unchanged
    assert bool((extra > 0).all())  # an all-wrong group now has a signal: the transplanted success


def test_extra_rows_validation():
    with pytest.raises(ValueError, match=r"extra_groups must be in \[0, 2\)"):
        group_advantages_with_extra(torch.zeros(8), 4, torch.ones(1), torch.tensor([2]))
