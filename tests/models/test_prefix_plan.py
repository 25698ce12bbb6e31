"""The prefix plan's pure parts: which prompts start with what, and where a row can reside."""

import torch

from cipo.models.prefix_plan import prefix_starts, reads, resident_hosts


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
