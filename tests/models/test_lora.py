"""LoRA through PEFT: only adapters train, merged weights equal the adapted model, exports reload."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from cipo.models.lora import (
    LoraSettings,
    apply_lora,
    engine_weights,
    is_peft_model,
    merged_state_dict,
    save_lora_policy,
)

pytest.importorskip("peft")


def _adapted(tiny_policy, r=4):
    model, tokenizer = tiny_policy
    plain_keys = list(model.state_dict())
    wrapped = apply_lora(model, LoraSettings(r=r, alpha=8, dropout=0.1))
    torch.manual_seed(1)
    for name, parameter in wrapped.named_parameters():
        if "lora_B" in name:  # PEFT starts B at 0 (no change); make the adapters matter
            parameter.data.normal_(0, 0.05)
    return wrapped, tokenizer, plain_keys


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[5, 17, 30, 12, 9, 44]])


def test_r_zero_leaves_the_model_alone(tiny_policy):
    model, _ = tiny_policy
    assert apply_lora(model, LoraSettings(r=0)) is model


def test_only_adapters_require_grad(tiny_policy):
    wrapped, _, _ = _adapted(tiny_policy)
    trainable = [name for name, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert is_peft_model(wrapped) and wrapped.training


def test_merged_weights_reproduce_the_adapted_model(tiny_policy, tiny_policy_dir):
    wrapped, _, plain_keys = _adapted(tiny_policy)
    weights = dict(engine_weights(wrapped))
    assert sorted(weights) == sorted(plain_keys)  # the base model's names, no adapter keys
    plain = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    before = _logits(plain, IDS)
    plain.load_state_dict(weights)
    after = _logits(plain, IDS)
    torch.testing.assert_close(after, _logits(wrapped, IDS), atol=1e-5, rtol=1e-5)
    assert (after - before).abs().max() > 1e-3  # the adapters changed something


def test_merging_is_out_of_place(tiny_policy):
    wrapped, _, _ = _adapted(tiny_policy)
    reference = _logits(wrapped, IDS)
    merged_state_dict(wrapped)
    merged_state_dict(wrapped)
    torch.testing.assert_close(_logits(wrapped, IDS), reference)


def test_export_writes_a_plain_model_and_a_reloadable_adapter(tiny_policy, tiny_policy_dir, tmp_path):
    from peft import PeftModel

    wrapped, tokenizer, _ = _adapted(tiny_policy)
    save_lora_policy(wrapped, tokenizer, tmp_path / "policy", tmp_path / "adapter")
    expected = _logits(wrapped, IDS)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    assert not is_peft_model(merged)
    torch.testing.assert_close(_logits(merged, IDS), expected, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_policy_dir), tmp_path / "adapter")
    torch.testing.assert_close(_logits(reloaded, IDS), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(r=-1), "model.lora.r"),
        (dict(r=4, alpha=0), "model.lora.alpha"),
        (dict(r=4, dropout=1.0), "model.lora.dropout"),
        (dict(r=4, target_modules=[]), "model.lora.target_modules"),
    ],
)
def test_bad_settings_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraSettings(**kwargs)


def test_unknown_target_module_is_a_clear_error(tiny_policy):
    model, _ = tiny_policy
    with pytest.raises(ValueError, match="model.lora"):
        apply_lora(model, LoraSettings(r=4, target_modules=["no_such_proj"]))
