"""One writer per run folder: a second run (or a resume) fails fast naming the holder; a lock left
by a dead run is taken over; interrupted checkpoint writes are cleaned up. The holder is always
another process (POSIX locks belong to a process), as it is for two cipo-train commands."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time

import pytest

from cipo.checkpointing.run_lock import RunFolderBusy, claim_run_folder, run_folder_lock


def _hold(folder: str, ready, release) -> None:
    with run_folder_lock(folder):
        ready.set()
        release.wait(60)


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path``'s lock until the test ends (or kills it)."""
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    process = context.Process(target=_hold, args=(str(tmp_path), ready, release))
    process.start()
    assert ready.wait(30)
    yield process
    if process.is_alive():  # (setting the event would wait forever for a holder that was killed)
        release.set()
        process.join(30)


def test_a_second_writer_fails_fast_naming_the_holder(tmp_path, holder):
    started = time.monotonic()
    with pytest.raises(RunFolderBusy) as error:
        with run_folder_lock(tmp_path):
            pass
    message = str(error.value)
    assert f"pid {holder.pid} on host {socket.gethostname()}" in message and "resume=" in message
    assert time.monotonic() - started < 5  # no waiting


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, holder, caplog):
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    with caplog.at_level(logging.WARNING, logger="cipo.checkpointing.run_lock"):
        with run_folder_lock(tmp_path):
            pass  # (reading .lock here would drop the lock: any close of that file by this process does)
    assert f"left by pid {holder.pid}" in caplog.text and "no longer running" in caplog.text


def test_released_on_exit_and_on_an_exception(tmp_path):
    with pytest.raises(KeyError):
        with run_folder_lock(tmp_path):
            raise KeyError("boom")
    with run_folder_lock(tmp_path):  # free again, and nothing to warn about
        pass
    assert not (tmp_path / ".lock").exists()  # removed on release: an unstarted run folder stays unstarted


def test_claiming_a_folder_clears_interrupted_checkpoint_writes(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / ".last.ckpt.tmp-12345").write_bytes(b"x" * 1000)
    (checkpoints / ".step0004.ckpt.tmp-999").write_bytes(b"x")
    (checkpoints / "last.ckpt").write_bytes(b"kept")
    with caplog.at_level(logging.WARNING, logger="cipo.checkpointing.run_lock"):
        with claim_run_folder(tmp_path):
            assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    assert "removed 2 temporary file(s)" in caplog.text


def test_train_refuses_a_folder_another_run_holds(tmp_path, tiny_policy_dir):
    from cipo.cli.train import train
    from conftest import compose_train

    folder = str(tmp_path / "run")  # compose_train's paths.output_dir
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    other = context.Process(target=_hold, args=(folder, ready, release))
    other.start()
    try:
        assert ready.wait(30)
        with compose_train(["trainer.max_epochs=1"], tmp_path=tmp_path, model_path=tiny_policy_dir) as cfg:
            with pytest.raises(RunFolderBusy, match=f"pid {other.pid}"):
                train(cfg)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # stopped before writing anything
    finally:
        release.set()
        other.join(30)


def test_a_resume_of_a_run_that_still_trains_stops_at_once(tmp_path, tiny_policy_dir):
    """Through the command a user types: cipo-train resume=<run> while another process holds it."""
    import torch

    from cipo.cli import train_main
    from entry_points import run_forked

    tiny = [f"model.path={tiny_policy_dir}", "debug=fast", "rollout.max_new_tokens=32", "num_threads=1"]
    first = run_forked(train_main, ["cipo-train", *tiny, "trainer.max_epochs=1"], tmp_path)
    assert first.returncode == 0, first.output
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert not (run / ".lock").exists()  # released at the end of the run
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    other = context.Process(target=_hold, args=(str(run), ready, release))
    other.start()
    try:
        assert ready.wait(30)
        result = run_forked(train_main, ["cipo-train", f"resume={run}", "trainer.max_epochs=2"], tmp_path)
    finally:
        release.set()
        other.join(30)
    assert result.returncode == 1, result.output
    assert result.lines[0].startswith(f"cipo-train: error: run folder {run} is in use by pid {other.pid} on host ")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0  # untouched
