"""Rollout engine on a Hugging Face model: the fallback and the fast path for small models.

It samples from the trainer's own model object, so there is nothing to synchronise. Sampling
runs in ``decode.sample``, our own loop that draws what ``model.generate`` draws for the same seed
but runs each prompt once, writes its cache in place and drops finished rows (2x faster on the
built-in task); a model it cannot reproduce (``decode.unsupported_reason``, logged once) goes
through ``model.generate`` as before.

The sampling logprobs are the *processed* logprobs (after temperature / top-p: the distribution
actually sampled from), the same convention as vLLM's ``processed_logprobs``. On the ``generate``
path a logits processor placed after the warpers records them, keeping one ``(batch, vocab)``
slice at a time, never the ``(steps, batch, vocab)`` score tensor ``output_scores`` would store.
"""

from __future__ import annotations

import logging

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from cipo.rollout import decode
from cipo.rollout.engine import Prompt, SamplingSettings, prompt_token_ids
from cipo.types import Completion

log = logging.getLogger(__name__)


class _SampledLogprobRecorder(LogitsProcessor):
    """Keeps log-softmax of the processed scores; at the next step gathers the sampled token."""

    def __init__(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length
        self.previous: torch.Tensor | None = None
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.previous is not None:
            self.logprobs.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(rows, new_tokens) logprobs of the generated tokens."""
        if self.previous is not None and sequences.shape[1] > self.prompt_length + len(self.logprobs):
            self.logprobs.append(self.previous.gather(1, sequences[:, -1:]).squeeze(1))
        if not self.logprobs:
            return torch.zeros(sequences.shape[0], 0)
        return torch.stack(self.logprobs, dim=1)


class HFEngine:
    """Batched sampling with ``model.generate``; ``batch_size`` prompts x n rows per call."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64):
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (e.g. the EOS token)")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # Why decode.sample cannot run this model (None: it can).
        self.use_generate = decode.unsupported_reason(model)
        if tokenizer.eos_token_id is None:
            self.use_generate = "the tokenizer has no EOS token"
        if self.use_generate:
            log.info("HFEngine samples with model.generate(): %s", self.use_generate)

    def sync_weights(self) -> None:
        """Nothing to do or to check: ``generate`` runs on the trainer's own parameters."""

    @torch.no_grad()
    def generate(self, prompts: list[Prompt], n: int, settings: SamplingSettings, seed: int) -> list[list[Completion]]:
        results: list[list[Completion]] = []
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # generate samples from the global RNG; restore it afterwards
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), self.batch_size):
                results.extend(self._generate_chunk(prompts[start : start + self.batch_size], n, settings))
        finally:
            self.model.train(was_training)
            torch.random.set_rng_state(generator_state)
        return results

    def _generate_chunk(self, prompts: list[Prompt], n: int, settings: SamplingSettings) -> list[list[Completion]]:
        if self.use_generate is None:
            ids = [prompt_token_ids(self.tokenizer, prompt) for prompt in prompts]
            try:
                tokens, logprobs, lengths = decode.sample(
                    self.model,
                    ids,
                    n,
                    settings.max_new_tokens,
                    settings.temperature,
                    settings.top_p,
                    eos_id=self.tokenizer.eos_token_id,
                    pad_id=self.tokenizer.pad_token_id,
                )
            except decode.Unsupported as error:  # raised before any sampling: the RNG is untouched
                self.use_generate = str(error)
                log.info("HFEngine samples with model.generate(): %s", error)
            else:
                completions = [
                    self._to_completion(row[:length], row_logprobs[:length])
                    for row, row_logprobs, length in zip(tokens, logprobs, lengths.tolist())
                ]
                return [completions[index * n : (index + 1) * n] for index in range(len(prompts))]
        return self._generate_chunk_with_generate(prompts, n, settings)

    def _generate_chunk_with_generate(
        self, prompts: list[Prompt], n: int, settings: SamplingSettings
    ) -> list[list[Completion]]:
        self.tokenizer.padding_side = "left"
        ids = [prompt_token_ids(self.tokenizer, prompt) for prompt in prompts]
        encoded = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        input_ids = encoded["input_ids"].repeat_interleave(n, dim=0).to(device)
        attention_mask = encoded["attention_mask"].repeat_interleave(n, dim=0).to(device)
        recorder = _SampledLogprobRecorder(prompt_length=input_ids.shape[1])
        greedy = settings.temperature == 0
        # generate() puts user processors *before* its own warpers, so the warpers are passed
        # here explicitly (and disabled in generate's own config) to run before the recorder.
        processors = LogitsProcessorList()
        if not greedy and settings.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(settings.temperature))
        if not greedy and settings.top_p < 1.0:
            processors.append(TopPLogitsWarper(settings.top_p))
        processors.append(recorder)
        sequences = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **({"do_sample": False} if greedy else {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}),
            max_new_tokens=settings.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            logits_processor=processors,
        )
        new_tokens = sequences[:, input_ids.shape[1] :].cpu()
        logprobs = recorder.finish(sequences).cpu()
        completions = [self._to_completion(row, row_logprobs) for row, row_logprobs in zip(new_tokens, logprobs)]
        return [completions[index * n : (index + 1) * n] for index in range(len(prompts))]

    def _to_completion(self, token_row: torch.Tensor, logprob_row: torch.Tensor) -> Completion:
        eos = self.tokenizer.eos_token_id
        ids = token_row.tolist()
        finished = eos in ids
        length = ids.index(eos) + 1 if finished else len(ids)
        ids = ids[:length]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Completion(text=text, token_ids=ids, logprobs=logprob_row[:length].tolist(), finished=finished)
