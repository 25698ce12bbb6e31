"""pass@k (unbiased), default_ks, chance_accuracy, correction rates and their torchmetrics."""

import itertools
import math

import pytest
import torch

from cipo.algorithms.correction import CorrectionCounts
from cipo.metrics import CorrectionRates, PassAtK, Tally, chance_accuracy, default_ks, pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (4, 0, 1, 0.0),
        (4, 4, 1, 1.0),
        (4, 1, 1, 0.25),
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (5, 4, 2, 1.0),  # n - c < k: every pair holds a right one
    ],
)
def test_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def brute_force(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (c of them right) that contain a right one."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_enumeration_over_all_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_matches_binomial_formula_for_large_n():
    n, c, k = 200, 7, 50
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-10)
    assert pass_at_k(1000, 1, 1) == pytest.approx(1e-3)


def test_pass_at_1_is_mean_accuracy_and_monotone_in_k():
    for n in (3, 8, 16):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)
            values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
            assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_invalid_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    "n, ks",
    [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8]), (9, [1, 2, 4, 8, 9])],
)
def test_default_ks(n, ks):
    assert default_ks(n) == ks


def test_chance_accuracy():
    assert chance_accuracy([]) == 0.0
    assert chance_accuracy(["1", "1", "1"]) == 1.0
    assert chance_accuracy(["1", "2"]) == pytest.approx(0.5)
    assert chance_accuracy(["1", "1", "2", "3"]) == pytest.approx(0.25 + 1 / 16 + 1 / 16)


# ------------------------------------------------------------------ torchmetrics
def _random_success(seed: int, problems: int, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(problems, n, generator=generator) < torch.rand(problems, 1, generator=generator)


def _expected(success: torch.Tensor, ks) -> dict[str, float]:
    n = success.shape[1]
    counts = success.sum(dim=1).tolist()
    out = {
        "accuracy": sum(counts) / success.numel(),
        "frac_mixed": sum(0 < c < n for c in counts) / len(counts),
    }
    out.update({f"pass@{k}": sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks})
    return out


def test_pass_at_k_metric_equals_the_function():
    success = _random_success(0, problems=37, n=8)
    metric = PassAtK([1, 2, 4, 8])
    metric.update(success)
    computed = {name: float(value) for name, value in metric.compute().items()}
    assert computed == pytest.approx(_expected(success, [1, 2, 4, 8]), abs=1e-12)


def test_pass_at_k_metric_counts_form_and_variable_n():
    metric = PassAtK([1, 2])
    metric.update(torch.tensor([4, 2, 3]), torch.tensor([1, 2, 0]))
    values = metric.compute()
    assert float(values["accuracy"]) == pytest.approx(3 / 9)
    assert float(values["pass@1"]) == pytest.approx((1 / 4 + 1 + 0) / 3)
    assert float(values["pass@2"]) == pytest.approx((pass_at_k(4, 1, 2) + 1 + 0) / 3)
    assert float(values["frac_mixed"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="pass@4 needs >= 4 samples per problem, got 2"):
        PassAtK([1, 4]).update(torch.tensor([4, 2]), torch.tensor([1, 1]))


def test_two_ranks_merged_equal_one_metric_over_all_problems():
    success = _random_success(1, problems=20, n=4)
    whole, rank0, rank1 = PassAtK([1, 2, 4]), PassAtK([1, 2, 4]), PassAtK([1, 2, 4])
    whole.update(success)
    rank0.update(success[::2])
    rank1.update(success[1::2])
    rank0.merge_state(rank1)  # what dist_reduce_fx="sum" does across ranks
    for name, value in whole.compute().items():
        assert float(rank0.compute()[name]) == pytest.approx(float(value), abs=1e-12), name
    assert float(rank0.num_problems) == 20 and float(rank0.num_samples) == 80


def test_pass_at_k_metric_without_problems_is_zero_and_ks_are_checked():
    metric = PassAtK([1])
    metric.update(torch.zeros(0, 3, dtype=torch.bool))
    assert {k: float(v) for k, v in metric.compute().items()} == {"accuracy": 0.0, "frac_mixed": 0.0, "pass@1": 0.0}
    for bad in ([], [0], [1, 1], [1.5]):
        with pytest.raises(ValueError, match="ks must be distinct integers"):
            PassAtK(bad)


@pytest.mark.parametrize(
    "counts, expected",
    [
        # fixed, kept, broken, unfixed
        ((1, 2, 1, 3), dict(fix_rate=1 / 4, retention=2 / 3, break_rate=1 / 3, acc1=3 / 7, acc2=3 / 7, delta=0.0)),
        ((2, 0, 0, 0), dict(fix_rate=1.0, acc1=0.0, acc2=1.0, delta=1.0)),  # no right attempt: no retention
        ((0, 3, 1, 0), dict(retention=0.75, break_rate=0.25, acc1=1.0, acc2=0.75, delta=-0.25)),  # no fix rate
        ((0, 0, 0, 0), {}),
    ],
)
def test_correction_rates_hand_cases(counts, expected):
    rates = CorrectionCounts(**dict(zip(("fixed", "kept", "broken", "unfixed"), counts))).rates()
    assert rates == pytest.approx(expected)
    before = [False] * counts[0] + [True] * counts[1] + [True] * counts[2] + [False] * counts[3]
    after = [True] * counts[0] + [True] * counts[1] + [False] * counts[2] + [False] * counts[3]
    metric = CorrectionRates()
    metric.update(torch.tensor(before, dtype=torch.bool), torch.tensor(after, dtype=torch.bool))
    computed = {name: float(value) for name, value in metric.compute().items()}
    assert computed == pytest.approx({**dict(zip(("fixed", "kept", "broken", "unfixed"), counts)), **expected})


def test_correction_rates_merge_and_shape_check():
    a, b = CorrectionRates(), CorrectionRates()
    a.update(torch.tensor([0, 1]).bool(), torch.tensor([1, 1]).bool())
    b.update(torch.tensor([1, 0, 0]).bool(), torch.tensor([0, 0, 1]).bool())
    a.merge_state(b)
    values = a.compute()
    assert float(values["fix_rate"]) == pytest.approx(2 / 3) and float(values["retention"]) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="before and after"):
        CorrectionRates().update(torch.ones(2).bool(), torch.ones(3).bool())


def test_tally_sums_named_counts_and_rejects_unknown_names():
    a, b = Tally(["x", "y"]), Tally(["x", "y"])
    a.update({"x": 2})
    b.update({"x": 1, "y": 5})
    a.merge_state(b)
    assert {k: float(v) for k, v in a.compute().items()} == {"x": 3.0, "y": 5.0}
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['z'\]"):
        a.update({"z": 1})


def _ddp_worker(rank: int, world_size: int, port: int, success: torch.Tensor, queue) -> None:
    torch.distributed.init_process_group(
        "gloo", rank=rank, world_size=world_size, init_method=f"tcp://127.0.0.1:{port}"
    )
    try:
        metric, rates = PassAtK([1, 2, 4]), CorrectionRates()
        metric.update(success[rank::world_size])
        rates.update(success[rank::world_size, 0], success[rank::world_size, 1])
        result = {k: float(v) for k, v in {**metric.compute(), **rates.compute()}.items()}
        queue.put((rank, result))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~10 s: two spawned interpreters import torch
def test_states_reduce_across_two_real_processes():
    """Two gloo ranks, each updating with its shard: compute() on each gives the whole set's values."""
    import socket

    import torch.multiprocessing as mp

    success = _random_success(2, problems=11, n=4)
    whole, rates = PassAtK([1, 2, 4]), CorrectionRates()
    whole.update(success)
    rates.update(success[:, 0], success[:, 1])
    expected = {k: float(v) for k, v in {**whole.compute(), **rates.compute()}.items()}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, port, success, queue), nprocs=2, start_method="spawn")
    results = dict(queue.get() for _ in range(2))
    for rank in (0, 1):
        assert results[rank] == pytest.approx(expected, abs=1e-12), rank
