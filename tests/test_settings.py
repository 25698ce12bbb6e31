"""Bad run-level config fails before any work, naming the key and the valid values.

Each case goes through ``train(cfg)`` (or Hydra's own composition, for unknown keys typed
without ``+``) with ``load_policy`` replaced by a tripwire: the error must come first.
"""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, InstantiationException
from omegaconf import OmegaConf

import cipo.cli.train
from cipo.algorithms.config import AlgorithmConfig
from cipo.cli.train import train
from cipo.settings import (
    ROOT_KEYS,
    CheckpointSettings,
    ModuleSettings,
    RunSettings,
    ValidationSettings,
    read_train_settings,
)
from cipo.types import SamplingSettings
from conftest import CONF_DIR, compose_train


@pytest.fixture
def no_loading(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("the policy was loaded before the config was validated")

    monkeypatch.setattr(cipo.cli.train, "build_policy", tripwire)


@pytest.mark.parametrize(
    "override, match",
    [
        ("+foo=1", r"unknown top-level config key\(s\) \['foo'\]"),
        ("+module.foo=1", r"module: unknown key\(s\) \['foo'\]; known keys: \['max_consecutive_skips'"),
        ("+checkpoint.keep_last=2", r"checkpoint: unknown key\(s\) \['keep_last'\]"),
        ("+validation.evry=2", r"validation: unknown key\(s\) \['evry'\]"),
        ("module.micro_batch_size=abc", r"module\.micro_batch_size: expected an integer, got 'abc'"),
        ("module.micro_batch_size=0", r"module\.micro_batch_size: must be >= 1, got 0"),
        ("module.max_grad_norm=-1", r"module\.max_grad_norm: must be > 0"),
        ("module.max_consecutive_skips=0", r"module\.max_consecutive_skips: must be >= 1"),
        ("validation.every=-1", r"validation\.every: must be >= 0"),
        ("validation.samples=two", r"validation\.samples: expected an integer"),
        ("validation.max_problems=0", r"validation\.max_problems: must be null \(all\) or >= 1"),
        ("validation.correction=maybe", r"validation\.correction: expected true/false"),
        ("checkpoint.every=0", r"checkpoint\.every: RL steps between checkpoints must be >= 1"),
        ("checkpoint.keep_last_k=0", r"checkpoint\.keep_last_k: must be -1 \(keep all\) or >= 1"),
        ("validation.ks=[1,8]", r"validation\.ks=\[1, 8\]: every k must be <= validation\.samples=2"),
        ("trainer.max_epochs=0", r"trainer\.max_epochs: the number of RL steps must be an integer >= 1, got 0"),
        ("trainer.max_epochs=ten", r"trainer\.max_epochs: .* got 'ten'"),
        ("seed=-1", r"^seed: must be >= 0"),
        ("seed=abc", r"^seed: expected an integer"),
        ("num_threads=0", r"^num_threads: must be null \(torch's default\) or >= 1"),
        ("export_policy=yes", r"^export_policy: expected true/false"),
        ("ckpt_path=/no/such.ckpt", r"ckpt_path='/no/such.ckpt': no such checkpoint file"),
        ("ckpt_path=last", r"ckpt_path=last: no checkpoint in"),
    ],
)
def test_bad_run_setting_fails_before_any_work(override, match, tmp_path, no_loading):
    with compose_train([override], tmp_path=tmp_path, model_path="/nonexistent") as cfg:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["module.foo=1", "checkpoint.keep=1", "validation.evry=2", "foo=1"])
def test_unknown_key_typed_without_plus_is_refused_by_hydra(override, tmp_path):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=rf"Could not override '{key}'"):
        with compose_train([override], tmp_path=tmp_path):
            pass


def test_data_batch_size_of_the_wrong_type_names_the_key(tmp_path, no_loading):
    with compose_train(["data.batch_size=abc"], tmp_path=tmp_path) as cfg:
        with pytest.raises((ValueError, InstantiationException), match=r"data\.batch_size .*got 'abc'"):
            train(cfg)


def test_model_folder_without_config_names_the_key(tmp_path):
    (tmp_path / "model").mkdir()
    with compose_train([], tmp_path=tmp_path, model_path=str(tmp_path / "model")) as cfg:
        with pytest.raises(FileNotFoundError, match=r"model\.path=.*no config\.json there; point model\.path"):
            train(cfg)


def test_unknown_trainer_key_names_it(tmp_path, tiny_policy_dir):
    with compose_train(["+trainer.max_epoch=3"], tmp_path=tmp_path, model_path=tiny_policy_dir) as cfg:
        with pytest.raises(InstantiationException, match=r"unexpected keyword argument 'max_epoch'"):
            train(cfg)


def test_root_keys_match_train_yaml(tmp_path):
    """Every top-level key of the shipped config is known to the check (and only those)."""
    with compose_train([], tmp_path=tmp_path, fast=False) as cfg:
        assert set(cfg) == set(ROOT_KEYS), "a new top-level key in conf/train.yaml goes into cipo.settings.ROOT_KEYS"
        read_train_settings(OmegaConf.to_container(cfg, resolve=True))  # the defaults pass


GLOBAL_FILES = sorted(
    f"{p.parent.name}={p.stem}" for group in ("experiment", "debug") for p in (CONF_DIR / group).glob("*.yaml")
)


@pytest.mark.parametrize("override", GLOBAL_FILES)
def test_every_global_config_file_passes_the_check(override, tmp_path):
    with compose_train([override], tmp_path=tmp_path, fast=False) as cfg:
        read_train_settings(OmegaConf.to_container(cfg, resolve=True))


def test_yaml_defaults_are_the_dataclass_defaults(tmp_path):
    """One home per default: the dataclass. conf/train.yaml (and conf/algorithm/cipo.yaml,
    conf/rollout/hf.yaml) repeat the values for the command line, and must not drift from it."""
    with compose_train([], tmp_path=tmp_path, fast=False) as cfg:
        settings = read_train_settings(OmegaConf.to_container(cfg, resolve=True))
    assert settings.run == RunSettings()
    assert settings.module == ModuleSettings()
    assert settings.validation == ValidationSettings()
    assert settings.checkpoint == CheckpointSettings()
    assert settings.sampling == SamplingSettings()
    assert settings.algorithm == AlgorithmConfig()


def test_settings_are_typed_and_complete(tmp_path):
    overrides = ["module.micro_batch_size=3", "validation.ks=[1,2]", "seed=7", "algorithm=grpo", "rollout.top_p=0.5"]
    with compose_train(overrides, tmp_path=tmp_path) as cfg:
        settings = read_train_settings(OmegaConf.to_container(cfg, resolve=True))
    assert settings.module.micro_batch_size == 3 and settings.validation.ks == [1, 2] and settings.run.seed == 7
    assert settings.algorithm.name == "grpo" and not settings.algorithm.correction.enabled
    assert settings.sampling == SamplingSettings(max_new_tokens=32, temperature=1.0, top_p=0.5)  # debug=fast: 32
    assert settings.max_epochs == 2
