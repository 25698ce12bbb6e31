"""Entry points. ``train(cfg)`` is a plain function (tests call it); ``train_main`` is the
``cipo-train`` console script (Hydra CLI: overrides, ``-m`` multiruns, launchers)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cipo.algorithms.config import AlgorithmConfig, build_dataclass
from cipo.callbacks.graceful_stop import GracefulStop
from cipo.callbacks.rollout import RolloutCallback
from cipo.checkpointing.event_files import cut_event_files, wait_until_after_newest
from cipo.checkpointing.resume import resolve_ckpt_path, resume_arguments
from cipo.checkpointing.run_state import RunState, read_logged_until
from cipo.cli import CONFIG_DIR
from cipo.data.context_fit import drop_overlong_prompts
from cipo.models.load import load_policy
from cipo.module import CIPOModule
from cipo.parallel import full_weights
from cipo.rollout.engine import SamplingSettings
from cipo.settings import check_run_config

log = logging.getLogger(__name__)
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p")


def sampling_settings(rollout: DictConfig) -> SamplingSettings:
    values = {key: rollout[key] for key in SAMPLING_KEYS if key in rollout}
    return build_dataclass(SamplingSettings, values, "rollout")


def check_task_fits_model(tokenizer, model, datamodule, max_new_tokens: int, corrections: bool = True) -> None:
    """Fail before any work when the model cannot read the task's prompts; drop (and report)
    the prompts too long for its context (all of them: an error naming rollout.max_new_tokens)."""
    records = datamodule.train_records[:64] + datamodule.heldout_records[:16]
    unk = tokenizer.unk_token_id
    for record in records:
        ids = tokenizer(record.prompt, add_special_tokens=False)["input_ids"]
        decoded = tokenizer.decode(ids)
        lost = (unk is not None and unk in ids) or decoded != record.prompt
        if lost:
            # show where the text is lost (a long chat prompt can differ only deep inside)
            at = next((i for i, (a, b) in enumerate(zip(record.prompt, decoded)) if a != b), 0)
            window = slice(max(0, at - 20), at + 20)
            raise ValueError(
                f"model.path's tokenizer does not round-trip data prompt {record.id!r} at character {at} "
                f"({record.prompt[window]!r} -> {decoded[window]!r}): this model cannot read "
                "this task (data / model mismatch)"
            )
    templates = [datamodule.correction_template, datamodule.verdict_template] if corrections else []
    limit = getattr(model.config, "max_position_embeddings", None)
    drop_overlong_prompts(tokenizer, limit, datamodule, max_new_tokens, templates)


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from ``cfg``, run ``trainer.fit`` and export the policy."""
    check_run_config(OmegaConf.to_container(cfg, resolve=True))
    algorithm = AlgorithmConfig.from_dict(OmegaConf.to_container(cfg.algorithm, resolve=True))
    sampling = sampling_settings(cfg.rollout)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    output_dir = Path(cfg.paths.output_dir)

    datamodule = instantiate(cfg.data, updates_per_step=algorithm.updates_per_step, _convert_="all")
    datamodule.read_sources()  # a bad data file fails here, before the (slow) policy load
    policy, tokenizer = load_policy(cfg.model.path, cfg.model.dtype, cfg.model.trust_remote_code)
    datamodule.attach_tokenizer(tokenizer)  # prompts are rendered with the policy's chat template
    datamodule.setup("fit")
    check_task_fits_model(tokenizer, policy, datamodule, sampling.max_new_tokens, algorithm.correction.enabled)

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
    resume_hint = f"Resume with: cipo-train resume={output_dir}"
    callbacks = [RunState(), GracefulStop(resume_hint), rollout]
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    if trainer.is_global_zero:
        continue_logs(loggers, ckpt_path, fresh_start=cfg.get("ckpt_path") == "auto" and ckpt_path is None)
    if ckpt_path is None:  # a resumed run's hyper-parameters are already in its logs
        for logger in loggers:
            logger.log_hyperparams(_flatten(OmegaConf.to_container(cfg, resolve=True)))
    else:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    if cfg.get("export_policy", True):
        with full_weights(trainer.strategy.model):  # every rank gathers (FSDP), rank 0 writes
            if trainer.is_global_zero:
                policy.save_pretrained(output_dir / "policy")
                tokenizer.save_pretrained(output_dir / "policy")
                log.info("exported the trained policy to %s", output_dir / "policy")
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if torch.is_tensor(value)}
    return {**metrics, **rollout.last_validation}


def continue_logs(loggers, ckpt_path: str | None, fresh_start: bool) -> None:
    """Remove points a resumed run will log again (those after its checkpoint was written)."""
    until = read_logged_until(ckpt_path) if ckpt_path else (float("-inf") if fresh_start else None)
    if until is None:
        return
    for logger in loggers:
        folder = getattr(logger, "log_dir", None)
        if folder and Path(folder).is_dir():
            removed = cut_event_files(folder, until)["dropped"]
            if removed:
                log.info("removed %d logged points from after the checkpoint in %s", removed, folder)
            wait_until_after_newest(folder)  # the new event file must sort after the ones it continues


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
    sys.argv[1:] = resume_arguments(sys.argv[1:])  # resume=<run folder>: that run's config and folder
    _hydra_train()


if __name__ == "__main__":
    train_main()
