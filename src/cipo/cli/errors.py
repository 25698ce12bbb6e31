"""A user's mistake ends the command with one paragraph that says what to change, not a traceback.

``reported_errors("cipo-train")`` wraps an entry point (and, inside Hydra, the task function).
An exception is a *user error* when it is

* one of cipo's own messages: a ``ValueError``, ``OSError`` (``FileNotFoundError``, ...),
  ``ImportError`` or ``RuntimeError`` raised by a line of cipo's source (cipo raises these to
  name a key, a file or a value and the fix: ``trainer.max_epochs``, ``model.path``,
  ``resume=``, a data file's line);
* a configuration error: OmegaConf's (a missing key, a bad interpolation), Lightning's
  ``MisconfigurationException``, or Hydra's ``InstantiationException`` around a ``TypeError``
  / ``ValueError`` / ``ImportError`` (a ``_target_`` given arguments it does not take).

Those print ``cipo-train: error: <message>`` and exit with status 1. Anything else is a bug or
a failure cipo did not foresee: it keeps its traceback (Hydra prints it). ``HYDRA_FULL_ERROR=1``
(or a debugger) shows the full traceback of every error.

A run that fails before it wrote anything but Hydra's ``.hydra/`` and the job log leaves no
folder behind: Hydra creates the folder before cipo runs (creation cannot be deferred), so it
is removed after the failure (``remove_unstarted_run``), unless the user named it
(``hydra.run.dir=``, as ``resume=`` does).

``RunInterrupted``: the run stopped at the user's request (Ctrl-C) after writing its
checkpoint; the command exits with status 130 (128 + SIGINT), as an interrupted program does,
so a script or scheduler never takes a stopped run for a finished one.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cipo

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
PACKAGE_DIR = Path(cipo.__file__).resolve().parent
OWN_MESSAGE_TYPES = (ValueError, OSError, ImportError, RuntimeError)
BUILD_ERROR_TYPES = (TypeError, ValueError, ImportError)
TRACEBACK_HINT = "(HYDRA_FULL_ERROR=1 shows the traceback)"


class RunInterrupted(Exception):
    """The run stopped early at the user's request, with its checkpoint written."""


def full_traceback_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or sys.gettrace() is not None


def raised_by_cipo(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in cipo's source."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def user_error_message(error: BaseException) -> str | None:
    """The message to show for a user's mistake, or None when ``error`` should keep its traceback."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, InstantiationException):
        cause = error.__cause__
        key = next(
            (line.split(":", 1)[1].strip() for line in str(error).splitlines() if line.startswith("full_key:")), ""
        )
        if cause is None:
            return str(error).splitlines()[0]
        inner = user_error_message(cause)
        if inner is None and not isinstance(cause, (*BUILD_ERROR_TYPES, MisconfigurationException)):
            return None
        return f"{key + ': ' if key else ''}{inner or cause}"
    if isinstance(error, (MisconfigurationException, OmegaConfBaseException)):
        return str(error)
    if isinstance(error, OWN_MESSAGE_TYPES) and raised_by_cipo(error):
        return str(error)
    return None


def paragraph(command: str, message: str) -> str:
    """``message`` as one paragraph: its lines joined, then how to see the traceback."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return f"{command}: error: {text}\n{TRACEBACK_HINT}"


@contextmanager
def reported_errors(command: str, in_job: bool = False) -> Iterator[None]:
    """Run the body; a user error or an interruption ends the process with a short message.

    ``in_job``: the body is a Hydra job (the task function), whose run folder is removed if the
    job failed before it wrote anything.
    """
    try:
        yield
    except RunInterrupted:
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        if in_job:
            remove_unstarted_run()
        print(f"\n{command}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        if in_job:
            remove_unstarted_run()
        message = None if full_traceback_requested() else user_error_message(error)
        if message is None:
            raise
        print(paragraph(command, message), file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)


def remove_unstarted_run() -> Path | None:
    """Remove the current Hydra job's folder if it holds only ``.hydra/`` and log files (and
    then its multirun folder if only ``multirun.yaml`` is left); returns the removed folder."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    chosen = {override.split("=", 1)[0].lstrip("+") for override in hydra.overrides.hydra}
    output_dir = OmegaConf.select(hydra, "runtime.output_dir", default=None, throw_on_missing=False)
    if "hydra.run.dir" in chosen or not output_dir:
        return None
    folder = Path(output_dir)
    if not is_unstarted_run(folder):
        return None
    _close_file_handlers(folder)
    shutil.rmtree(folder, ignore_errors=True)
    sweep = folder.parent
    if "hydra.sweep.dir" not in chosen and sweep.is_dir() and [p.name for p in sweep.iterdir()] == ["multirun.yaml"]:
        shutil.rmtree(sweep, ignore_errors=True)
    return folder


def is_unstarted_run(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    return all((e.name == ".hydra" and e.is_dir()) or (e.suffix == ".log" and e.is_file()) for e in entries)


def _close_file_handlers(folder: Path) -> None:
    for handler in list(logging.root.handlers):
        filename = getattr(handler, "baseFilename", None)
        if filename and Path(filename).resolve().is_relative_to(folder.resolve()):
            handler.close()
            logging.root.removeHandler(handler)
