"""decode.sample draws what ``model.generate`` draws: the same tokens for the same seed, the same
processed logprobs, and the global RNG left where ``generate`` leaves it; with finished rows
compacted away or not, prompts of different lengths, n > 1, greedy, top-p and min_new_tokens.
Models: the tiny built-in shape, random Llama (GQA, untied), Qwen2 (GQA, qkv bias) and Qwen3 models, and
a Llama wrapped with LoRA adapters (PEFT).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, MistralConfig

import hf_architectures
from cipo.rollout import decode
from cipo.rollout.engine import SamplingSettings
from cipo.rollout.hf_engine import HFEngine

PROMPTS = ["Q:4+3+4-6\nA:", "Q:1\nA:", "Q:9-2+5\nA:", "Q:3+3+3+3+3\nA:", "Q:7-7\nA:"]
SETTINGS = {
    "T=1": SamplingSettings(max_new_tokens=20),
    "T=0.7 top_p=0.9": SamplingSettings(max_new_tokens=20, temperature=0.7, top_p=0.9),
    "greedy": SamplingSettings(max_new_tokens=20, temperature=0.0),
}


@pytest.fixture(params=["tiny_builtin", "llama_gqa_untied", "qwen2_gqa_tied", "qwen3_gqa_untied"])
def model(request, tiny_policy):
    if request.param == "tiny_builtin":
        return tiny_policy[0]
    return hf_architectures.build(request.param)


def with_eos_bias(model, bias: float):
    """EOS (id 1) made likely, so rows end at different steps and the batch gets compacted."""

    def hook(module, inputs, output):
        output = output.clone()
        output[..., 1] += bias
        return output

    return model.get_output_embeddings().register_forward_hook(hook)


def run(engine: HFEngine, settings: SamplingSettings, seed: int, n: int = 3):
    """One chunk, RNG seeded here and not restored: (token ids, logprobs, RNG state after)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        out = engine._generate_chunk(PROMPTS, n, settings)
    completions = [c for group in out for c in group]
    return [c.token_ids for c in completions], [c.logprobs for c in completions], torch.random.get_rng_state()


def generate_engine(model, tokenizer) -> HFEngine:
    engine = HFEngine(model, tokenizer)
    engine.use_generate = "the reference: model.generate()"
    return engine


def assert_same_draws(ours, reference):
    (ids, logprobs, state), (ids_ref, logprobs_ref, state_ref) = ours, reference
    assert ids == ids_ref
    for row, row_ref in zip(logprobs, logprobs_ref):
        torch.testing.assert_close(torch.tensor(row), torch.tensor(row_ref), atol=1e-5, rtol=0)
    assert torch.equal(state, state_ref)  # the next round's draws continue from the same place


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_sample_draws_what_generate_draws(model, built_tokenizer, setting):
    model.eval()
    handle = with_eos_bias(model, 2.5)
    try:
        engine = HFEngine(model, built_tokenizer)
        assert engine.use_generate is None
        ours = run(engine, SETTINGS[setting], seed=11)
        reference = run(generate_engine(model, built_tokenizer), SETTINGS[setting], seed=11)
    finally:
        handle.remove()
    assert_same_draws(ours, reference)
    lengths = {len(ids) for ids in ours[0]}
    if setting != "greedy":
        assert len(lengths) > 3  # rows ended at many different steps: compaction ran


@pytest.mark.parametrize("share", [0.0, 2.0])
def test_compacting_every_step_or_never_changes_nothing(tiny_policy, built_tokenizer, monkeypatch, share):
    model = tiny_policy[0].eval()
    handle = with_eos_bias(model, 2.5)
    try:
        reference = run(generate_engine(model, built_tokenizer), SETTINGS["T=1"], seed=5)
        monkeypatch.setattr(decode, "COMPACT_SHARE", share)
        assert_same_draws(run(HFEngine(model, built_tokenizer), SETTINGS["T=1"], seed=5), reference)
    finally:
        handle.remove()


def test_each_prompt_is_prefilled_once(tiny_policy, built_tokenizer):
    model = tiny_policy[0].eval()
    batch_sizes = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kwargs: batch_sizes.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    try:
        HFEngine(model, built_tokenizer).generate(PROMPTS, 4, SamplingSettings(max_new_tokens=3), seed=0)
    finally:
        handle.remove()
    assert batch_sizes[0] == len(PROMPTS)  # the prefill: one row per prompt, not per sample
    assert batch_sizes[1] <= len(PROMPTS) * 4


def test_min_new_tokens_from_the_generation_config(tiny_policy, built_tokenizer):
    model = tiny_policy[0].eval()
    model.generation_config.min_new_tokens = 6
    handle = with_eos_bias(model, 4.0)
    try:
        ours = run(HFEngine(model, built_tokenizer), SETTINGS["T=1"], seed=2)
        reference = run(generate_engine(model, built_tokenizer), SETTINGS["T=1"], seed=2)
    finally:
        handle.remove()
        model.generation_config.min_new_tokens = None
    assert_same_draws(ours, reference)
    assert min(len(ids) for ids in ours[0]) >= 6 and any(ids[-1] == 1 for ids in ours[0])


def test_generation_config_processors_it_lacks_go_through_generate(tiny_policy, built_tokenizer):
    model = tiny_policy[0].eval()
    model.generation_config.repetition_penalty = 1.3
    try:
        engine = HFEngine(model, built_tokenizer)
        assert "repetition_penalty" in engine.use_generate
        assert decode.unsupported_reason(model) == engine.use_generate
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert decode.unsupported_reason(model) is None


def test_untested_model_families_go_through_generate(built_tokenizer):
    config = MistralConfig(**hf_architectures._COMMON, num_attention_heads=4, num_key_value_heads=2, eos_token_id=1)
    model = AutoModelForCausalLM.from_config(config).eval()
    assert "model type 'mistral'" in HFEngine(model, built_tokenizer).use_generate


def test_rope_types_that_rewrite_buffers_go_through_generate(built_tokenizer):
    config = hf_architectures.CONFIGS["llama_mha_tied"]()
    config.rope_parameters = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    model = AutoModelForCausalLM.from_config(config).eval()
    assert "rope_type 'dynamic'" in HFEngine(model, built_tokenizer).use_generate


def test_training_runs_after_sampling(tiny_policy, built_tokenizer):
    """Nothing sample() leaves behind breaks the next training step: it runs in inference mode, and
    it routes attention through its own function only while it decodes (the config is restored)."""
    model = tiny_policy[0]
    HFEngine(model, built_tokenizer).generate(PROMPTS, 2, SETTINGS["T=1"], seed=0)
    ids = built_tokenizer(PROMPTS[:1], return_tensors="pt")["input_ids"]
    model(input_ids=ids).logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_sliding_window_cache_goes_through_generate(built_tokenizer):
    model = hf_architectures.sliding_window_model().eval()
    engine = HFEngine(model, built_tokenizer)
    ours = run(engine, SETTINGS["T=1"], seed=3)
    assert "DynamicSlidingWindowLayer" in engine.use_generate  # found at the prefill, before any draw
    assert_same_draws(ours, run(generate_engine(model, built_tokenizer), SETTINGS["T=1"], seed=3))


def test_sample_draws_what_generate_draws_with_lora_adapters(built_tokenizer):
    """model.lora: the engine samples from the PEFT-wrapped policy (adapters active) through sample()."""
    from cipo.models.lora import LoraSettings, apply_lora

    torch.manual_seed(0)  # PEFT draws A from the global generator
    model = apply_lora(hf_architectures.build("llama_gqa_untied"), LoraSettings(r=4)).eval()
    with torch.no_grad():  # PEFT starts B at zero: make the adapters change the draws
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    engine = HFEngine(model, built_tokenizer)
    assert engine.use_generate is None
    ours = run(engine, SETTINGS["T=0.7 top_p=0.9"], seed=4)
    assert_same_draws(ours, run(generate_engine(model, built_tokenizer), SETTINGS["T=0.7 top_p=0.9"], seed=4))
    with model.disable_adapter():
        assert run(engine, SETTINGS["T=0.7 top_p=0.9"], seed=4)[0] != ours[0]  # the adapters were in the draws
