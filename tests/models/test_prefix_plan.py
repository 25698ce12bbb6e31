"""The prefix plan's pure parts: which prompts start with what, and where a row can reside."""

import torch

from cipo.models.prefix_plan import plan_prefix_sharing, prefix_starts, reads, row_hosts


def test_prefix_starts_lists_each_prefix_once_per_start_in_order():
    starts = prefix_starts([(1, 2, 3), (1, 2, 4, 5), (7, 8)])
    assert starts[(1, 2)] == [0, 1]  # both begin with 1 2
    assert starts[(1, 2, 3)] == [0] and starts[(1, 2, 4, 5)] == [1] and starts[(7, 8)] == [2]
    assert (1,) not in starts  # a resident reads at least two tokens
    assert prefix_starts([(1, 2), (1, 2)])[(1, 2)] == [0, 1]


def test_reads_is_everything_but_the_last_real_token():
    assert reads(torch.tensor([5, 6, 7, 0, 0]), end=3) == (5, 6)


def test_a_row_resides_where_everything_it_reads_starts_a_longer_prompt():
    # rows 0-2 sample prompt (1, 2). Row 0 is an anchor (attempt 3, EOS 9) and row 3 its revision, whose
    # prompt (1, 2, 3, 8, 8) holds row 0's prompt and attempt: prefix (1, 2, 3, 8). Row 1's one completion
    # token is scored from the position that reads (1, 2), inside that prefix too; row 2 reads (1, 2, 4).
    rows = [[1, 2, 3, 9], [1, 2, 5], [1, 2, 4, 6], [1, 2, 3, 8, 8, 7]]
    width = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    plan = plan_prefix_sharing(input_ids, mask, torch.tensor([2, 2, 2, 5]))
    assert plan.resident.tolist() == [True, True, False, False]
    assert plan.prefix_ids.tolist() == [[1, 0, 0, 0], [1, 2, 3, 8]]
    assert plan.row_prefix.tolist() == [1, 1, 0, 1]
    assert plan.processed_tokens == 1 + 4 + 3 + 2  # two prefixes, then rows 2 and 3's continuations
    # without the revision nothing can hold row 0 or 1: the three share prompt (1, 2) and all run
    alone = plan_prefix_sharing(input_ids[:3, :4], mask[:3, :4], torch.tensor([2, 2, 2]))
    assert not alone.resident.any() and alone.row_prefix.tolist() == [0, 0, 0]


def test_row_hosts_finds_each_anchors_revisions_over_the_batch():
    """Rows 0-3 sample prompt (1, 2, 3); row 0 is an anchor (attempt 4 5, EOS 9) whose two revisions
    (rows 4, 5) have the prompt (1, 2, 3, 4, 5, 7, 7). Row 3's one-token completion reads only its prompt,
    which also starts the revisions' prefix, so it can reside there too."""
    rows = [
        [1, 2, 3, 4, 5, 9],
        [1, 2, 3, 6, 9],
        [1, 2, 3, 5, 5, 9],
        [1, 2, 3, 9],
        [1, 2, 3, 4, 5, 7, 7, 8, 9],
        [1, 2, 3, 4, 5, 7, 7, 9],
    ]
    width = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    hosts = row_hosts(input_ids, mask, torch.tensor([3, 3, 3, 3, 7, 7]))
    assert hosts == {0: [4, 5], 3: [4, 5]}
