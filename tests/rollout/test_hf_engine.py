"""HFEngine: shapes and order, sampling logprobs vs teacher forcing, seeding, greedy, EOS."""

import pytest
import torch

from cipo.rollout.engine import SamplingSettings
from cipo.rollout.hf_engine import HFEngine
from cipo.types import Completion

# Different lengths, so left padding is exercised inside every generate() call.
PROMPTS = ["Q:4+3+4-6\nA:", "Q:1\nA:", "Q:9-2+5\nA:", "Q:3+3+3+3+3\nA:", "Q:7-7\nA:"]


@pytest.fixture
def model(tiny_policy):
    return tiny_policy[0]


@pytest.fixture
def engine(model, built_tokenizer):
    # The built tokenizer (not the one read back from disk, see tests/models/test_builtin.py)
    # so prompts keep their newlines; the engine itself is tokenizer-agnostic.
    return HFEngine(model, built_tokenizer, batch_size=2)


@pytest.fixture
def eos_bias(model):
    """Add a constant to the EOS logit (forward hook on the head) so EOS is often sampled."""

    def add(bias: float):
        def hook(module, inputs, output):
            output = output.clone()
            output[..., 1] += bias
            return output

        return model.lm_head.register_forward_hook(hook)

    handles = []
    yield lambda bias: handles.append(add(bias))
    for handle in handles:
        handle.remove()


def teacher_forced_logprobs(model, tokenizer, prompt: str, completion: Completion, temperature: float) -> torch.Tensor:
    """Loop reference: one unpadded row, log_softmax(logits / T) of each generated token."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + completion.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    out = []
    for j, token in enumerate(completion.token_ids):
        position = len(prompt_ids) + j - 1  # logits at t-1 predict token t
        out.append(torch.log_softmax(logits[position] / temperature, dim=-1)[token])
    return torch.stack(out)


def test_n_completions_per_prompt_in_order(engine):
    settings = SamplingSettings(max_new_tokens=6)
    out = engine.generate(PROMPTS, 3, settings, seed=0)
    assert len(out) == len(PROMPTS)
    assert all(len(group) == 3 for group in out)
    for group in out:
        for completion in group:
            assert 1 <= len(completion.token_ids) <= 6
            assert len(completion.logprobs) == len(completion.token_ids)
            assert all(lp <= 0.0 for lp in completion.logprobs)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_teacher_forcing(model, engine, built_tokenizer, temperature):
    out = engine.generate(PROMPTS, 2, SamplingSettings(max_new_tokens=8, temperature=temperature), seed=1)
    checked = 0
    for prompt, group in zip(PROMPTS, out):  # also proves the chunked order: wrong prompt, wrong logprobs
        for completion in group:
            reference = teacher_forced_logprobs(model, built_tokenizer, prompt, completion, temperature)
            torch.testing.assert_close(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
            checked += len(completion.token_ids)
    assert checked > 20


def test_logprobs_use_the_processed_distribution(model, engine, built_tokenizer):
    """At T=0.7 the recorded logprobs are not the raw (T=1) ones: the warper runs first."""
    completion = engine.generate(PROMPTS[:1], 1, SamplingSettings(max_new_tokens=8, temperature=0.7), seed=2)[0][0]
    raw = teacher_forced_logprobs(model, built_tokenizer, PROMPTS[0], completion, 1.0)
    assert (torch.tensor(completion.logprobs) - raw).abs().max() > 1e-3


def test_top_p_logprobs_are_renormalised(model, engine, built_tokenizer):
    """With top_p < 1 the sampled token's logprob is >= its full-distribution logprob."""
    completion = engine.generate(PROMPTS[:1], 1, SamplingSettings(max_new_tokens=8, top_p=0.5), seed=3)[0][0]
    full = teacher_forced_logprobs(model, built_tokenizer, PROMPTS[0], completion, 1.0)
    assert (torch.tensor(completion.logprobs) >= full - 1e-5).all()
    assert (torch.tensor(completion.logprobs) > full + 1e-4).any()


def test_same_seed_same_samples_and_rng_restored(engine):
    settings = SamplingSettings(max_new_tokens=8)
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    first = engine.generate(PROMPTS, 2, settings, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = engine.generate(PROMPTS, 2, settings, seed=7)
    other = engine.generate(PROMPTS, 2, settings, seed=8)
    ids = lambda out: [c.token_ids for g in out for c in g]  # noqa: E731
    assert ids(first) == ids(second)
    assert ids(first) != ids(other)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_engine_restores_train_mode(model, engine):
    model.train()
    engine.generate(PROMPTS[:1], 1, SamplingSettings(max_new_tokens=2), seed=0)
    assert model.training
    model.eval()
    engine.generate(PROMPTS[:1], 1, SamplingSettings(max_new_tokens=2), seed=0)
    assert not model.training
    model.train()


def test_greedy_is_deterministic_and_matches_unbatched(model, built_tokenizer, engine):
    settings = SamplingSettings(max_new_tokens=8, temperature=0.0)
    out = engine.generate(PROMPTS, 3, settings, seed=0)
    again = engine.generate(PROMPTS, 3, settings, seed=99)
    for group, group_again in zip(out, again):
        assert len({tuple(c.token_ids) for c in group}) == 1
        assert group[0].token_ids == group_again[0].token_ids
    single = HFEngine(model, built_tokenizer, batch_size=1)
    for prompt, group in zip(PROMPTS, out):  # chunked + padded == one prompt at a time
        alone = single.generate([prompt], 1, settings, seed=0)[0][0]
        assert alone.token_ids == group[0].token_ids
        reference = teacher_forced_logprobs(model, built_tokenizer, prompt, alone, 1.0)
        torch.testing.assert_close(torch.tensor(alone.logprobs), reference, atol=1e-4, rtol=0)


def test_eos_handling(eos_bias, model, engine, built_tokenizer):
    eos_bias(3.0)
    out = engine.generate(PROMPTS, 4, SamplingSettings(max_new_tokens=10), seed=0)
    completions = [c for g in out for c in g]
    finished = [c for c in completions if c.finished]
    unfinished = [c for c in completions if not c.finished]
    assert finished and unfinished  # the bias makes both kinds likely; seed fixed
    eos = built_tokenizer.eos_token_id
    for c in finished:
        assert c.token_ids[-1] == eos and c.token_ids.count(eos) == 1
        assert built_tokenizer.pad_token_id not in c.token_ids  # generate's post-EOS padding is cut
        assert len(c.logprobs) == len(c.token_ids)
        assert c.text == built_tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)
        assert "</s>" not in c.text
    for c in unfinished:
        assert len(c.token_ids) == 10 and eos not in c.token_ids
    # the EOS logprob itself is a sampling logprob too
    for prompt, group in zip(PROMPTS, out):
        for c in group:
            reference = teacher_forced_logprobs(model, built_tokenizer, prompt, c, 1.0)
            torch.testing.assert_close(torch.tensor(c.logprobs), reference, atol=1e-4, rtol=0)


def test_requires_pad_token(model, built_tokenizer):
    built_tokenizer.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        HFEngine(model, built_tokenizer)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=-0.1), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_sampling_settings_validation(kwargs, match):
    with pytest.raises(ValueError, match=rf"rollout\.{match}"):
        SamplingSettings(**kwargs)


def test_token_id_prompts_are_used_as_given(engine, built_tokenizer):
    """Token in: a prompt given as ids samples exactly what its text would, mixed with text prompts."""
    settings = SamplingSettings(max_new_tokens=6)
    as_ids = [built_tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    mixed = [ids if index % 2 else text for index, (text, ids) in enumerate(zip(PROMPTS, as_ids))]
    expected = engine.generate(PROMPTS, 2, settings, seed=3)
    assert engine.generate(mixed, 2, settings, seed=3) == expected
    assert engine.generate(as_ids, 2, settings, seed=3) == expected
