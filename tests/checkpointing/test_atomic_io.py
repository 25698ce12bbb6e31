"""A checkpoint write that dies half-way leaves the previous file intact and loadable."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
import torch

from cipo.checkpointing.atomic_io import AtomicCheckpointIO, atomic_torch_save


class _DiesWhilePickled:
    """Pickling this object kills the process (SIGKILL: no cleanup code runs)."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)
        return (int, ())


def _write_then_die(path: str) -> None:
    atomic_torch_save({"weights": torch.ones(100_000), "late": _DiesWhilePickled()}, path)


def test_sigkill_during_a_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "weights": torch.arange(10.0)}, path)
    process = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(str(path),))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL
    loaded = torch.load(path, weights_only=True)
    assert loaded["step"] == 1 and torch.equal(loaded["weights"], torch.arange(10.0))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert leftovers and all(name.startswith(".last.ckpt.tmp-") for name in leftovers)  # the half-written one


def test_an_exception_during_a_write_keeps_the_previous_checkpoint_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def failing_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_write_replaces_a_symlink_by_the_file(tmp_path):
    target = tmp_path / "step0001.ckpt"
    atomic_torch_save({"step": 1}, target)
    link = tmp_path / "last.ckpt"
    link.symlink_to(target.name)
    atomic_torch_save({"step": 2}, link)
    assert not link.is_symlink() and torch.load(link)["step"] == 2
    assert torch.load(target)["step"] == 1


def test_remote_paths_keep_lightnings_writer(monkeypatch):
    seen = []
    monkeypatch.setattr(
        "lightning.fabric.plugins.io.torch_io.TorchCheckpointIO.save_checkpoint",
        lambda self, checkpoint, path, storage_options=None: seen.append(str(path)),
    )
    AtomicCheckpointIO().save_checkpoint({"step": 1}, "s3://bucket/run/last.ckpt")
    assert seen == ["s3://bucket/run/last.ckpt"]
