"""One line that says why a run could not write a file: the disk is full, the file system is
read-only, a quota or a permission, instead of the cause buried under a chained traceback.

``torch.save`` reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc:...]
PytorchStreamWriter failed writing file data/3: file write failed`` (the errno is lost in its
zip writer), so the folder itself is asked: free bytes and the read-only flag (``os.statvfs``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an input/output error (a failing disk or a lost network mount)",
}


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


FULL_BELOW = 16 * 2**20  # bytes free under which a failed write is put down to a full disk


def folder_state(path: str | Path) -> tuple[int | None, bool]:
    """(bytes free to this user, read-only?) of the file system holding ``path`` (None, False: unknown)."""
    try:
        stats = os.statvfs(_existing(Path(path)))
    except OSError:
        return None, False
    return stats.f_bavail * stats.f_frsize, bool(stats.f_flag & os.ST_RDONLY)


def _size(free: int) -> str:
    return f"{free / 2**30:.2f} GB free" if free >= 2**30 else f"{free / 2**20:.1f} MB free"


ADVICE = {
    "the disk is full": "free space there or set paths.output_dir (hydra.run.dir) to a disk with room",
    "the disk quota is used up": "free space within the quota or write elsewhere (paths.output_dir)",
    "the file system is read-only": "set paths.output_dir (hydra.run.dir) to a writable folder",
    "permission denied": "make the folder writable for this user or write elsewhere (paths.output_dir)",
}


def _chain(error: BaseException | None):
    """``error`` and the exceptions it was raised from or during (torch hides an OSError there)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def explain_write_error(error: BaseException, path: str | Path, what: str) -> str:
    """``cannot <what> <path>: <cause> (<free space> on <mount>); <what to do>``, in one line.
    Call it before deleting a partly written file: that file is what filled the disk."""
    free, read_only = folder_state(path)
    code = next((e.errno for e in _chain(error) if isinstance(e, OSError) and e.errno), None)
    if code in CAUSES:
        cause = CAUSES[code]
    elif read_only:
        cause = "the file system is read-only"
    elif free is not None and free < FULL_BELOW:
        cause = "the disk is full"
    else:
        lines = str(error).strip().splitlines()
        cause = f"{type(error).__name__}: {lines[-1][:200] if lines else ''}"
    state = "read-only" if read_only else (_size(free) if free is not None else "")
    where = f" ({state} on {_existing(Path(path))})" if state else ""
    return f"cannot {what} {path}: {cause}{where}; {ADVICE.get(cause, 'check the disk and the folder')}"


class RunWriteError(OSError):
    """A file of the run could not be written; the message is the whole story (no chained cause)."""
