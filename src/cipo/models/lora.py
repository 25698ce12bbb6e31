"""LoRA adapters through PEFT (``model.lora``): train low-rank adapters, serve merged weights.

``model.lora.r: 0`` (the default) trains every weight; ``r > 0`` wraps the policy with PEFT's
``get_peft_model`` so that only the adapters train (``alpha``, ``dropout``, ``target_modules`` as in
``peft.LoraConfig``; ``all-linear`` is every linear layer but the output head). verl spells it
``actor_rollout_ref.model.lora_rank`` (0 = off) and ``lora_alpha``; TRL passes a ``peft_config``.

The rollout engine never sees adapters: ``engine_weights`` hands it the *merged* weights under the
base model's names (``W + B A * alpha / r`` per adapted layer), computed out of place, so the
trained model is never merged and unmerged (which would add rounding drift every step). The same
merged weights are what ``save_lora_policy`` exports next to the adapter itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

ADAPTER_KEY_PARTS = (".lora_", ".lora_magnitude_vector")


@dataclass(frozen=True)
class LoraSettings:
    """``model.lora`` in config."""

    r: int = 0  # 0: full fine-tuning
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: Sequence[str] | str = "all-linear"
    extra: dict = field(default_factory=dict)  # any other peft.LoraConfig argument

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 0:
            raise ValueError(f"model.lora.r must be an integer >= 0 (0: no LoRA), got {self.r!r}")
        if self.alpha <= 0:
            raise ValueError(f"model.lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("model.lora.target_modules is empty: name the layers to adapt, or use all-linear")

    @property
    def enabled(self) -> bool:
        return self.r > 0


def is_peft_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """``model`` wrapped with fresh LoRA adapters (only they require grad); unchanged when ``r == 0``."""
    if not settings.enabled:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError(
            f"model.lora.r={settings.r} needs PEFT: pip install 'cipo[lora]' (bash scripts/setup.sh installs it)"
        ) from error
    targets = settings.target_modules
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
        **settings.extra,
    )
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as error:  # e.g. a target module name the model does not have
        raise ValueError(f"model.lora: PEFT could not wrap the policy: {error}") from error
    wrapped.train()
    return wrapped


def engine_weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of the weights to push into an inference engine: the live ``state_dict``
    of a plain model; for a PEFT model, the merged weights under the base model's names."""
    if not is_peft_model(model):
        return [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
    return list(merged_state_dict(model).items())


@torch.no_grad()
def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The base model's ``state_dict`` with every active adapter folded in (out of place)."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        if module.merged:
            raise RuntimeError(f"{name}: adapter already merged into the base weight; unmerge it first")
        active = [adapter for adapter in module.active_adapters if adapter in module.lora_A]
        if active:
            deltas[f"{name}.base_layer.weight"] = sum(module.get_delta_weight(adapter) for adapter in active)
    merged = {}
    for key, tensor in base.state_dict().items():
        if any(part in key for part in ADAPTER_KEY_PARTS):
            continue
        if key in deltas:
            tensor = tensor + deltas[key].to(tensor.dtype)
        merged[key.replace(".base_layer.", ".")] = tensor.detach()
    return merged


def save_lora_policy(model: torch.nn.Module, tokenizer, policy_dir: Path, adapter_dir: Path) -> None:
    """The merged model (an ordinary HF folder) to ``policy_dir``, the adapter alone to ``adapter_dir``."""
    model.save_pretrained(adapter_dir)
    base = model.get_base_model()
    with torch.device("meta"):  # an adapter-free model of the same class, no memory until the weights land
        plain = type(base)(base.config)
    missing, unexpected = plain.load_state_dict(merged_state_dict(model), strict=False, assign=True)
    plain.tie_weights()
    if unexpected or [key for key in missing if key not in _tied_keys(plain)]:
        raise RuntimeError(f"merged LoRA weights do not fit {type(base).__name__}: {missing[:3]} {unexpected[:3]}")
    plain.generation_config = base.generation_config
    plain.save_pretrained(policy_dir)
    tokenizer.save_pretrained(policy_dir)


def _tied_keys(model: torch.nn.Module) -> set[str]:
    """Keys that share storage with another key (a tied head): they need not be in a state dict."""
    seen: dict[int, str] = {}
    tied = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        pointer = tensor.data_ptr()
        if pointer in seen:
            tied.add(key)
        seen[pointer] = key
    return tied


def lora_settings(config: dict | None) -> LoraSettings:
    """``model.lora`` (a plain dict; None or absent: no LoRA), with unknown keys named."""
    config = dict(config or {})
    known = {"r", "alpha", "dropout", "target_modules", "extra"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"model.lora: unknown key(s) {unknown}; known keys: {sorted(known)}")
    if isinstance(config.get("target_modules"), (list, tuple)):
        config["target_modules"] = tuple(config["target_modules"])
    return LoraSettings(**config)
