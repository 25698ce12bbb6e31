"""The trainable policy from ``model.*``: loaded, then the fp32 head and LoRA adapters if asked."""

from __future__ import annotations

from pathlib import Path

import torch

from cipo.models.lm_head import compute_head_in_fp32
from cipo.models.load import load_policy
from cipo.models.lora import apply_lora, is_peft_model, lora_settings, save_lora_policy


def build_policy(model_config: dict) -> tuple[torch.nn.Module, object]:
    """``(policy, tokenizer)`` for ``model`` (path, dtype, trust_remote_code, lm_head_fp32, lora)."""
    policy, tokenizer = load_policy(
        model_config["path"], model_config.get("dtype", "float32"), model_config.get("trust_remote_code", False)
    )
    if model_config.get("lm_head_fp32"):
        compute_head_in_fp32(policy)  # before LoRA: PEFT wraps the modules as they are then
    return apply_lora(policy, lora_settings(model_config.get("lora"))), tokenizer


def export_policy(policy: torch.nn.Module, tokenizer, output_dir: Path) -> list[Path]:
    """``<output_dir>/policy``: an ordinary HF folder (LoRA: the merged weights), and for LoRA the
    adapter alone in ``<output_dir>/adapter``. Returns the folders written."""
    if is_peft_model(policy):
        save_lora_policy(policy, tokenizer, output_dir / "policy", output_dir / "adapter")
        return [output_dir / "policy", output_dir / "adapter"]
    policy.save_pretrained(output_dir / "policy")
    tokenizer.save_pretrained(output_dir / "policy")
    return [output_dir / "policy"]
