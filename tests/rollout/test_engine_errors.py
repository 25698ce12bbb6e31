"""vLLM's start-up memory errors become messages that name the cipo setting to change
(checked with vLLM's own message texts and a stand-in ``vllm`` module: no vLLM needed)."""

from __future__ import annotations

import re
import types

import pytest

import cipo.rollout.vllm_engine as vllm_engine
from cipo.rollout.engine_errors import engine_start_hint

KV_CACHE = (
    "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine."
)
TOO_LONG = (
    "To serve at least one request with the models's max seq len (32768), (4.0 GiB KV cache is needed, which is "
    "larger than the available KV cache memory (1.2 GiB). Based on the available memory, the estimated maximum "
    "model length is 9000. Try increasing `gpu_memory_utilization` or decreasing `max_model_len`"
)
FREE = "Free memory on device (6.92/79.1 GiB) on startup is less than desired GPU memory utilization (0.9, 71.2 GiB)."
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


@pytest.mark.parametrize(
    "message, on_cpu, expected",
    [
        (KV_CACHE, False, r"raise rollout\.gpu_memory_utilization \(now 0\.3\), set rollout\.engine\.max_model_len"),
        (TOO_LONG, False, r"rollout\.engine\.max_model_len"),
        (KV_CACHE, True, r"raise VLLM_CPU_KVCACHE_SPACE \(GiB\)"),
        (FREE, False, r"Lower rollout\.gpu_memory_utilization .*rollout\.enable_sleep_mode=true"),
        (OOM, False, r"lower rollout\.gpu_memory_utilization \(now 0\.3\)"),
    ],
)
def test_memory_errors_name_the_setting(message, on_cpu, expected):
    hint = engine_start_hint(message, 0.3, on_cpu)
    assert hint is not None and re.search(expected, hint), hint


def test_other_errors_are_not_rewritten():
    assert engine_start_hint("Model architectures ['Foo'] are not supported", 0.3, False) is None


def _fake_vllm(error: Exception):
    def llm(**kwargs):
        raise error

    return types.SimpleNamespace(LLM=llm, SamplingParams=dict)


def test_engine_start_failure_is_rewritten_and_chained(tiny_policy, monkeypatch):
    model, tokenizer = tiny_policy
    monkeypatch.setattr(vllm_engine, "import_vllm", lambda: _fake_vllm(ValueError(KV_CACHE)))
    with pytest.raises(RuntimeError, match=r"VLLM_CPU_KVCACHE_SPACE.*vLLM said: No available memory") as info:
        vllm_engine.VLLMEngine(model, tokenizer)
    assert isinstance(info.value.__cause__, ValueError)


def test_engine_start_failure_of_another_kind_passes_through(tiny_policy, monkeypatch):
    model, tokenizer = tiny_policy
    monkeypatch.setattr(vllm_engine, "import_vllm", lambda: _fake_vllm(ValueError("unsupported architecture")))
    with pytest.raises(ValueError, match="unsupported architecture"):
        vllm_engine.VLLMEngine(model, tokenizer)
