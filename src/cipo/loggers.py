"""What a run hands its experiment trackers besides the per-step metrics: the config and the outcome.

* ``log_config`` at the start of a fresh run: the resolved config, flattened to ``a/b`` keys,
  to every logger (TensorBoard's ``hparams.yaml``, the W&B run config, MLflow params).
* ``log_outcome`` at the end (also of a run stopped early): for loggers whose
  ``log_hyperparams`` takes metrics (Lightning's ``TensorBoardLogger``) the config again with
  the final metrics under ``hp/*``, at x = the last RL step, which fills TensorBoard's HPARAMS
  tab (one row per run, sortable by ``hp/val_accuracy``). W&B and MLflow keep the last value of
  every metric themselves.
* ``wandb`` / ``mlflow``: the ``_target_`` of ``conf/logger/wandb.yaml`` / ``mlflow.yaml``:
  Lightning's ``WandbLogger`` (offline unless told otherwise, one W&B run per run folder, so a
  resumed run continues it) and ``MLFlowLogger`` (a local file store), or, when the package
  is not installed, a one-line error that says how to install it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

OUTCOME = {
    "hp/val_accuracy": "val/accuracy",
    "hp/val_fix_rate": "val/fix_rate",
    "hp/val_retention": "val/retention",
    "hp/reward_mean": "rollout/reward_mean",
}


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a/b": scalar}`` (lists and other values as text) for hyper-parameter tables."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten_config(value, f"{prefix}{key}/"))
        return flat
    if isinstance(tree, list):
        return {prefix.rstrip("/"): str(tree)}
    return {prefix.rstrip("/"): tree if isinstance(tree, (int, float, str, bool)) else str(tree)}


def log_config(loggers: Iterable[Any], params: Mapping[str, Any]) -> None:
    for logger in loggers:
        logger.log_hyperparams(dict(params))


def outcome_metrics(metrics: Mapping[str, float], steps_done: int) -> dict[str, float]:
    """The ``hp/*`` values of a run: final held-out accuracy, pass@k at the largest k, correction
    rates, the last step's mean reward, and how many RL steps it ran."""
    outcome = {name: float(metrics[tag]) for name, tag in OUTCOME.items() if tag in metrics}
    ks = [int(tag.removeprefix("val/pass@")) for tag in metrics if tag.startswith("val/pass@")]
    if ks:
        outcome[f"hp/val_pass@{max(ks)}"] = float(metrics[f"val/pass@{max(ks)}"])
    outcome["hp/rl_steps"] = float(steps_done)
    return outcome


def log_outcome(
    loggers: Iterable[Any], params: Mapping[str, Any], metrics: Mapping[str, float], steps_done: int
) -> None:
    outcome = outcome_metrics(metrics, steps_done)
    for logger in loggers:
        if "metrics" in inspect.signature(logger.log_hyperparams).parameters:
            logger.log_hyperparams(dict(params), metrics=outcome, step=steps_done)
            logger.save()


def _require(package: str, config: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ImportError(
            f"logger={config} needs the {package} package, which is not installed: pip install 'cipo[{config}]' "
            f"(or pip install {package}); logger=tensorboard needs nothing more"
        )


def wandb(save_dir: str, offline: bool = True, id: str | None = None, **kwargs: Any):
    """Lightning's ``WandbLogger``; ``id`` defaults to one derived from the run folder, so that
    ``cipo-train resume=<folder>`` continues the same W&B run (``resume="allow"``)."""
    _require("wandb", "wandb")
    from lightning.pytorch.loggers import WandbLogger

    run_id = id or hashlib.sha1(str(Path(save_dir).absolute()).encode()).hexdigest()[:16]
    return WandbLogger(save_dir=save_dir, offline=offline, id=run_id, resume="allow", **kwargs)


def mlflow(save_dir: str, run_folder: str, tracking_uri: str | None = None, **kwargs: Any):
    """Lightning's ``MLFlowLogger``; without ``tracking_uri``, MLflow's local file store in
    ``save_dir`` (an absolute ``file:`` URI, whatever folder the command runs in). MLflow >= 3.x
    keeps that store in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``,
    set here since the config asked for it (``tracking_uri=sqlite:///...`` for a database). The
    MLflow run is named after the run folder and tagged with its path; a resumed run starts a
    new MLflow run."""
    _require("mlflow", "mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    if tracking_uri is None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        tracking_uri = Path(save_dir).absolute().as_uri()
    folder = Path(run_folder).absolute()
    kwargs.setdefault("run_name", folder.name)
    kwargs["tags"] = {"run_folder": str(folder), **(kwargs.get("tags") or {})}
    return MLFlowLogger(tracking_uri=tracking_uri, **kwargs)
