"""``cipo-train``. ``train(cfg)`` is a plain function (tests call it); ``train_main`` is the console
script (Hydra CLI: overrides, ``-m`` multiruns, launchers, ``resume=<run folder>``).

``train`` validates the config once (``cipo.settings.read_train_settings``), builds the data, the
policy, ``CIPOModule`` and ``RolloutCallback`` from the typed settings, and runs ``trainer.fit``.
What one RL step does inside the fit: docs/method.md, "One RL step in the code".
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cipo.callbacks.graceful_stop import GracefulStop
from cipo.callbacks.rollout import RolloutCallback
from cipo.checkpointing.resume import continue_logs, resolve_ckpt_path, resume_arguments
from cipo.checkpointing.run_lock import claim_run_folder
from cipo.checkpointing.run_state import RunState
from cipo.cli.command import run_command
from cipo.cli.config_dir import CONFIG_DIR
from cipo.cli.errors import RunInterrupted, reported_errors
from cipo.cli.help import TRAIN
from cipo.cli.run_summary import RunEnd, run_end_text
from cipo.data.context_fit import check_task_fits_model
from cipo.data.datamodule import require_heldout
from cipo.loggers import flatten_config, log_config, log_outcome
from cipo.models.policy import build_policy, export_policy
from cipo.module import CIPOModule
from cipo.parallel import full_weights
from cipo.settings import read_train_settings

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from ``cfg``, run ``trainer.fit`` and export the policy, holding the run
    folder (``checkpointing.run_lock``: a second writer fails fast)."""
    with claim_run_folder(cfg.paths.output_dir):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    started = time.monotonic()
    settings = read_train_settings(OmegaConf.to_container(cfg, resolve=True))
    algorithm, sampling = settings.algorithm, settings.sampling
    ckpt_path = resolve_ckpt_path(settings.run.ckpt_path, cfg.paths.output_dir)
    L.seed_everything(settings.run.seed, workers=True)
    if settings.run.num_threads:
        torch.set_num_threads(settings.run.num_threads)
    output_dir = Path(cfg.paths.output_dir)

    datamodule = instantiate(cfg.data, updates_per_step=algorithm.updates_per_step, _convert_="all")
    datamodule.read_sources()  # a bad data file fails here, before the (slow) policy load
    require_heldout(datamodule, settings.validation.every)
    policy, tokenizer = build_policy(OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=True))
    datamodule.attach_tokenizer(tokenizer)  # prompts are rendered with the policy's chat template
    datamodule.setup("fit")
    check_task_fits_model(tokenizer, policy, datamodule, sampling.max_new_tokens, algorithm.correction.enabled)

    module = CIPOModule(
        policy,
        tokenizer,
        algorithm,
        settings.module,
        sampling,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )
    rollout = RolloutCallback(
        engine=instantiate(cfg.rollout.engine),
        verifier=instantiate(cfg.verifier),
        algorithm=algorithm,
        sampling=sampling,
        validation=settings.validation,
        seed=settings.run.seed,
    )
    resume_hint = f"Resume with: cipo-train resume={output_dir}"
    stop = GracefulStop(resume_hint)
    callbacks = [RunState(), stop, rollout]
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    if trainer.is_global_zero:
        continue_logs(loggers, ckpt_path, fresh_start=settings.run.ckpt_path == "auto" and ckpt_path is None)
    params = flatten_config(OmegaConf.to_container(cfg, resolve=True))
    if ckpt_path is None:  # a resumed run's hyper-parameters are already in its logs
        log_config(loggers, params)
    else:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    exported = settings.run.export_policy and not stop.requested  # a stopped run is not the trained policy
    if exported:
        with full_weights(trainer.strategy.model):  # every rank gathers (FSDP), rank 0 writes
            if trainer.is_global_zero:
                written = export_policy(policy, tokenizer, output_dir)
                log.info("exported the trained policy to %s", " and ".join(map(str, written)))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if torch.is_tensor(value)}
    metrics = {**metrics, **rollout.last_validation}
    elapsed = time.monotonic() - started
    end = RunEnd(
        output_dir,
        trainer.current_epoch,
        trainer.max_epochs,
        elapsed,
        exported,
        stop.requested,
        validation_every=settings.validation.every,
    )
    if trainer.is_global_zero:
        log_outcome(loggers, params, metrics, end.steps_done)  # TensorBoard's HPARAMS: config + final metrics
        log.info(run_end_text(end, metrics))
    if end.stopped:
        raise RunInterrupted(f"stopped at your request after RL step {end.steps_done}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_train(cfg: DictConfig) -> float | None:
    with reported_errors("cipo-train", in_job=True):
        metrics = train(cfg)
    return metrics.get("val/accuracy")


def train_main() -> None:
    # resume=<run folder>: that run's config and folder
    run_command(TRAIN, CONFIG_DIR, _hydra_train, rewrite_arguments=partial(resume_arguments, config_dir=CONFIG_DIR))


if __name__ == "__main__":
    train_main()
