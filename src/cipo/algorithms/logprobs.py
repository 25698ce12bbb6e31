"""Per-token log-probabilities and entropies from a causal LM's logits.

Convention: position t of the output scores token t given tokens < t, so outputs line up with
``input_ids`` and the masks in ``RolloutBatch``; position 0 (no context) is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def token_logprobs(logits: Tensor, input_ids: Tensor, temperature: float = 1.0) -> Tensor:
    """log p(x_t | x_<t) for every position: logits (N, T, V), input_ids (N, T) -> (N, T).

    Logits are divided by the sampling temperature, as the sampler did, so ratios compare
    like with like. gather - logsumexp avoids a second (N, T, V) tensor for log_softmax.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probabilities, got {temperature}")
    scaled = logits[:, :-1].float() / temperature
    targets = input_ids[:, 1:].unsqueeze(-1)
    picked = scaled.gather(-1, targets).squeeze(-1) - torch.logsumexp(scaled, dim=-1)
    return torch.cat([torch.zeros_like(picked[:, :1]), picked], dim=1)


@torch.no_grad()
def token_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of the next-token distribution that produced token t: (N, T, V) -> (N, T)."""
    scaled = logits[:, :-1].float() / temperature
    logp = torch.log_softmax(scaled, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.cat([torch.zeros_like(entropy[:, :1]), entropy], dim=1)
