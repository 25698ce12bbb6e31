"""Group-relative advantages: hand-computed cases, loop reference, edge rules."""

import math

import pytest
import torch

from cipo.algorithms.advantages import (
    ADVANTAGE_METHODS,
    frac_zero_std_groups,
    group_advantages,
    group_outcome_fractions,
)


def _loop_reference(rewards: list[float], g: int, method: str, eps: float) -> list[float]:
    out = []
    for start in range(0, len(rewards), g):
        grp = rewards[start : start + g]
        if g == 1 or max(grp) == min(grp):
            out.extend([0.0] * g)
            continue
        mean = sum(grp) / g
        std = math.sqrt(sum((x - mean) ** 2 for x in grp) / (g - 1))
        for _i, x in enumerate(grp):
            if method == "grpo":
                out.append((x - mean) / (std + eps))
            elif method == "dr_grpo":
                out.append(x - mean)
            else:
                out.append(x - (sum(grp) - x) / (g - 1))
    return out


def test_grpo_hand_computed():
    # group [1, 0, 0, 0]: mean 0.25, sample std sqrt(0.75 / 3) = 0.5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, "grpo", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([1.5, -0.5, -0.5, -0.5]))


def test_dr_grpo_hand_computed():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 4.0]), 2, "dr_grpo")
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, 0.0, 0.0, -1.0, 1.0]))


def test_rloo_hand_computed():
    # group [1, 0, 0]: 1 - 0 = 1; 0 - (1 + 0) / 2 = -0.5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0]), 3, "rloo")
    torch.testing.assert_close(adv, torch.tensor([1.0, -0.5, -0.5]))


def test_eps_enters_denominator():
    adv = group_advantages(torch.tensor([1.0, 0.0]), 2, "grpo", eps=1.0)
    std = math.sqrt(0.5)
    torch.testing.assert_close(adv, torch.tensor([0.5 / (std + 1), -0.5 / (std + 1)]))


@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
@pytest.mark.parametrize("g", [1, 2, 5])
def test_vectorised_matches_loop(method, g):
    gen = torch.Generator().manual_seed(g)
    rewards = torch.randint(0, 3, (g * 7,), generator=gen).double() * 0.5
    rewards[:g] = 1.0  # force one zero-variance group
    got = group_advantages(rewards, g, method, eps=1e-6)
    want = torch.tensor(_loop_reference(rewards.tolist(), g, method, 1e-6), dtype=torch.double)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
def test_singletons_are_zero(method):
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.3]), 1, method)
    assert torch.equal(adv, torch.zeros(3))


@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
def test_zero_variance_group_is_exactly_zero(method):
    # 0.1 * 3 / 3 != 0.1 in float32: the mean would leave a residue without the rule.
    adv = group_advantages(torch.tensor([0.1, 0.1, 0.1, 1.0, 0.0, 1.0]), 3, method)
    assert torch.equal(adv[:3], torch.zeros(3))
    assert (adv[3:] != 0).all()


def test_int_rewards_and_detached():
    r = torch.tensor([1.0, 0.0], requires_grad=True)
    assert not group_advantages(r, 2).requires_grad
    assert group_advantages(torch.tensor([1, 0]), 2).dtype == torch.float32


def test_empty():
    assert group_advantages(torch.zeros(0), 4).shape == (0,)


def test_bad_length_names_n_and_group_size():
    with pytest.raises(ValueError, match=r"N=5.*group_size=2"):
        group_advantages(torch.zeros(5), 2)


def test_bad_group_size_and_method():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(4), 0)
    with pytest.raises(ValueError, match=r"'grpo', 'dr_grpo', 'rloo'.*'ppo'"):
        group_advantages(torch.zeros(4), 2, "ppo")
    with pytest.raises(ValueError, match="rewards must be 1-D"):
        group_advantages(torch.zeros(2, 2), 2)


def test_group_outcome_fractions():
    s = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0, 1, 1], dtype=torch.bool)
    assert group_outcome_fractions(s, 2) == {"frac_all_correct": 0.4, "frac_all_wrong": 0.4, "frac_mixed": 0.2}
    assert group_outcome_fractions(s[:0], 2)["frac_mixed"] == 0.0


def test_frac_zero_std_groups():
    r = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0])
    assert frac_zero_std_groups(r, 2) == 0.75
    assert frac_zero_std_groups(r, 1) == 1.0
    assert frac_zero_std_groups(torch.zeros(0), 3) == 0.0


def test_batch_std_scope_pools_only_varying_groups():
    # groups: [1, 0] (mean .5, sq dev .5), [1, -1] (mean 0, sq dev 2), [0, 0] (constant)
    rewards = torch.tensor([1.0, 0.0, 1.0, -1.0, 0.0, 0.0])
    pooled = math.sqrt((0.5 + 2.0) / 2)  # 2 varying groups x (G - 1) = 2 degrees of freedom
    expected = torch.tensor([0.5, -0.5, 1.0, -1.0, 0.0, 0.0]) / (pooled + 1e-6)
    got = group_advantages(rewards, 2, "grpo", std_scope="batch")
    assert torch.allclose(got, expected, atol=1e-6)


def test_batch_std_scope_keeps_risk_penalty_meaningful():
    # a right anchor's revisions {1, 0, 1, 0} vs the same group shaped with lambda = 1: {1, -1, 1, -1}
    plain = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    shaped = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, 0.0, 0.0, 0.0])
    per_group = group_advantages(shaped, 4, "grpo", std_scope="group")
    assert torch.allclose(per_group[:4], group_advantages(plain, 4, "grpo")[:4])  # lambda cancelled
    # with a pooled std, lambda doubles the weight of the right anchor's group relative to the other
    pooled_plain = group_advantages(plain, 4, "grpo", std_scope="batch")
    pooled_shaped = group_advantages(shaped, 4, "grpo", std_scope="batch")
    ratio_plain, ratio_shaped = pooled_plain[0] / pooled_plain[4], pooled_shaped[0] / pooled_shaped[4]
    assert ratio_shaped / ratio_plain == pytest.approx(2.0, rel=1e-4)


def test_unknown_std_scope():
    with pytest.raises(ValueError, match="std_scope"):
        group_advantages(torch.zeros(4), 2, std_scope="global")
