"""Run a console script (``cipo-train``, ``cipo-eval``) as a user would, and capture what they see.

``run_forked``: the script's function (``cipo.cli.train_main``) in a forked child, with its own
argv, working folder, environment and standard output/error (file descriptors 1 and 2, so
Python and C-level writes are both captured); the modules the parent imported are shared, so a
command costs no interpreter start-up (6 s of CPU for torch + Lightning + transformers).
``run_process``: the installed console script in a fresh interpreter, for the tests where the
whole output of a real process matters (warnings filters, library loggers set at import time).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


@dataclass
class Result:
    returncode: int
    output: str  # standard output and error, interleaved as written

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def _child(main: Callable[[], None], argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    os.chdir(cwd)
    os.environ.pop("HYDRA_FULL_ERROR", None)
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = [str(BIN / argv[0]), *argv[1:]]
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_forked(
    main: Callable[[], None], argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> Result:
    """``argv[0]`` is the command's name (``cipo-train``); the rest are its arguments."""
    log = Path(cwd) / f".{argv[0]}-{os.getpid()}.out"
    process = multiprocessing.get_context("fork").Process(target=_child, args=(main, argv, cwd, env or {}, log))
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        raise TimeoutError(f"{argv} did not finish in {timeout} s")
    output = log.read_text()
    log.unlink()
    return Result(process.exitcode, output)


def run_process(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    """The console script ``argv[0]`` of this virtualenv, with the worktree's sources and tests/
    (for ``fakes``) on the path."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS)])}
    environment.pop("HYDRA_FULL_ERROR", None)
    environment.update(env or {})
    completed = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return Result(completed.returncode, completed.stdout)
