"""Checkpoint files that are either the old version or the new one, never half of one.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose local temporary
file lives in the system temp folder; the final ``shutil.move`` is then a copy whenever that
folder is on another file system (the usual case on clusters), so a crash or a full disk
during the copy leaves a truncated ``last.ckpt`` behind and the run cannot resume. Here the
bytes go to a temporary file *next to* the target, are fsync'ed, and replace the target with
one ``os.replace`` (atomic on POSIX and Windows); the folder is fsync'ed after the rename so
the new name survives a power loss too. Remote (fsspec URL) paths keep Lightning's behaviour.
A write killed half-way leaves ``.<name>.tmp-<pid>``; the next run in the folder removes it
(``run_lock.claim_run_folder``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from cipo.checkpointing.disk_errors import RunWriteError, explain_write_error


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _is_write_failure(error: BaseException) -> bool:
    # torch's zip writer turns ENOSPC into "RuntimeError: [enforce fail at inline_container.cc...]"
    torch_writer = isinstance(error, RuntimeError) and any(
        k in str(error) for k in ("inline_container", "StreamWriter")
    )
    return isinstance(error, OSError) or torch_writer


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a same-folder temporary file + fsync + ``os.replace``.
    A failed write raises ``RunWriteError`` whose one line says why (full disk, read-only, ...)."""
    target = Path(str(path).removeprefix("file://"))
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)  # also replaces a symlink at `target` by the file itself
    except BaseException as error:
        message = explain_write_error(error, target, "write the checkpoint") if _is_write_failure(error) else None
        try:
            temporary.unlink(missing_ok=True)  # after the diagnosis: this file may be what filled the disk
        except OSError:
            pass  # e.g. a read-only file system, where it was never made
        if message is not None:
            raise RunWriteError(message) from None
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename itself is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (``trainer.plugins``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(str(path)):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)
