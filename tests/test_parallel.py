import pytest

from cipo.parallel import gather_objects, rank, shard, sum_across_ranks, world_size


def test_one_process_is_the_identity():
    assert (rank(), world_size()) == (0, 1)
    assert sum_across_ranks({"a": 1.5}) == {"a": 1.5}
    assert gather_objects({"x": 1}) == [{"x": 1}]


def test_shards_are_contiguous_equal_and_disjoint():
    items = list(range(12))
    parts = [shard(items, index, 3) for index in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert shard(items, 0, 1) == items


def test_an_uneven_split_names_the_key():
    with pytest.raises(ValueError, match=r"data\.batch_size=10 is not divisible by the 4 training processes"):
        shard(list(range(10)), 0, 4)
