"""Turn an inference engine's start-up failure into the cipo setting that fixes it.

vLLM stops at start when the memory it was given cannot hold the weights plus a KV cache large
enough for one sequence of the model's length; its messages name vLLM's own arguments. The
colocated engine shares the accelerator with the trainer, so the fix is one of our keys:
``rollout.gpu_memory_utilization`` (its share), ``rollout.engine.max_model_len`` (the KV cache a
sequence needs), ``rollout.enable_sleep_mode`` / ``rollout.tensor_parallel_size``, or on CPU the
``VLLM_CPU_KVCACHE_SPACE`` environment variable (GiB). Messages matched (vLLM 0.8 - 0.33):
"No available memory for the cache blocks", "... KV cache is needed, which is larger than the
available KV cache memory ...", "Free memory on device ... is less than desired GPU memory
utilization", and CUDA / CPU out-of-memory errors.
"""

from __future__ import annotations

import os


def engine_start_hint(message: str, gpu_memory_utilization: float, on_cpu: bool) -> str | None:
    """What to change for a vLLM start-up error ``message`` (None: not a memory problem)."""
    text = message.lower()
    if "less than desired gpu memory utilization" in text:
        return (
            f"vLLM could not reserve rollout.gpu_memory_utilization={gpu_memory_utilization} of the GPU: the "
            "trainer's weights and optimizer (or another process) already use that memory. Lower "
            "rollout.gpu_memory_utilization (e.g. 0.3), or set rollout.enable_sleep_mode=true"
        )
    if "cache blocks" in text or ("kv cache" in text and ("memory" in text or "larger than" in text)):
        if on_cpu:
            space = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")
            return (
                f"vLLM's KV cache does not fit in VLLM_CPU_KVCACHE_SPACE={space} GiB for one sequence of the "
                "model's length: raise VLLM_CPU_KVCACHE_SPACE (GiB) or set rollout.engine.max_model_len "
                "(prompt + rollout.max_new_tokens is enough)"
            )
        return (
            "vLLM's KV cache does not fit in the memory left for it: raise rollout.gpu_memory_utilization "
            f"(now {gpu_memory_utilization}), set rollout.engine.max_model_len (prompt + rollout.max_new_tokens "
            "is enough, the model's full context is the default), or split the model over GPUs with "
            "rollout.tensor_parallel_size"
        )
    if "out of memory" in text:
        return (
            "out of memory while vLLM started: lower rollout.gpu_memory_utilization (now "
            f"{gpu_memory_utilization}) or rollout.engine.max_model_len, set rollout.enable_sleep_mode=true, "
            "or use a smaller model / rollout.tensor_parallel_size"
        )
    return None
