"""algorithms/logprobs: token_logprobs and token_entropy against loop references.

(Lives at the top level because tests/algorithms/ is owned by another author.)
"""

import math

import pytest
import torch

from cipo.algorithms.logprobs import token_entropy, token_logprobs


def loop_logprobs(logits, input_ids, temperature):
    n, t, _ = logits.shape
    out = torch.zeros(n, t)
    for i in range(n):
        for j in range(1, t):
            out[i, j] = torch.log_softmax(logits[i, j - 1].double() / temperature, dim=-1)[input_ids[i, j]].float()
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_token_logprobs_matches_loop(temperature):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=generator) * 3
    input_ids = torch.randint(0, 11, (3, 7), generator=generator)
    out = token_logprobs(logits, input_ids, temperature)
    assert out.shape == (3, 7)
    assert (out[:, 0] == 0).all()
    torch.testing.assert_close(out, loop_logprobs(logits, input_ids, temperature), atol=1e-5, rtol=0)


def test_temperature_changes_the_result_and_is_differentiable():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 6, generator=generator, requires_grad=True)
    input_ids = torch.randint(0, 6, (2, 5), generator=generator)
    a, b = token_logprobs(logits, input_ids, 1.0), token_logprobs(logits, input_ids, 0.5)
    assert (a - b)[:, 1:].abs().max() > 1e-3
    a.sum().backward()
    assert logits.grad is not None and logits.grad[:, -1].abs().sum() == 0  # last logits predict nothing
    assert logits.grad[:, :-1].abs().sum() > 0


def test_bfloat16_logits_are_upcast():
    logits = torch.randn(1, 4, 5).bfloat16()
    out = token_logprobs(logits, torch.tensor([[0, 1, 2, 3]]))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), temperature)


def test_entropy_of_uniform_is_log_v():
    out = token_entropy(torch.zeros(2, 4, 13))
    assert out.shape == (2, 4)
    assert (out[:, 0] == 0).all()
    torch.testing.assert_close(out[:, 1:], torch.full((2, 3), math.log(13)))


def test_entropy_matches_loop_and_temperature():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 7, generator=generator) * 2
    for temperature in (1.0, 0.5):
        out = token_entropy(logits, temperature)
        for i in range(2):
            for j in range(1, 5):
                p = torch.softmax(logits[i, j - 1] / temperature, dim=-1)
                assert out[i, j].item() == pytest.approx(float(-(p * p.log()).sum()), abs=1e-5)
    # a peaked distribution has (near) zero entropy; cooling lowers entropy
    peaked = torch.zeros(1, 2, 5)
    peaked[0, 0, 3] = 100.0
    assert token_entropy(peaked)[0, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert (token_entropy(logits, 0.5)[:, 1:] < token_entropy(logits, 1.0)[:, 1:]).all()
