"""Policy weights out of a cipo-train Lightning checkpoint (``<run>/checkpoints/*.ckpt``).

``CIPOModule`` holds the policy as ``self.policy``, so its weights sit under the ``policy.``
prefix of the checkpoint's ``state_dict``; they are loaded into a model built from the run's
model config (same architecture), so any checkpoint of a run can be evaluated, not only the
exported final policy.
"""

from __future__ import annotations

from pathlib import Path

import torch

POLICY_PREFIX = "policy."


def load_policy_weights(model: torch.nn.Module, ckpt_path: str | Path, prefix: str = POLICY_PREFIX) -> int:
    """Copy the ``prefix`` weights of a Lightning checkpoint into ``model``; returns how many.

    Every parameter and buffer of ``model`` must be covered (a weight shared with a loaded one,
    as tied embeddings are, counts as covered) and every checkpoint weight must fit.
    """
    # Lightning checkpoints hold only tensors and plain containers (loop and callback state).
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{ckpt_path}: not a Lightning checkpoint (no 'state_dict')")
    weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        sample = sorted(state)[:3]
        raise ValueError(f"{ckpt_path}: no weights under the {prefix!r} prefix (keys look like {sample})")
    own = model.state_dict()
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"{ckpt_path} does not fit the model built from model.path: {err}. Evaluate it with the model "
            "config of the run that wrote it (run_dir=<that run>)"
        ) from err
    loaded = {own[key].data_ptr() for key in weights if key in own}
    missing = [key for key in missing if own[key].data_ptr() not in loaded]
    if missing or unexpected:
        raise ValueError(
            f"{ckpt_path} does not match the model built from model.path: missing {missing[:5]}, unexpected "
            f"{list(unexpected)[:5]}. Evaluate it with the model config of the run that wrote it (run_dir=<that run>)"
        )
    return len(weights)
