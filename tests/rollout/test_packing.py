"""pack_sequences: right padding, masks and logprob alignment on hand-checked rows."""

import pytest
import torch

from cipo.rollout.packing import pack_sequences
from cipo.types import Completion


def _c(ids, logprobs=None, finished=True):
    return Completion(text="", token_ids=ids, logprobs=logprobs if logprobs is not None else [], finished=finished)


def test_hand_checked_rows():
    prompts = [[10, 11, 12], [20]]
    completions = [_c([13, 1], [-0.5, -0.25]), _c([21, 22, 23], [-1.0, -2.0, -3.0], finished=False)]
    out = pack_sequences(prompts, completions, pad_id=0)
    assert out["input_ids"].tolist() == [[10, 11, 12, 13, 1], [20, 21, 22, 23, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert out["loss_mask"].tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 0]]
    assert out["engine_logprobs"].tolist() == [[0, 0, 0, -0.5, -0.25], [0, -1.0, -2.0, -3.0, 0]]
    assert out["input_ids"].dtype == torch.long and out["attention_mask"].dtype == torch.long
    assert out["loss_mask"].dtype == torch.float32 and out["engine_logprobs"].dtype == torch.float32


def test_engine_logprob_sits_on_the_token_it_scores():
    """Position t holds log p(token t | < t): the convention of algorithms.logprobs."""
    out = pack_sequences([[5, 6]], [_c([7, 8, 9], [-0.7, -0.8, -0.9])], pad_id=0)
    ids, lp = out["input_ids"][0], out["engine_logprobs"][0]
    assert {int(ids[t]): float(lp[t]) for t in range(2, 5)} == pytest.approx({7: -0.7, 8: -0.8, 9: -0.9})


def test_custom_pad_and_empty_completion():
    out = pack_sequences([[4, 4], [4]], [_c([]), _c([5])], pad_id=9)
    assert out["input_ids"].tolist() == [[4, 4], [4, 5]]
    assert out["loss_mask"].tolist() == [[0, 0], [0, 1]]
    out = pack_sequences([[4], [4, 4, 4]], [_c([5]), _c([])], pad_id=9)
    assert out["input_ids"].tolist() == [[4, 5, 9], [4, 4, 4]]
    assert out["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert out["loss_mask"].sum().item() == 1


def test_missing_logprobs_give_zeros():
    out = pack_sequences([[1]], [_c([2, 3], [])], pad_id=0)
    assert out["engine_logprobs"].abs().sum().item() == 0
    assert out["loss_mask"].tolist() == [[0, 1, 1]]


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        pack_sequences([[1], [2]], [_c([3])], pad_id=0)


def test_masks_consistent_on_random_rows():
    generator = torch.Generator().manual_seed(0)
    prompts, completions = [], []
    for _ in range(20):
        p = torch.randint(3, 50, (int(torch.randint(1, 6, (1,), generator=generator)),), generator=generator)
        c = torch.randint(3, 50, (int(torch.randint(0, 6, (1,), generator=generator)),), generator=generator)
        prompts.append(p.tolist())
        completions.append(_c(c.tolist(), [-1.0] * len(c)))
    out = pack_sequences(prompts, completions, pad_id=0)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        assert out["attention_mask"][i].sum() == len(p) + len(c.token_ids)
        assert out["loss_mask"][i].sum() == len(c.token_ids)
        assert (out["loss_mask"][i] <= out["attention_mask"][i]).all()
        assert (out["engine_logprobs"][i] != 0).eq(out["loss_mask"][i].bool()).all()
        assert out["input_ids"][i, : len(p)].tolist() == p
