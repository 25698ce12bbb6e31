"""Turn prompts and sampled completions into the padded tensors the trainer consumes."""

from __future__ import annotations

import torch

from cipo.rollout.streams import Stream
from cipo.types import Completion, RolloutBatch


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


def pack_round(
    tokenizer,
    main: Stream,
    correction: Stream,
    step: int,
    mask_truncated: bool = False,
    transplanted: Stream | None = None,
) -> RolloutBatch:
    """Main rows, transplanted rows, then kept correction rows, as one padded RolloutBatch of the
    ids the engine saw and sampled. ``mask_truncated``: completions that hit max_new_tokens get no
    loss tokens."""
    moved = transplanted if transplanted is not None else Stream()
    first = main.concat(moved) if moved.completions else main
    kept = correction.keep.nonzero().flatten().tolist() if correction.keep.numel() else []
    completions = first.completions + [correction.completions[i] for i in kept]
    prompt_ids = first.prompt_ids + [correction.prompt_ids[i] for i in kept]
    tensors = pack_sequences(prompt_ids, completions, tokenizer.pad_token_id)
    trained = torch.cat([first.keep, torch.ones(len(kept), dtype=torch.bool)])
    if mask_truncated:
        trained = trained & torch.tensor([c.finished for c in completions], dtype=torch.bool)
    n_main, n_moved, no = len(main.completions), len(moved.completions), torch.zeros(len(kept), dtype=torch.bool)
    return RolloutBatch(
        input_ids=tensors["input_ids"],
        attention_mask=tensors["attention_mask"],
        loss_mask=tensors["loss_mask"] * trained[:, None],
        advantages=torch.cat([first.advantages, correction.advantages[kept] if kept else torch.zeros(0)]).float(),
        is_correction=torch.cat([torch.zeros(n_main + n_moved, dtype=torch.bool), ~no]),
        sft_mask=torch.cat([first.sft, correction.sft[kept] if kept else no]),
        is_transplant=torch.cat([torch.zeros(n_main, dtype=torch.bool), torch.ones(n_moved, dtype=torch.bool), no]),
        engine_logprobs=tensors["engine_logprobs"],
        prompt_lengths=tensors["prompt_lengths"],
        step=step,
    )
