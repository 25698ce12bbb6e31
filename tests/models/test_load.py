"""load_policy / resolve_model_path: the built-in folder, local folders, dtype checks."""

from pathlib import Path

import pytest
import torch

from cipo.models import builtin as builtin_module
from cipo.models import load as load_module
from cipo.models.builtin import builtin_policy_dir
from cipo.models.load import load_policy, resolve_model_path


def test_builtin_resolves_to_asset_folder_when_present(monkeypatch, tiny_policy_dir):
    monkeypatch.setattr(load_module, "builtin_policy_dir", lambda name: Path(tiny_policy_dir))
    assert resolve_model_path("builtin") == tiny_policy_dir


def test_builtin_missing_asset_raises_with_rebuild_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "builtin_policy_dir", lambda name: tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="build_builtin_policy"):
        resolve_model_path("builtin")
    with pytest.raises(FileNotFoundError, match=r"build_builtin_policy.py --task missing_operand"):
        resolve_model_path("builtin_missing_operand")


def test_builtin_policy_dir_is_inside_the_package():
    folder = builtin_policy_dir()
    assert folder.parts[-3:] == ("cipo", "assets", "builtin_policy")
    assert Path(builtin_module.__file__).parent.parent == folder.parent.parent
    if (folder / "config.json").exists():
        assert resolve_model_path("builtin") == str(folder)
    second = builtin_policy_dir("builtin_missing_operand")
    assert second.parts[-3:] == ("cipo", "assets", "missing_operand_policy") and second.parent == folder.parent


@pytest.mark.parametrize("path", ["/nonexistent/model", "./no/such/folder"])
def test_missing_local_folder_names_model_path(path):
    with pytest.raises(FileNotFoundError, match=r"model\.path="):
        resolve_model_path(path)


def test_existing_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model_path(str(tmp_path))


def test_hub_name_is_passed_through():
    assert resolve_model_path("Qwen/Qwen3-4B") == "Qwen/Qwen3-4B"


def test_local_folder_resolves(tiny_policy_dir):
    assert resolve_model_path(tiny_policy_dir) == tiny_policy_dir


def test_bad_dtype_raises_before_loading():
    # the path does not exist either: the dtype check comes first and names its key
    with pytest.raises(ValueError, match=r"model\.dtype"):
        load_policy("/nonexistent", dtype="float64")


def test_load_policy_dtype_and_train_mode(tiny_policy_dir):
    model, tokenizer = load_policy(tiny_policy_dir, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.training
    assert tokenizer.pad_token_id == 0
    model32, _ = load_policy(tiny_policy_dir)
    assert next(model32.parameters()).dtype == torch.float32
