import pytest
import torch

from cipo.algorithms.micro_batches import mini_batch_rows, plan_micro_batches, row_ends


def mask_of(lengths: list[int], width: int) -> torch.Tensor:
    return torch.tensor([[1] * n + [0] * (width - n) for n in lengths])


def test_row_ends_count_up_to_the_last_real_token():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]])
    assert row_ends(mask).tolist() == [2, 4, 0, 3]


def test_hand_case_sorts_longest_first_and_cuts_at_the_pad_ratio():
    # lengths 4, 10, 6, 9, 3 -> sorted 10, 9 | 6, 4 | 3: 6 * 1.5 < 10 and 3 * 1.5 < 6 start new micro-batches
    plan = plan_micro_batches(mask_of([4, 10, 6, 9, 3], 12), max_rows=8, max_pad_ratio=1.5)
    assert [(rows.tolist(), width) for rows, width in plan] == [([1, 3], 10), ([2, 0], 6), ([4], 3)]


def test_max_rows_caps_each_micro_batch():
    plan = plan_micro_batches(mask_of([5] * 7, 5), max_rows=3)
    assert [len(rows) for rows, _ in plan] == [3, 3, 1]
    assert all(width == 5 for _, width in plan)


def test_every_row_exactly_once_and_padding_bounded():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (57,), generator=generator).tolist()
    plan = plan_micro_batches(mask_of(lengths, 40), max_rows=5, max_pad_ratio=1.5)
    seen = torch.cat([rows for rows, _ in plan]).tolist()
    assert sorted(seen) == list(range(57))
    for rows, width in plan:
        row_lengths = [lengths[i] for i in rows.tolist()]
        assert width == max(row_lengths) and 1.5 * min(row_lengths) >= max(row_lengths)


def test_with_prompt_lengths_long_prompts_and_short_ones_never_share_a_micro_batch():
    # main rows: prompt 14, totals 40..70; correction rows: prompt 60 and 80, totals 90..150
    prompts = [14] * 6 + [60] * 3 + [80] * 3
    lengths = [40, 70, 55, 45, 62, 50, 90, 120, 100, 150, 110, 130]
    plan = plan_micro_batches(mask_of(lengths, 150), 64, 1.5, prompt_lengths=torch.tensor(prompts))
    assert sorted(torch.cat([rows for rows, _ in plan]).tolist()) == list(range(12))
    for rows, width in plan:
        row_prompts = [prompts[i] for i in rows.tolist()]
        continuations = [lengths[i] - prompts[i] + 1 for i in rows.tolist()]
        assert width == max(lengths[i] for i in rows.tolist())
        assert 1.5 * min(row_prompts) >= max(row_prompts) and 1.5 * min(continuations) >= max(continuations)
    assert all(len({prompts[i] == 14 for i in rows.tolist()}) == 1 for rows, _ in plan)
    # by total length alone the longest main row (70) and the shortest correction rows (90, 100) share one
    by_total = [set(rows.tolist()) for rows, _ in plan_micro_batches(mask_of(lengths, 150), 64, 1.5)]
    assert any({1, 6} <= rows for rows in by_total)


def test_anchors_join_their_revisions_micro_batch_beyond_max_rows():
    """Two prompts x 4 samples (prompt 5 + completion 6 tokens); rows 0 and 5 are anchors, each with 3
    revisions (prompt 12: the anchor minus its EOS plus a 2-token suffix, completion 4) that can host
    them. With 4 rows a micro-batch, each anchor moves from its group's micro-batch to one holding its
    revisions (residents run no forward, so that micro-batch may exceed 4 rows)."""
    prompt_lengths = [5] * 8 + [12] * 6
    mask = mask_of([11] * 8 + [16] * 6, 16)
    lengths = torch.tensor(prompt_lengths)
    without = [set(r.tolist()) for r, _ in plan_micro_batches(mask, 4, 1.5, prompt_lengths=lengths)]
    hosts = {0: [8, 9, 10], 5: [11, 12, 13]}  # what models.prefix_plan.row_hosts finds (tested there)
    plan = plan_micro_batches(mask, 4, 1.5, prompt_lengths=lengths, hosts=hosts)
    groups = [set(r.tolist()) for r, _ in plan]
    assert sorted(i for g in groups for i in g) == list(range(14))
    assert not any({0, 8} <= g for g in without)  # the plain plan splits an anchor from its revisions
    for anchor, revisions in hosts.items():
        (home,) = [g for g in groups if anchor in g]
        assert home & set(revisions)  # with (some of) its revisions: its prompt and attempt are their prefix
    assert all(len(g - {0, 5}) <= 4 for g in groups)  # only the residents go beyond max_rows
    for rows_, width_ in plan:
        assert width_ == int(mask[rows_].sum(dim=1).max())
    no_hosts = [set(r.tolist()) for r, _ in plan_micro_batches(mask, 4, 1.5, prompt_lengths=lengths, hosts={})]
    assert no_hosts == without


def test_an_all_padding_row_still_gets_width_one():
    plan = plan_micro_batches(mask_of([0, 0], 4), max_rows=4)
    assert [(rows.tolist(), width) for rows, width in plan] == [([0, 1], 1)]


@pytest.mark.parametrize("max_rows, ratio", [(0, 1.5), (4, 0.9)])
def test_bad_settings_are_refused(max_rows, ratio):
    with pytest.raises(ValueError):
        plan_micro_batches(mask_of([3], 3), max_rows=max_rows, max_pad_ratio=ratio)


def test_mini_batches_partition_the_rows():
    for ppo_epoch in range(2):
        chunks = [mini_batch_rows(20, ppo_epoch * 3 + k, num_mini_batches=3, step=0) for k in range(3)]
        rows = torch.cat(chunks)
        assert sorted(rows.tolist()) == list(range(20))
    first = torch.cat([mini_batch_rows(20, k, 3, step=0) for k in range(3)])
    second = torch.cat([mini_batch_rows(20, 3 + k, 3, step=0) for k in range(3)])
    assert not torch.equal(first, second)  # reshuffled every PPO epoch
    assert not torch.equal(first, torch.cat([mini_batch_rows(20, k, 3, step=1) for k in range(3)]))  # and step
    assert torch.equal(mini_batch_rows(5, 4, num_mini_batches=1, step=9), torch.arange(5))  # one: every row, in order
