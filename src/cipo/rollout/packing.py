"""Turn prompts and sampled completions into the padded tensors the trainer consumes."""

from __future__ import annotations

import torch

from cipo.types import Completion


def pack_sequences(prompt_ids: list[list[int]], completions: list[Completion], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion rows (N sequences, T = longest row).

    Returns ``input_ids`` (N, T), ``attention_mask`` (N, T), ``loss_mask`` (N, T) (1 on the
    completion's tokens), ``engine_logprobs`` (N, T) (the sampler's logprob of token t at
    position t, 0 elsewhere) and ``prompt_lengths`` (N,) (prompt tokens per row). Right padding
    keeps every prompt at position 0, so the default position ids match the ones the engine
    sampled with.
    """
    if len(prompt_ids) != len(completions):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completions)} completions")
    rows = [prompt + completion.token_ids for prompt, completion in zip(prompt_ids, completions)]
    width = max((len(row) for row in rows), default=1)
    count = len(rows)
    input_ids = torch.full((count, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((count, width), dtype=torch.long)
    loss_mask = torch.zeros((count, width), dtype=torch.float32)
    engine_logprobs = torch.zeros((count, width), dtype=torch.float32)
    for index, (prompt, completion) in enumerate(zip(prompt_ids, completions)):
        start, end = len(prompt), len(prompt) + len(completion.token_ids)
        input_ids[index, :end] = torch.tensor(rows[index], dtype=torch.long)
        attention_mask[index, :end] = 1
        loss_mask[index, start:end] = 1.0
        if completion.logprobs:
            engine_logprobs[index, start:end] = torch.tensor(completion.logprobs, dtype=torch.float32)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "loss_mask": loss_mask,
        "engine_logprobs": engine_logprobs,
        "prompt_lengths": torch.tensor([len(prompt) for prompt in prompt_ids], dtype=torch.long),
    }
