"""The decode attention's two kernels: the fused CPU one and the unfused one other devices run."""

import pytest
import torch

from cipo.rollout.prefix_cache import _attention_with_lse, _attention_with_lse_unfused


@pytest.mark.parametrize("masked", [False, True])
def test_the_fused_cpu_kernel_equals_the_unfused_attention(masked):
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(3, 2, size, 8, generator=generator) for size in (4, 7, 7))
    mask = None
    if masked:  # left padding of different lengths, as the prompt part has
        mask = torch.zeros(3, 1, 1, 7)
        mask[0, ..., :3], mask[1, ..., :1] = -float("inf"), -float("inf")
    out, lse = _attention_with_lse(query, key, value, mask, 0.3)
    expected_out, expected_lse = _attention_with_lse_unfused(query, key, value, mask, 0.3)
    assert out.shape == (3, 2, 4, 8) and lse.shape == (3, 2, 4)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(lse, expected_lse)
    scores = query @ key.transpose(-1, -2) * 0.3 + (0 if mask is None else mask)
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1))  # the lse the merge needs, not a scaled one
