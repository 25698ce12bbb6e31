"""What the trackers get besides the per-step metrics (config, outcome), and the logger=wandb /
logger=mlflow configs: offline / local, and a one-line install hint without the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.utils import instantiate

import cipo.loggers
from cipo.cli.errors import user_error_message
from cipo.loggers import flatten_config, outcome_metrics
from conftest import compose_train


def test_flatten_config_for_hyperparameter_tables():
    tree = {"a": {"b": 1, "c": [1, 2], "d": None}, "e": "x"}
    assert flatten_config(tree) == {"a/b": 1, "a/c": "[1, 2]", "a/d": "None", "e": "x"}


def test_outcome_holds_the_final_metrics_and_the_steps():
    metrics = {"val/accuracy": 0.5, "val/pass@1": 0.5, "val/pass@4": 0.75, "rollout/reward_mean": 0.25, "x": 1.0}
    assert outcome_metrics(metrics, 7) == {
        "hp/val_accuracy": 0.5,
        "hp/val_pass@4": 0.75,
        "hp/reward_mean": 0.25,
        "hp/rl_steps": 7.0,
    }


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_tracker_configs_keep_tensorboard_and_fail_in_one_line_without_the_package(name, tmp_path, monkeypatch):
    with compose_train([f"logger={name}"], tmp_path=tmp_path) as cfg:
        assert set(cfg.logger) == {"tensorboard", name}  # resume, compare_runs.py and the tests read TensorBoard
        assert cfg.logger[name]._target_ == f"cipo.loggers.{name}"
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else real_find_spec(n, *a))
        with pytest.raises(Exception) as info:
            instantiate(cfg.logger[name])
    message = user_error_message(info.value)
    assert message == (
        f"logger.{name}: logger={name} needs the {name} package, which is not installed: pip install 'cipo[{name}]' "
        f"(or pip install {name}); logger=tensorboard needs nothing more"
    )
    assert "\n" not in message


@pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="wandb is not installed (pip install 'cipo[wandb]')"
)
def test_wandb_logs_offline_into_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    with compose_train(["logger=wandb"], tmp_path=tmp_path) as cfg:
        logger = instantiate(cfg.logger.wandb)
    assert logger.experiment.settings.mode in ("offline", "dryrun")  # wandb's name for offline
    logger.log_hyperparams({"a/b": 1})
    logger.log_metrics({"val/accuracy": 0.5}, step=0)
    logger.experiment.finish()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    again = cipo.loggers.wandb(save_dir=str(tmp_path / "run"), offline=True, project="cipo")
    assert again._wandb_init["id"] == logger._wandb_init["id"]  # a resumed run continues its W&B run


@pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed (pip install 'cipo[mlflow]')"
)
def test_mlflow_logs_into_a_local_file_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with compose_train(["logger=mlflow"], tmp_path=tmp_path) as cfg:
        logger = instantiate(cfg.logger.mlflow)
    logger.log_hyperparams({"a/b": 1})
    logger.log_metrics({"val/accuracy": 0.5}, step=0)
    logger.finalize("success")
    store = Path(tmp_path / "logs" / "mlruns")
    assert logger._tracking_uri == store.absolute().as_uri()
    (metric,) = store.glob("*/*/metrics/val/accuracy")
    assert metric.read_text().split()[1] == "0.5"
