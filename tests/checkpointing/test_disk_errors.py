"""A checkpoint that cannot be written says why in one line: a full disk (which torch's zip writer
reports as "file write failed", its errno lost), a read-only file system, a quota."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cipo.checkpointing import disk_errors
from cipo.checkpointing.atomic_io import atomic_torch_save
from cipo.checkpointing.disk_errors import RunWriteError, explain_write_error

TORCH_FULL_DISK = RuntimeError(
    "[enforce fail at inline_container.cc:595] . unexpected pos 2880 vs 2774\n"
    "PytorchStreamWriter failed writing file data/0: file write failed"
)


@pytest.mark.parametrize(
    "error, state, cause",
    [
        (OSError(errno.ENOSPC, "No space left on device"), (10**12, False), "the disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), (10**12, True), "the file system is read-only"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), (10**12, False), "the disk quota is used up"),
        (TORCH_FULL_DISK, (4096, False), "the disk is full"),  # the errno is gone: the folder tells
        (TORCH_FULL_DISK, (10**12, True), "the file system is read-only"),
        (TORCH_FULL_DISK, (10**12, False), "RuntimeError: PytorchStreamWriter failed writing file data/0"),
    ],
)
def test_the_cause_in_one_line(monkeypatch, tmp_path, error, state, cause):
    monkeypatch.setattr(disk_errors, "folder_state", lambda path: state)
    message = explain_write_error(error, tmp_path / "last.ckpt", "write the checkpoint")
    assert message.startswith(f"cannot write the checkpoint {tmp_path / 'last.ckpt'}: {cause}")
    assert "\n" not in message and ("paths.output_dir" in message or "check the disk" in message)


def test_a_failed_checkpoint_write_raises_one_line_and_leaves_nothing(monkeypatch, tmp_path):
    def full_disk(obj, handle):
        handle.write(b"half")
        raise TORCH_FULL_DISK

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(disk_errors, "folder_state", lambda path: (0, False))
    with pytest.raises(RunWriteError, match=r"^cannot write the checkpoint .*last\.ckpt: the disk is full") as raised:
        atomic_torch_save({"step": 1}, tmp_path / "last.ckpt")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained traceback
    assert list(tmp_path.iterdir()) == []


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from cipo.checkpointing.atomic_io import atomic_torch_save
    try:
        atomic_torch_save({"weights": torch.zeros(2**20)}, sys.argv[1] + "/last.ckpt")  # 4 MB
    except OSError as error:
        print(type(error).__name__, "|", error)
    """
)


@pytest.mark.slow  # a fresh interpreter with torch: ~5 s alone, 20 s on a busy machine
@pytest.mark.skipif(
    sys.platform != "linux" or not shutil.which("unshare") or __import__("os").geteuid() != 0,
    reason="mounts a tiny tmpfs in a private mount namespace (root, util-linux)",
)
@pytest.mark.parametrize("options, cause", [("size=256k", "the disk is full"), ("ro", "the file system is read-only")])
def test_a_real_full_or_read_only_disk(tmp_path, options, cause):
    folder = tmp_path / "small"
    folder.mkdir()
    command = f"mount -t tmpfs -o {options} tmpfs {folder} && {sys.executable} -c '{SCRIPT}' {folder}"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-1000:]
    kind, _, message = done.stdout.strip().partition(" | ")
    assert kind == "RunWriteError" and f"last.ckpt: {cause}" in message and "\n" not in message, done.stdout
