"""Entry points. ``train(cfg)`` is a plain function (tests call it); ``train_main`` is the
``cipo-train`` console script (Hydra CLI: overrides, ``-m`` multiruns, launchers)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cipo.algorithms.config import AlgorithmConfig, build_dataclass
from cipo.callbacks.rollout import RolloutCallback
from cipo.models.load import load_policy
from cipo.module import CIPOModule
from cipo.rollout.engine import SamplingSettings

log = logging.getLogger(__name__)
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p")


def sampling_settings(rollout: DictConfig) -> SamplingSettings:
    values = {key: rollout[key] for key in SAMPLING_KEYS if key in rollout}
    return build_dataclass(SamplingSettings, values, "rollout")


def check_task_fits_model(tokenizer, model, datamodule, max_new_tokens: int) -> None:
    """Fail before any work when the model cannot even read the task's prompts."""
    records = datamodule.train_records[:64] + datamodule.heldout_records[:16]
    unk = tokenizer.unk_token_id
    for record in records:
        ids = tokenizer(record.prompt, add_special_tokens=False)["input_ids"]
        lost = (unk is not None and unk in ids) or tokenizer.decode(ids) != record.prompt
        if lost:
            raise ValueError(
                f"model.path's tokenizer does not round-trip data prompt {record.id!r} "
                f"({record.prompt[:40]!r} -> {tokenizer.decode(ids)[:40]!r}): this model cannot read "
                "this task (data / model mismatch)"
            )
    longest = max((len(tokenizer(r.prompt)["input_ids"]) for r in records), default=0)
    limit = getattr(model.config, "max_position_embeddings", None)
    # A correction prompt holds the problem plus a whole attempt, hence 2x the completion.
    if limit is not None and 2 * (longest + max_new_tokens) > limit:
        raise ValueError(
            f"rollout.max_new_tokens={max_new_tokens}: correction prompts need about "
            f"{2 * (longest + max_new_tokens)} positions but the model has {limit}; lower it"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from ``cfg``, run ``trainer.fit`` and export the policy."""
    algorithm = AlgorithmConfig.from_dict(OmegaConf.to_container(cfg.algorithm, resolve=True))
    sampling = sampling_settings(cfg.rollout)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    output_dir = Path(cfg.paths.output_dir)

    datamodule = instantiate(cfg.data, updates_per_step=algorithm.updates_per_step, _convert_="all")
    datamodule.setup("fit")
    policy, tokenizer = load_policy(cfg.model.path, cfg.model.dtype, cfg.model.trust_remote_code)
    check_task_fits_model(tokenizer, policy, datamodule, sampling.max_new_tokens)

    module = CIPOModule(
        policy,
        tokenizer,
        algorithm,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        micro_batch_size=cfg.module.micro_batch_size,
        max_grad_norm=cfg.module.max_grad_norm,
        temperature=sampling.temperature,
        max_new_tokens=sampling.max_new_tokens,
        max_consecutive_skips=cfg.module.max_consecutive_skips,
    )
    rollout = RolloutCallback(
        engine=instantiate(cfg.rollout.engine),
        verifier=instantiate(cfg.verifier),
        algorithm=algorithm,
        sampling=sampling,
        seed=cfg.seed,
        val_every=cfg.validation.every,
        val_samples=cfg.validation.samples,
        val_max_problems=cfg.validation.max_problems,
        val_correction=cfg.validation.correction,
        val_ks=list(cfg.validation.ks) if cfg.validation.get("ks") else None,
    )
    callbacks = [rollout] + [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(_flatten(OmegaConf.to_container(cfg, resolve=True)))

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(output_dir / "checkpoints" / "last.ckpt")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    if cfg.get("export_policy", True) and trainer.is_global_zero:
        policy.save_pretrained(output_dir / "policy")
        tokenizer.save_pretrained(output_dir / "policy")
        log.info("exported the trained policy to %s", output_dir / "policy")
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if torch.is_tensor(value)}
    return {**metrics, **rollout.last_validation}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a/b": scalar} for logger hyper-parameter tables."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}/"))
        return flat
    if isinstance(tree, list):
        return {prefix.rstrip("/"): str(tree)}
    return {prefix.rstrip("/"): tree if isinstance(tree, (int, float, str, bool)) else str(tree)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_train(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("val/accuracy")


def train_main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _hydra_train()


if __name__ == "__main__":
    train_main()
