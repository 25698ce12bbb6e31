"""Dynamic sampling's pure pieces: which groups carry a signal, which are kept, how many to refill."""

import pytest
import torch

from cipo.algorithms.dynamic_sampling import informative_groups, keep_first, refill_prompts


def test_informative_groups_are_those_whose_rewards_differ():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.0])
    assert informative_groups(rewards, 2).tolist() == [True, False, False, True]


def test_a_group_of_one_is_never_informative():
    assert informative_groups(torch.tensor([1.0, 0.0]), 1).tolist() == [False, False]


def test_informative_groups_rejects_a_ragged_batch():
    with pytest.raises(ValueError, match="multiple of group_size=2"):
        informative_groups(torch.zeros(3), 2)


def test_keep_first_trims_the_surplus_in_order():
    informative = torch.tensor([True, False, True, True, True])
    assert keep_first(informative, 2).tolist() == [True, False, True, False, False]
    assert keep_first(informative, 0).tolist() == [False] * 5
    assert keep_first(informative, 9).tolist() == informative.tolist()


@pytest.mark.parametrize(
    "missing, informative_seen, groups_seen, batch_size, expected",
    [
        (0, 3, 8, 8, 0),  # full: nothing to draw
        (2, 4, 8, 8, 4),  # half the groups informative: twice the missing count
        (2, 8, 8, 8, 2),  # all informative: exactly the missing count
        (3, 0, 8, 8, 8),  # none informative yet: capped at one batch
        (5, 1, 8, 8, 8),
        (2, 0, 0, 8, 2),  # nothing seen: assume every group will do
    ],
)
def test_refill_prompts(missing, informative_seen, groups_seen, batch_size, expected):
    assert refill_prompts(missing, informative_seen, groups_seen, batch_size) == expected
