"""Policy weights out of a Lightning checkpoint: loaded exactly, mismatches named."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from cipo.models.builtin import build_config
from cipo.models.checkpoint import load_policy_weights


def _save_checkpoint(path, state, prefix="policy."):
    torch.save(
        {"epoch": 3, "state_dict": {prefix + k: v for k, v in state.items()}, "callbacks": {"x": {"a": 1.0}}}, path
    )


@pytest.fixture
def shifted_state(tiny_policy):
    model, _ = tiny_policy
    return {name: tensor + 0.5 for name, tensor in model.state_dict().items()}


def test_weights_are_loaded_exactly(tiny_policy, shifted_state, tmp_path):
    model, _ = tiny_policy
    _save_checkpoint(tmp_path / "a.ckpt", shifted_state)
    count = load_policy_weights(model, tmp_path / "a.ckpt")
    assert count == len(shifted_state)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, shifted_state[name], msg=name)


def test_tied_head_missing_from_the_checkpoint_is_covered(tiny_policy, shifted_state, tmp_path):
    model, _ = tiny_policy
    assert model.config.tie_word_embeddings
    state = {k: v for k, v in shifted_state.items() if k != "lm_head.weight"}
    _save_checkpoint(tmp_path / "a.ckpt", state)
    load_policy_weights(model, tmp_path / "a.ckpt")
    torch.testing.assert_close(model.lm_head.weight, shifted_state["model.embed_tokens.weight"])


def test_missing_weight_is_named(tiny_policy, shifted_state, tmp_path):
    model, _ = tiny_policy
    name = next(k for k in shifted_state if "layers.0" in k)
    _save_checkpoint(tmp_path / "a.ckpt", {k: v for k, v in shifted_state.items() if k != name})
    with pytest.raises(ValueError, match=rf"missing \['{name}'\].*run_dir"):
        load_policy_weights(model, tmp_path / "a.ckpt")


def test_other_architecture_or_prefix_or_file_is_rejected(tiny_policy, shifted_state, tmp_path):
    model, tokenizer = tiny_policy
    other = AutoModelForCausalLM.from_config(build_config("small", len(tokenizer)))
    _save_checkpoint(tmp_path / "small.ckpt", other.state_dict())
    with pytest.raises(ValueError, match="does not (fit|match) the model built from model.path"):
        load_policy_weights(model, tmp_path / "small.ckpt")
    _save_checkpoint(tmp_path / "prefix.ckpt", shifted_state, prefix="model.")
    with pytest.raises(ValueError, match=r"no weights under the 'policy\.' prefix"):
        load_policy_weights(model, tmp_path / "prefix.ckpt")
    torch.save({"weights": 1}, tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        load_policy_weights(model, tmp_path / "plain.ckpt")
