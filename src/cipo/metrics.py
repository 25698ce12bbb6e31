"""Evaluation metrics shared by in-training validation (``val/*``), ``cipo-eval`` and the build script.

Pure functions: ``pass_at_k`` (the unbiased estimator), ``default_ks``, ``chance_accuracy``.
torchmetrics: ``PassAtK``, ``CorrectionRates`` (the rates are ``algorithms.correction.CorrectionCounts``'s,
the one implementation shared with the training rollouts) and ``Tally``. Every metric
state is a *sum* with ``dist_reduce_fx="sum"``: ranks that each evaluate a shard of the problems
get, after ``compute()`` syncs them, exactly the metric of the union (pass@k is a mean over
problems, so the per-problem estimates are summed and divided by the summed problem count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from cipo.algorithms.correction import CorrectionCounts


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), as a stable product.

    C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i), which never forms a huge binomial.
    """
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"need 0 <= num_correct <= num_samples, got {num_correct} of {num_samples}")
    if not 1 <= k <= num_samples:
        raise ValueError(f"k must be in [1, num_samples={num_samples}], got {k}")
    if num_samples - num_correct < k:
        return 1.0
    miss = 1.0
    for i in range(num_samples - num_correct + 1, num_samples + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def default_ks(num_samples: int) -> list[int]:
    """1, 2, 4, ... up to and including ``num_samples``."""
    ks, k = [], 1
    while k < num_samples:
        ks.append(k)
        k *= 2
    return ks + [num_samples]


def chance_accuracy(references: list[str]) -> float:
    """Accuracy of guessing answers from the reference distribution itself: sum_a p(a)^2."""
    if not references:
        return 0.0
    counts = Counter(references)
    total = len(references)
    return sum((count / total) ** 2 for count in counts.values())


def _sum_state(metric: Metric, name: str, size: int | None = None) -> None:
    shape = () if size is None else (size,)
    metric.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")


class PassAtK(Metric):
    """Mean accuracy, share of mixed problems and unbiased pass@k for fixed ``ks``.

    ``update(success)`` with a (P, n) bool tensor (P problems, n samples each), or
    ``update(num_samples, num_correct)`` with two (P,) integer tensors (n may vary by problem;
    every k must be <= every problem's n). ``compute()`` returns ``accuracy`` (correct samples /
    samples), ``frac_mixed`` (problems with some but not all samples right / problems) and
    ``pass@k`` (mean over problems of ``pass_at_k``) for each k; all 0 when nothing was seen.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, ks: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        ks = list(ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks) or len(set(ks)) < len(ks):
            raise ValueError(f"ks must be distinct integers >= 1, got {ks!r}")
        self.ks = ks
        _sum_state(self, "pass_sum", len(ks))
        for name in ("num_correct", "num_samples", "num_problems", "num_mixed"):
            _sum_state(self, name)

    def update(self, success_or_num_samples: Tensor, num_correct: Tensor | None = None) -> None:
        if num_correct is None:
            success = success_or_num_samples
            if success.dim() != 2:
                raise ValueError(f"success must be (problems, samples), got shape {tuple(success.shape)}")
            n = torch.full((success.shape[0],), success.shape[1], dtype=torch.long)
            c = success.detach().long().sum(dim=1).cpu()
        else:
            n, c = success_or_num_samples.detach().long().cpu(), num_correct.detach().long().cpu()
            if n.dim() != 1 or n.shape != c.shape:
                raise ValueError(f"num_samples and num_correct must be (P,), got {tuple(n.shape)}, {tuple(c.shape)}")
        pairs = list(zip(n.tolist(), c.tolist()))
        too_few = [n_i for n_i, _ in pairs if n_i < max(self.ks)]
        if too_few:
            raise ValueError(f"pass@{max(self.ks)} needs >= {max(self.ks)} samples per problem, got {too_few[0]}")
        # Python sums in problem order: the same floats as a plain loop over problems.
        sums = [sum(pass_at_k(n_i, c_i, k) for n_i, c_i in pairs) for k in self.ks]
        self.pass_sum += torch.tensor(sums, dtype=torch.float64, device=self.device)
        self.num_correct += float(sum(c_i for _, c_i in pairs))
        self.num_samples += float(sum(n_i for n_i, _ in pairs))
        self.num_problems += float(len(pairs))
        self.num_mixed += float(sum(0 < c_i < n_i for n_i, c_i in pairs))

    def compute(self) -> dict[str, Tensor]:
        problems = self.num_problems.clamp(min=1)
        out = {"accuracy": self.num_correct / self.num_samples.clamp(min=1), "frac_mixed": self.num_mixed / problems}
        out.update({f"pass@{k}": self.pass_sum[i] / problems for i, k in enumerate(self.ks)})
        return out


class CorrectionRates(Metric):
    """Counts of (attempt, revision) outcomes; ``compute()`` gives ``CorrectionCounts.rates()`` of them.

    ``update(before, after)`` with two (N,) bool tensors: the attempts' and their revisions'
    success. ``compute()`` returns the counts (``fixed``, ``kept``, ``broken``, ``unfixed``) and
    the rates of ``CorrectionCounts.rates`` (a rate with an empty denominator is absent).
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("fixed", "kept", "broken", "unfixed"):
            _sum_state(self, name)

    def update(self, before: Tensor, after: Tensor) -> None:
        if before.dim() != 1 or before.shape != after.shape:
            raise ValueError(
                f"before and after must be (N,) of one shape, got {tuple(before.shape)}, {tuple(after.shape)}"
            )
        b, a = before.detach().bool(), after.detach().bool()
        self.fixed += (~b & a).sum().double().to(self.device)
        self.kept += (b & a).sum().double().to(self.device)
        self.broken += (b & ~a).sum().double().to(self.device)
        self.unfixed += (~b & ~a).sum().double().to(self.device)

    def compute(self) -> dict[str, Tensor]:
        counts = {name: getattr(self, name) for name in ("fixed", "kept", "broken", "unfixed")}
        rates = CorrectionCounts(**{name: float(value) for name, value in counts.items()}).rates()
        return {**counts, **{name: torch.tensor(value, dtype=torch.float64) for name, value in rates.items()}}


class Tally(Metric):
    """Named counts summed across updates and ranks; the names are fixed at construction so that
    every rank holds the same state even when its shard never sees some of them."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, names: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = list(dict.fromkeys(names))
        self.index = {name: i for i, name in enumerate(self.names)}
        _sum_state(self, "counts", len(self.names))

    def update(self, counts: Mapping[str, float]) -> None:
        unknown = sorted(set(counts) - set(self.index))
        if unknown:
            raise ValueError(f"Tally: unknown name(s) {unknown}; known: {self.names}")
        values = torch.zeros(len(self.names), dtype=torch.float64)
        for name, value in counts.items():
            values[self.index[name]] += float(value)
        self.counts += values.to(self.device)

    def compute(self) -> dict[str, Tensor]:
        return {name: self.counts[i] for i, name in enumerate(self.names)}
