"""Evaluation metrics shared by in-training validation, the build script and evaluation."""

from __future__ import annotations

from collections import Counter


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
