"""DecodeStep computes the logits ``model(...)`` computes for a decode step, bit for bit (so
``decode.sample`` draws the same tokens through either), for the built-in shape, Llama, Qwen2, Qwen3
and a LoRA-wrapped Llama, with rows compacted between steps; what it would skip sends the loop
back to the model's forward.
"""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache

import hf_architectures
from cipo.rollout import decode, decode_step
from cipo.rollout.prefix_cache import decoding

PROMPTS = [[5, 9, 12, 40, 7], [8, 3], [20, 21, 22, 23, 24, 25, 26, 27]]
N, STEPS = 3, 6


def lora_llama():
    from cipo.models.lora import LoraSettings, apply_lora

    torch.manual_seed(0)
    model = apply_lora(hf_architectures.build("llama_gqa_untied"), LoraSettings(r=4))
    with torch.no_grad():  # PEFT starts B at zero: make the adapters change the logits
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model


@pytest.fixture(params=["tiny_builtin", "llama_gqa_untied", "qwen2_gqa_tied", "qwen3_gqa_untied", "lora_llama"])
def model(request, tiny_policy):
    if request.param == "tiny_builtin":
        return tiny_policy[0].eval()
    if request.param == "lora_llama":
        return lora_llama().eval()
    return hf_architectures.build(request.param).eval()


def decode_logits(model, lean: bool) -> list[torch.Tensor]:
    """Logits of STEPS decode steps from the same prefill and tokens; one row dropped after step 2."""
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        _, layers, positions = decode._prefill(model, PROMPTS, N, 0, STEPS)
        cache = DynamicCache()
        cache.layers = layers
        step = decode_step.DecodeStep(model, layers, max(map(len, PROMPTS)) + STEPS) if lean else None
        logits = []
        with decoding(model):
            for index in range(STEPS):
                if index == 2:  # compaction: a finished row leaves the batch
                    keep = torch.tensor([row for row in range(len(positions)) if row != 4])
                    for layer in layers:
                        layer.keep_rows(keep)
                    positions = positions[keep]
                ids = torch.randint(3, 99, (len(positions),), generator=generator)
                if step is not None:
                    logits.append(step(ids, positions))
                else:
                    logits.append(decode.forward_step(model, ids, positions, cache))
                positions = positions + 1
    return logits


def test_the_step_equals_the_model_forward_bit_for_bit(model):
    assert decode_step.unsupported_reason(model) is None
    parts = decode_step.DecodeStep(model, [], 1).parts[0]
    lora = hasattr(model, "get_base_model")
    # the functional forms are what is compared below (LoRA's projections stay modules)
    assert not isinstance(parts.input_norm, torch.nn.Module) and not isinstance(parts.mlp, torch.nn.Module)
    assert isinstance(parts.q_proj, torch.nn.Module) == lora
    for ours, reference in zip(decode_logits(model, lean=True), decode_logits(model, lean=False), strict=True):
        assert torch.equal(ours, reference)


def test_hooks_on_replaced_modules_keep_the_model_forward(tiny_policy):
    model = tiny_policy[0].eval()
    handle = model.model.layers[1].register_forward_hook(lambda module, args, output: None)
    try:
        assert "LlamaDecoderLayer" in decode_step.unsupported_reason(model)
    finally:
        handle.remove()
    handle = model.get_output_embeddings().register_forward_hook(lambda module, args, output: None)
    try:  # lm_head is still called as a module: its hooks run either way
        assert decode_step.unsupported_reason(model) is None
    finally:
        handle.remove()


def test_sliding_window_attention_keeps_the_model_forward():
    model = hf_architectures.sliding_window_model().eval()
    assert decode_step.unsupported_reason(model) == "sliding-window attention"
