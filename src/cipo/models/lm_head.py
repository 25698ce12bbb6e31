"""``model.lm_head_fp32``: compute the output head in float32 when the policy runs in bf16/fp16.

The log-probabilities that the loss, the importance weights and the sync check compare come out
of the head's matmul over the whole vocabulary; in bf16 that matmul alone moves them by ~1e-2.
With this option the head multiplies float32 copies of its input and weight (the stored weight
keeps its dtype and gets its gradient in it), so the logits are float32. The ScaleRL recipe
(Khatri et al., 2025) recommends an fp32 head; TRL's ``cast_lm_head_to_fp32`` casts the head's
*weights* to float32, which it allows only for untied heads. Computing in float32 instead also
works for tied embeddings (SmolLM2 and small Qwen models tie theirs). It is the trainer's side
only: vLLM computes its logits in its own dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Float32Head(torch.nn.Linear):
    """An ``nn.Linear`` whose output is computed in float32, whatever its weight's dtype."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(hidden.float(), self.weight.float(), bias)


def compute_head_in_fp32(model: torch.nn.Module) -> None:
    """Make ``model``'s output head a ``Float32Head`` in place (names, tying and weights unchanged)."""
    head = model.get_output_embeddings()
    if type(head) is Float32Head:
        return
    if type(head) is not torch.nn.Linear:
        raise ValueError(
            f"model.lm_head_fp32: the output head is a {type(head).__name__}, not a plain torch.nn.Linear; "
            "set model.lm_head_fp32=false for this model"
        )
    head.__class__ = Float32Head  # same parameters and state-dict keys, another forward
