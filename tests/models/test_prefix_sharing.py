"""The prefix-shared training forward equals the plain one: logits, loss and every gradient.

Checked for the shipped built-in policy and for tiny random Llama / Qwen2 models (tied and untied
embeddings, grouped-query attention, qkv biases) under both attention kernels the module allows.
The batches have prompts of different lengths (so short prefixes are padded and masked), rows of
different completion lengths, a prompt with a single row, and one prompt that is a prefix of
another (distinct prefixes, never merged).
"""

from __future__ import annotations

import pytest
import torch

import hf_architectures
from cipo.algorithms.logprobs import token_logprobs
from cipo.models.load import load_policy
from cipo.models.prefix_sharing import (
    PrefixPlan,
    PrefixSharing,
    plan_prefix_sharing,
    prefix_shared_logits,
    self_check,
    unsupported_reason,
)


def make_batch(vocab: int, prompt_lengths=(5, 9, 2, 7), rows_per_prompt=(3, 4, 2, 1), seed=0, anchors=()):
    """Right-padded rows: prompt u repeated rows_per_prompt[u] times, each with its own completion.

    ``anchors``: (row, suffix length) pairs; each adds 2 rows whose prompt is that row minus its last
    token, then a suffix (a correction prompt: the anchor's prompt and attempt, then a check turn).
    """
    generator = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (length,), generator=generator) for length in prompt_lengths]
    prompts.append(prompts[1][:6])  # a prompt that is the start of another one
    rows, lengths = [], []
    for prompt, count in zip(prompts, (*rows_per_prompt, 2)):
        for _ in range(count):
            length = int(torch.randint(1, 8, (), generator=generator))
            completion = torch.randint(3, vocab, (length,), generator=generator)
            rows.append(torch.cat([prompt, completion]))
            lengths.append(len(prompt))
    for anchor, suffix_length in anchors:
        prompt = torch.cat([rows[anchor][:-1], torch.randint(3, vocab, (suffix_length,), generator=generator)])
        for _ in range(2):
            completion = torch.randint(
                3, vocab, (int(torch.randint(1, 8, (), generator=generator)),), generator=generator
            )
            rows.append(torch.cat([prompt, completion]))
            lengths.append(len(prompt))
    width = max(len(row) for row in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = row
        attention_mask[index, : len(row)] = 1
    prompt_lengths = torch.tensor(lengths)
    completion = attention_mask.bool() & (torch.arange(width)[None, :] >= prompt_lengths[:, None])
    return input_ids, attention_mask, prompt_lengths, completion.float()


def plain_and_shared(model, input_ids, attention_mask, prompt_lengths, loss_mask):
    """Per-token logprobs on the loss positions, the loss and every gradient, both ways."""
    weights = torch.randn(input_ids.shape, generator=torch.Generator().manual_seed(1))
    results = []
    for shared in (False, True):
        model.zero_grad(set_to_none=True)
        if shared:
            plan = plan_prefix_sharing(input_ids, attention_mask, prompt_lengths)
            assert plan is not None
            logprobs = token_logprobs(prefix_shared_logits(model, plan, input_ids), plan.take(input_ids))
            logprobs = plan.put(logprobs * plan.take(loss_mask), input_ids.shape[1])
        else:
            logprobs = token_logprobs(model(input_ids=input_ids).logits, input_ids) * loss_mask
        loss = (logprobs * weights).sum() / loss_mask.sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        results.append((logprobs.detach(), loss.detach(), grads))
    return results


def assert_same(plain, shared, atol=1e-5):
    (logprobs, loss, grads), (logprobs_s, loss_s, grads_s) = plain, shared
    torch.testing.assert_close(logprobs_s, logprobs, atol=atol, rtol=0)
    torch.testing.assert_close(loss_s, loss, atol=1e-6, rtol=1e-5)
    assert grads.keys() == grads_s.keys() and len(grads) > 5
    for name in grads:  # the prefix's gradient arrives only through the shared cache
        scale = grads[name].abs().max().clamp(min=1e-6)
        assert float((grads_s[name] - grads[name]).abs().max() / scale) < 1e-4, name


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("name", sorted(hf_architectures.CONFIGS))
def test_shared_forward_equals_plain_forward_on_hf_architectures(name, attention):
    model = hf_architectures.build(name, attention)
    assert unsupported_reason(model) is None
    batch = make_batch(hf_architectures.VOCAB)
    assert_same(*plain_and_shared(model, *batch))


def test_shared_forward_equals_plain_forward_on_the_builtin_policy():
    model, _ = load_policy("builtin")
    assert_same(*plain_and_shared(model, *make_batch(model.config.vocab_size, seed=3)))


ANCHORS = ((0, 3), (3, 1), (9, 2))  # suffix 1: the anchor reads its host prefix to the last token


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("name", sorted(hf_architectures.CONFIGS))
def test_resident_anchor_rows_equal_the_plain_forward(name, attention):
    """Anchors' logits from their revisions' prefix forward: logprobs, loss and gradients unchanged."""
    model = hf_architectures.build(name, attention)
    batch = make_batch(hf_architectures.VOCAB, anchors=ANCHORS)
    plan = plan_prefix_sharing(*batch[:3])
    # row 4 (prompt 1, like anchor 3) has a one-token completion: it reads only its prompt, which is
    # also the start of anchor 3's correction prefix, so it resides there too
    assert plan.resident.nonzero().flatten().tolist() == [0, 3, 4, 9]
    assert_same(*plain_and_shared(model, *batch))


def test_resident_anchor_rows_on_the_builtin_policy_and_with_lora():
    from cipo.models.lora import LoraSettings, apply_lora

    model, _ = load_policy("builtin")
    assert_same(*plain_and_shared(model, *make_batch(model.config.vocab_size, seed=3, anchors=ANCHORS)))
    torch.manual_seed(5)
    model = apply_lora(model, LoraSettings(r=4))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    assert_same(*plain_and_shared(model.train(), *make_batch(model.config.vocab_size, seed=4, anchors=ANCHORS)), 3e-5)


def test_plan_of_resident_rows():
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB, anchors=ANCHORS)
    plan = plan_prefix_sharing(input_ids, attention_mask, prompt_lengths)
    ends = attention_mask.sum(dim=1)
    prompts = plan.prefix_ids.shape[0]
    assert prompts == 7  # 5 prompts + 3 correction prompts, less prompt 3: its one row (9) resides elsewhere
    for row, (anchor, suffix) in zip((12, 14, 16), ANCHORS, strict=True):
        host = int(plan.row_prefix[row])
        assert int(plan.row_prefix[anchor]) == host and bool(plan.resident[anchor])
        assert int(plan.prefix_lengths[host]) == int(ends[anchor]) - 1 + suffix - 1
    # processed: every prefix once, then the continuations of the rows that are not resident
    expected = int(plan.prefix_lengths.sum()) + int((ends - prompt_lengths + 1)[~plan.resident].sum())
    assert plan.processed_tokens == expected
    # a row is never resident in its own prompt's prefix, and a row that only reads its prompt stays put
    assert not plan.resident[[1, 2, 5, 10, 11]].any()


def test_shared_forward_equals_plain_forward_with_lora_adapters():
    """model.lora: PEFT's wrapper passes the cache and logits_to_keep through to the base model; the
    adapters' gradients (the only ones that train) match too."""
    from cipo.models.lora import LoraSettings, apply_lora

    model, _ = load_policy("builtin")
    torch.manual_seed(5)  # PEFT draws A from the global generator
    model = apply_lora(model, LoraSettings(r=4))
    with torch.no_grad():  # PEFT starts B at zero: give the adapters a real effect and gradient path
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    assert unsupported_reason(model.train()) is None
    plain, shared = plain_and_shared(model, *make_batch(model.config.vocab_size, seed=4))
    assert all("lora_" in name for name in plain[2])
    assert_same(plain, shared, atol=3e-5)  # log-probs near -8: the adapters' extra matmuls add ~1 ulp


def test_plan_groups_identical_prompts_only():
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB)
    plan = plan_prefix_sharing(input_ids, attention_mask, prompt_lengths)
    assert plan.row_prefix.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 4]
    assert plan.prefix_lengths.tolist() == [4, 8, 1, 6, 5]  # each prompt minus its last token
    # every continuation opens at its row's last prompt token and covers the completion
    first = input_ids.gather(1, (prompt_lengths - 1)[:, None]).squeeze(1)
    assert torch.equal(plan.take(input_ids)[:, 0], first)
    assert torch.equal(plan.valid.sum(1), attention_mask.sum(1) - prompt_lengths + 1)
    values = torch.randn(input_ids.shape) * attention_mask
    kept = attention_mask.bool() & (torch.arange(input_ids.shape[1]) >= prompt_lengths[:, None] - 1)
    assert torch.equal(plan.put(plan.take(values), input_ids.shape[1]), values * kept)


def test_plan_refuses_what_it_cannot_share():
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB)
    distinct = torch.arange(len(input_ids))
    ids = input_ids.clone()
    ids[:, 0] = distinct + 3  # every prompt different
    assert plan_prefix_sharing(ids, attention_mask, prompt_lengths) is None
    one_token = prompt_lengths.clone()
    one_token[0] = 1
    assert plan_prefix_sharing(input_ids, attention_mask, one_token) is None
    left_padded = attention_mask.flip(1)
    assert plan_prefix_sharing(input_ids, left_padded, prompt_lengths) is None


def test_unsupported_models_are_named():
    model = hf_architectures.build("llama_mha_tied")
    model.gradient_checkpointing_enable()
    assert "checkpointing" in unsupported_reason(model)
    config = hf_architectures.CONFIGS["llama_mha_tied"]()
    config.attention_dropout = 0.1
    dropout = type(model)(config).train()
    assert "dropout" in unsupported_reason(dropout)
    assert unsupported_reason(dropout.eval()) is None  # no dropout in eval mode (the KL reference)
    assert "not a transformers causal LM" in unsupported_reason(torch.nn.Linear(2, 2))


def test_sliding_window_cache_falls_back_with_its_reason(caplog):
    model = hf_architectures.sliding_window_model()
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB)
    sharing = PrefixSharing()
    with caplog.at_level("WARNING"):
        assert sharing.plan(model, input_ids, attention_mask, prompt_lengths) is None
    assert "DynamicSlidingWindowLayer" in sharing.reasons[id(model)]
    assert "prefix-shared training forward off" in caplog.text


def test_self_check_catches_a_wrong_shared_forward():
    model = hf_architectures.build("llama_gqa_untied")
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB)
    plan = plan_prefix_sharing(input_ids, attention_mask, prompt_lengths)
    assert self_check(model, plan, input_ids) is None
    shifted = PrefixPlan(  # continuations placed one position too far: wrong rotary phases
        plan.prefix_ids, plan.prefix_lengths + 1, plan.row_prefix, plan.columns, plan.valid, plan.resident
    )
    assert "differ" in self_check(model, shifted, input_ids)


def test_sharing_can_be_switched_off():
    model = hf_architectures.build("llama_mha_tied")
    input_ids, attention_mask, prompt_lengths, _ = make_batch(hf_architectures.VOCAB)
    assert PrefixSharing().plan(model, input_ids, attention_mask, prompt_lengths) is not None
    assert PrefixSharing(enabled=False).plan(model, input_ids, attention_mask, prompt_lengths) is None
    assert PrefixSharing().plan(model, input_ids, attention_mask, None) is None
