"""model.lm_head_fp32: float32 logits from a bf16 policy, same weights, same tying, same gradient path."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from cipo.models.lm_head import Float32Head, compute_head_in_fp32

IDS = torch.tensor([[5, 17, 30, 12, 9, 44, 3, 60]])


def test_bf16_policy_gets_float32_logits_closer_to_the_fp32_model(tiny_policy_dir):
    reference = AutoModelForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.float32).eval()
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        expected = torch.log_softmax(reference(input_ids=IDS).logits, -1)
        plain = policy(input_ids=IDS).logits
        compute_head_in_fp32(policy)
        fp32_head = policy(input_ids=IDS).logits
    assert plain.dtype == torch.bfloat16 and fp32_head.dtype == torch.float32
    error_plain = (torch.log_softmax(plain.float(), -1) - expected).abs().max()
    error_fp32 = (torch.log_softmax(fp32_head, -1) - expected).abs().max()
    assert error_fp32 < error_plain


def test_weights_tying_and_keys_are_unchanged(tiny_policy_dir):
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.bfloat16)
    keys = list(policy.state_dict())
    compute_head_in_fp32(policy)
    compute_head_in_fp32(policy)  # idempotent
    head = policy.get_output_embeddings()
    assert isinstance(head, Float32Head) and head.weight.dtype == torch.bfloat16
    assert head.weight is policy.get_input_embeddings().weight
    assert list(policy.state_dict()) == keys


def test_gradient_reaches_the_bf16_weight(tiny_policy_dir):
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.bfloat16)
    compute_head_in_fp32(policy)
    policy(input_ids=IDS).logits.logsumexp(-1).sum().backward()
    grad = policy.get_output_embeddings().weight.grad
    assert grad is not None and grad.dtype == torch.bfloat16 and grad.abs().sum() > 0


def test_a_head_that_is_not_a_plain_linear_is_refused():
    model = torch.nn.Module()
    model.get_output_embeddings = lambda: torch.nn.Embedding(3, 2)
    with pytest.raises(ValueError, match="model.lm_head_fp32"):
        compute_head_in_fp32(model)
