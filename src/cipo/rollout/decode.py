"""HFEngine's sampling loop: what ``model.generate`` samples, without its per-step waste.

Same samples: every step draws the exponential noise of ``torch.multinomial`` for all rows of the
call (``multinomial(p, 1)`` is ``argmax(p / q)`` with ``q ~ Exp(1)`` drawn for every row), in the
order ``generate`` draws it, so a seed gives the tokens ``generate`` gives (up to float ties; tested
against it in tests/rollout/test_decode.py) and the global RNG ends where ``generate`` leaves it.
The recorded logprobs are the processed ones (after temperature and top-p), as before.

What it does not spend:
  * one prefill per distinct prompt, not per sample, and the prompt's keys/values are kept and
    read once for its n samples (``prefix_cache.py``: the correction stream's prompts hold a whole
    attempt, and reading n copies of them was most of a decode step);
  * the generated tokens' keys/values live in buffers with room for the whole generation, written
    in place (transformers' ``DynamicLayer`` concatenates, copying the whole cache at every step);
  * finished rows leave the batch (``generate`` decodes them until the longest row ends): when a
    quarter of the batch has finished, the rows still running are compacted.

``unsupported_reason`` names what it does not reproduce (generation-config processors beyond
``min_new_tokens``, model families whose attention it was not tested with, caches other than
plain dynamic layers); ``HFEngine`` then calls ``generate``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import TopPLogitsWarper
from transformers.cache_utils import DynamicCache, DynamicLayer

from cipo.rollout import decode_step
from cipo.rollout.prefix_cache import MODEL_TYPES, PromptSharedLayer, decoding

# generation_config fields that make ``generate`` add a logits processor this loop does not have,
# with the value (besides None) at which it adds none. min_new_tokens is handled; the sampling
# keys are passed explicitly by HFEngine.
_NEUTRAL = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "min_length": 0,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "remove_invalid_values": False,
    "exponential_decay_length_penalty": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "guidance_scale": 1.0,
    "renormalize_logits": False,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "typical_p": 1.0,
    "min_p": None,
    "watermarking_config": None,
    "num_beams": 1,
    "stop_strings": None,
}
# Compact the batch once this share of its rows has finished.
COMPACT_SHARE = 0.25


class Unsupported(RuntimeError):
    """``sample`` cannot reproduce ``generate`` for this model (raised before any random draw)."""


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why ``sample`` would not reproduce ``model.generate``, or None."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return f"{type(model).__name__} has no generation_config"
    changed = [name for name, neutral in _NEUTRAL.items() if getattr(config, name, None) not in (None, neutral)]
    if changed:
        return f"its generation_config sets {', '.join(changed)}, which only generate() applies"
    model_type = getattr(model.config, "model_type", None)
    if model_type not in MODEL_TYPES:
        return f"model type {model_type!r} (its decode attention is tested for {', '.join(MODEL_TYPES)})"
    rope = getattr(model.config, "rope_parameters", None) or {}
    if rope.get("rope_type") in ("dynamic", "longrope"):  # they rewrite a buffer in forward (see sample)
        return f"rope_type {rope['rope_type']!r}"
    return None


def _prefill(model, prompt_ids: list[list[int]], n: int, pad_id: int, max_new_tokens: int):
    """Run each prompt once (left-padded); its n rows' first-step logits (R, V), the decode cache
    layers and the rows' next positions (R,)."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, prompt in enumerate(prompt_ids):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = mask.cumsum(-1) - 1  # as generate() computes them for a left-padded batch
    positions.masked_fill_(mask == 0, 1)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=DynamicCache(config=model.config),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = out.past_key_values
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        kinds = sorted({type(layer).__name__ for layer in cache.layers})
        raise Unsupported(f"the model's cache has {kinds} layers (decode.sample handles plain dynamic layers)")
    bias = torch.zeros(mask.shape, device=device).masked_fill_(mask == 0, -float("inf"))
    layers = [PromptSharedLayer(layer.keys, layer.values, bias, n, max_new_tokens) for layer in cache.layers]
    rows = torch.arange(len(prompt_ids), device=device).repeat_interleave(n)
    return out.logits[rows, -1].float(), layers, positions[rows, -1] + 1


# Inference mode, not just no_grad: ~6% less per-op overhead. A forward that stored a tensor in a
# module (dynamic rope types rewrite inv_freq) would leave an inference tensor that training cannot
# use, so unsupported_reason keeps those models on generate().
@torch.inference_mode()
def sample(
    model,
    prompt_ids: list[list[int]],
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_id: int,
    pad_id: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """n samples per prompt (rows prompt-major, as ``generate`` with repeated inputs).

    Returns ``tokens`` (R, S) long (pad after a row's end), ``logprobs`` (R, S) float (processed
    logprobs of the sampled tokens) and ``lengths`` (R,) long (tokens per row, EOS included),
    R = len(prompt_ids) * n, S <= max_new_tokens. Temperature 0 is greedy.
    """
    min_new = int(getattr(model.generation_config, "min_new_tokens", None) or 0)
    logits, layers, positions = _prefill(model, prompt_ids, n, pad_id, max_new_tokens)
    total, device = logits.shape[0], logits.device
    top_p_warper = TopPLogitsWarper(top_p) if 0 < temperature and top_p < 1.0 else None
    rows = torch.arange(total, device=device)  # the output row of each batch row
    alive = torch.ones(total, dtype=torch.bool, device=device)
    history = []  # (rows, sampled, logprob) of every step; a finished row's entries past its EOS are cut below
    cache = DynamicCache()
    cache.layers = layers
    # the step without the model forward's own overhead (decode_step.py), where it computes the same
    lean_step = None
    if decode_step.unsupported_reason(model) is None:
        lean_step = decode_step.DecodeStep(model, layers, max(map(len, prompt_ids)) + max_new_tokens)
    # the attention switch stays on for the whole loop (switching it costs two config writes per step)
    with decoding(model):
        for step in range(max_new_tokens):
            scores = logits
            if step < min_new:
                scores[:, eos_id] = -float("inf")
            if temperature > 0:
                if temperature != 1.0:
                    scores = scores / temperature
                if top_p_warper is not None:
                    scores = top_p_warper(None, scores)
                noise = torch.empty((total, scores.shape[1]), device=device).exponential_(1)
                if len(rows) < total:  # compacted: the noise of the rows still running
                    noise = noise[rows]
                chosen = (torch.softmax(scores, dim=-1) / noise).argmax(dim=-1)
            else:
                chosen = scores.argmax(dim=-1)
            history.append((rows, chosen, torch.log_softmax(scores, dim=-1).gather(1, chosen[:, None]).squeeze(1)))
            alive &= chosen != eos_id
            finished = len(alive) - int(alive.sum())
            if finished == len(alive) or step == max_new_tokens - 1:
                break
            if finished >= COMPACT_SHARE * len(alive):
                keep = alive.nonzero().flatten()
                for layer in layers:
                    layer.keep_rows(keep)
                positions, chosen, rows, alive = positions[keep], chosen[keep], rows[keep], alive[keep]
            else:
                chosen = torch.where(alive, chosen, pad_id)
            if lean_step is not None:
                logits = lean_step(chosen, positions)
            else:
                logits = forward_step(model, chosen, positions, cache)
            positions = positions + 1
    return _assemble(history, total, eos_id, pad_id)


def forward_step(model, token_ids: Tensor, positions: Tensor, cache: DynamicCache) -> Tensor:
    """One decode step through the model's own forward: ``token_ids (R,), positions (R,) -> logits (R, V)``
    float; ``cache.layers`` are the prompt-shared layers (the loop's fallback, and DecodeStep's reference)."""
    output = model(
        input_ids=token_ids[:, None],
        position_ids=positions[:, None],
        past_key_values=cache,
        use_cache=True,
        prompt_cache=cache.layers,
    )
    return output.logits[:, -1].float()


def _assemble(history: list[tuple[Tensor, Tensor, Tensor]], total: int, eos_id: int, pad_id: int):
    """(tokens, logprobs, lengths) from the per-step history, everything after a row's EOS cut."""
    steps = len(history)
    tokens = torch.full((total, steps), pad_id, dtype=torch.long)
    logprobs = torch.zeros((total, steps))
    for step, (rows, sampled, logprob) in enumerate(history):
        rows = rows.cpu()
        tokens[rows, step], logprobs[rows, step] = sampled.cpu(), logprob.cpu()
    is_eos = tokens == eos_id
    lengths = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, steps)
    after = torch.arange(steps)[None, :] >= lengths[:, None]
    return tokens.masked_fill(after, pad_id), logprobs.masked_fill(after, 0.0), lengths
