"""engine_is_weights: TRL's four vllm_importance_sampling_mode values, by hand-computed examples."""

import math

import pytest
import torch

from cipo.algorithms.importance import IS_MODES, engine_is_weights

# Two sequences of three positions; the last position of row 1 is padding (mask 0).
ENGINE = torch.zeros(2, 3)
TRAINER = torch.tensor([[math.log(0.5), math.log(4.0), 0.0], [math.log(1.5), math.log(1.5), 50.0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_token_truncate_caps_each_token():
    weights, capped = engine_is_weights(TRAINER, ENGINE, MASK, "token_truncate", cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 2.0, 1.0], [1.5, 1.5, 0.0]]))
    assert capped.tolist() == [[False, True, False], [False, False, False]]


def test_token_mask_zeroes_tokens_over_the_cap():
    weights, _ = engine_is_weights(TRAINER, ENGINE, MASK, "token_mask", cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 0.0, 1.0], [1.5, 1.5, 0.0]]))


def test_sequence_modes_use_the_product_over_the_masked_tokens_only():
    # row 0: 0.5 * 4 * 1 = 2.0; row 1: 1.5 * 1.5 = 2.25 (the padded 50.0 is ignored)
    weights, capped = engine_is_weights(TRAINER, ENGINE, MASK, "sequence_truncate", cap=2.1)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 2.0, 2.0], [2.1, 2.1, 0.0]]))
    assert capped.tolist() == [[False, False, False], [True, True, False]]
    weights, _ = engine_is_weights(TRAINER, ENGINE, MASK, "sequence_mask", cap=2.1)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("mode", IS_MODES)
def test_huge_log_ratios_never_overflow(mode):
    trainer = torch.full((1, 400), 5.0)  # a sequence ratio of exp(2000)
    weights, _ = engine_is_weights(trainer, torch.zeros(1, 400), torch.ones(1, 400), mode, cap=3.0)
    assert torch.isfinite(weights).all()
    assert float(weights.max()) <= 3.0 + 1e-6


def test_weights_are_detached():
    trainer = TRAINER.clone().requires_grad_(True)
    weights, _ = engine_is_weights(trainer, ENGINE, MASK, "token_truncate", cap=2.0)
    assert not weights.requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="token", cap=2.0), "mode must be one of"),
        (dict(mode="token_mask", cap=0.0), "cap must be > 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        engine_is_weights(TRAINER, ENGINE, MASK, **kwargs)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one \\(N, T\\) shape"):
        engine_is_weights(TRAINER, ENGINE[:, :2], MASK, "token_truncate", 2.0)
