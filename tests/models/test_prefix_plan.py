"""The prefix plan's pure parts: which prompts start with what, and where a row can reside."""

import torch

from cipo.models.prefix_plan import prefix_starts, reads, resident_hosts, row_hosts


def test_prefix_starts_lists_each_prefix_once_per_start_in_order():
    starts = prefix_starts([(1, 2, 3), (1, 2, 4, 5), (7, 8)])
    assert starts[(1, 2)] == [0, 1]  # both begin with 1 2
    assert starts[(1, 2, 3)] == [0] and starts[(1, 2, 4, 5)] == [1] and starts[(7, 8)] == [2]
    assert (1,) not in starts  # a resident reads at least two tokens
    assert prefix_starts([(1, 2), (1, 2)])[(1, 2)] == [0, 1]


def test_reads_is_everything_but_the_last_real_token():
    assert reads(torch.tensor([5, 6, 7, 0, 0]), end=3) == (5, 6)


def test_a_row_resides_where_everything_it_reads_starts_a_longer_prompt():
    # row 0: prompt (1, 2), completion (3, 9=EOS); a correction prompt (1, 2, 3, 8, 8) holds its prompt
    # and attempt: prefix (1, 2, 3, 8). Row 1 only reads its own prompt's prefix; row 2 reads (1, 2, 4).
    rows = torch.tensor([[1, 2, 3, 9, 0], [1, 2, 5, 0, 0], [1, 2, 4, 6, 0]])
    ends, lengths = [4, 3, 4], [2, 2, 2]
    prefixes = [(1,), (1, 2, 3, 8)]  # row 0's and 1's prompt minus its last token; the correction prompt's
    assert resident_hosts(rows, ends, lengths, prefixes) == {0: 1, 1: 1}
    # row 1: its one completion token is scored from position 1, which reads (1, 2): inside prefix 1 too
    assert resident_hosts(rows, ends, lengths, [(1,), (9, 9, 9)]) == {}


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
