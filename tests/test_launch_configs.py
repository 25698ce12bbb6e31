"""The multi-process configs compose into objects Lightning and submitit accept (they cannot run
here: trainer=ddp / fsdp need GPUs, hydra/launcher=slurm a cluster; trainer=ddp_cpu runs in
tests/test_multiprocess.py)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from omegaconf import OmegaConf

import cipo.parallel as parallel
from cipo.parallel import GatheredEngine, full_weights
from conftest import CONF_DIR, compose_train


@pytest.mark.parametrize(
    "name, strategy, backend, devices",
    [("ddp_cpu", DDPStrategy, "gloo", 2), ("ddp", DDPStrategy, "nccl", -1), ("fsdp", FSDPStrategy, None, -1)],
)
def test_trainer_configs_build_their_strategy(name, strategy, backend, devices, tmp_path):
    with compose_train([f"trainer={name}"], tmp_path=tmp_path, fast=False) as cfg:
        assert cfg.trainer.devices == devices and cfg.trainer.accelerator == ("cpu" if name == "ddp_cpu" else "gpu")
        built = instantiate(cfg.trainer.strategy)
        assert isinstance(built, strategy)
        if backend:
            assert built._process_group_backend == backend
        plugins = [type(p).__name__ for p in instantiate(cfg.trainer.plugins)]
        assert plugins == ["AtomicCheckpointIO"]  # atomic checkpoint writes under every strategy
    if name == "fsdp":
        assert built._state_dict_type == "full" and built.kwargs.get("auto_wrap_policy") is None
        assert built.kwargs["use_orig_params"]  # the optimizer and the engines see the policy's own parameters


def test_ddp_cpu_builds_a_two_process_trainer(tmp_path):
    with compose_train(["trainer=ddp_cpu"], tmp_path=tmp_path) as cfg:
        trainer = instantiate(cfg.trainer)
    assert trainer.num_devices == 2 and isinstance(trainer.strategy, DDPStrategy)


def test_slurm_launcher_maps_devices_and_nodes_to_an_sbatch_file(tmp_path):
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    overrides = [
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=8",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
    ]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", return_hydra_config=True, overrides=overrides)
            HydraConfig().set_config(cfg)
            launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
            launcher = instantiate(cfg.hydra.launcher)
    finally:
        GlobalHydra.instance().clear()
    assert type(launcher).__name__ == "SlurmLauncher"
    assert (launcher_cfg["nodes"], launcher_cfg["tasks_per_node"], launcher_cfg["gpus_per_node"]) == (2, 8, 8)
    # the launcher's own parameter mapping, then submitit's sbatch file: every key must be accepted
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k: v for k, v in launcher.params.items() if k not in ("submitit_folder", "max_num_timeout", "_target_")}
    names = SlurmExecutor._equivalence_dict()
    slurm = {names.get(k, k) if k in generic else k: v for k, v in params.items()}
    slurm["mem"] = None
    sbatch = _make_sbatch_string(command="python -m submitit.core._submit x", folder=str(tmp_path), **slurm)
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu", "--time=240"):
        assert f"#SBATCH {line}" in sbatch, line


def test_full_weights_is_a_no_op_without_fsdp_and_the_engine_proxy_delegates(monkeypatch):
    with full_weights(None):
        pass
    entered = []

    class Context:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            return False

    class Engine:
        def generate(self, prompts, n, settings, seed):
            return [prompts, n, seed]

        def sync_weights(self):
            return "report"

        def sleep(self):
            return "asleep"

    monkeypatch.setattr(parallel, "full_weights", lambda model: Context())
    engine = GatheredEngine(Engine(), strategy=type("S", (), {"model": None})())
    assert engine.generate(["p"], 2, None, seed=3) == [["p"], 2, 3] and engine.sync_weights() == "report"
    assert engine.sleep() == "asleep" and len(entered) == 2
