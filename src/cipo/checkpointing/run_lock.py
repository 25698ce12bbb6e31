"""One writer per run folder: ``cipo-train`` holds ``<run>/.lock`` while it trains.

Two runs writing one folder (a second launch into the same ``hydra.run.dir``, or a ``resume=`` of
a run that is still training) both used to exit 0 with interleaved curves, and a config and
weights from different seeds. Now the second one stops before loading anything, naming the
holder::

    run folder logs/train/runs/X is in use by pid 4242 on host gpu-3 (cipo-train since
    2026-01-02 10:00:00) ...

The lock is a POSIX record lock (``fcntl.lockf``) on ``.lock``, chosen over ``flock`` because
it also works across machines on NFS (through the NFS lock manager), where ``flock`` may be
local to one client. The kernel (or the NFS server) releases it when the holder dies however it
dies, so a lock file left by a killed run is simply taken over (and said so); the file's text
(pid, host, start time, command) is only for the message, and the file is removed on release
(a run that failed at its config leaves its folder as it found it). Limits: a file system without
working POSIX locks (some FUSE and SMB mounts) refuses the lock, which is an error that says so;
two runs in one *process* are not told apart (POSIX locks belong to the process), which
``cipo-train`` never does. Only the global rank 0 process locks (the other ranks of a DDP run
share its folder).

While it holds the lock, ``claim_run_folder`` also removes the temporary files of checkpoint
writes that were killed (``.<name>.tmp-<pid>``, see ``atomic_io.py``): nobody else can be
writing them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cipo.checkpointing.disk_errors import explain_write_error

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
CHECKPOINT_TEMPORARY = ".*.tmp-*"  # atomic_io's temporary files


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder."""


def _holder(handle) -> dict:
    try:
        handle.seek(0)
        return json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (it left no details)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on host {holder.get('host')} ({holder.get('command', '?')[:80]} since {started})"


def _alive_here(holder: dict) -> bool | None:
    """Whether the holder's pid runs on this host (None: another host, cannot tell)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _open_locked(folder: Path):
    """The lock file, open and locked (``RunFolderBusy`` if another process holds it). Retried
    when the file was replaced while we waited for it (a holder that removed it on release)."""
    path = folder / LOCK_NAME
    for _ in range(5):
        try:
            handle = open(path, "a+")
        except OSError as error:
            raise OSError(error.errno, explain_write_error(error, path, "create the run folder's lock")) from None
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(handle)
            handle.close()
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise OSError(
                    error.errno,
                    f"cannot lock {path} ({os.strerror(error.errno)}): this file system does not support POSIX "
                    "locks; use a run folder on a local or NFS file system",
                ) from None
            raise RunFolderBusy(
                f"run folder {folder} is in use by {_describe(holder)}: another cipo-train, or a resume= of a run "
                "that is still training, writes there. Wait for it to end (or stop it), or give this run its own "
                "folder (a new launch makes one; hydra.run.dir=<new folder>)"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # we locked a file that was just removed: lock the new one
    raise RunFolderBusy(f"run folder {folder}: its lock file keeps being replaced; is another run starting there?")


@contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``<folder>/.lock`` for the duration; ``RunFolderBusy`` if someone else holds it. The
    lock file is removed on release, and so is a folder this made and left empty."""
    folder = Path(folder)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(error.errno, explain_write_error(error, folder, "create the run folder")) from None
    handle = _open_locked(folder)
    with handle:
        previous = _holder(handle)
        if previous and _alive_here(previous) is not True:
            log.warning("taking over the lock of %s, left by %s (no longer running)", folder, _describe(previous))
        handle.seek(0)
        handle.truncate()
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        details = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command}
        handle.write(json.dumps(details))
        handle.flush()
        try:
            yield
        finally:
            # Gone once released (a killed run leaves it, with its details, for the next to take over);
            # whoever opened it meanwhile notices the replacement and locks the new file (_open_locked).
            (folder / LOCK_NAME).unlink(missing_ok=True)
            if made and not any(folder.iterdir()):  # e.g. a config error: leave nothing behind
                folder.rmdir()
            fcntl.lockf(handle, fcntl.LOCK_UN)


def remove_stale_temporaries(checkpoints: str | Path) -> int:
    """Delete the temporary files of interrupted checkpoint writes; returns how many (call with the lock held)."""
    removed, freed = 0, 0
    for path in Path(checkpoints).glob(CHECKPOINT_TEMPORARY):
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            continue
        removed, freed = removed + 1, freed + size
    if removed:
        log.warning(
            "removed %d temporary file(s) of interrupted checkpoint writes (%.1f MB) in %s",
            removed,
            freed / 2**20,
            checkpoints,
        )
    return removed


def is_rank_zero() -> bool:
    """True in the process that owns the run folder (global rank 0, known from the launcher's environment)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


@contextmanager
def claim_run_folder(folder: str | Path, checkpoints: str = "checkpoints") -> Iterator[None]:
    """What ``cipo-train`` does first: lock the run folder (rank 0) and clear interrupted writes."""
    if not is_rank_zero():
        yield
        return
    with run_folder_lock(folder):
        remove_stale_temporaries(Path(folder) / checkpoints)
        yield
