"""Run one untrusted Python program in its own process, with limits; the parent never blocks
past the deadline and never holds more than the output cap in memory.

What one run gets (``harness.py`` does the in-process part):
  * ``python -I`` (no PYTHON* variables, no user site, no script dir on sys.path) in a fresh
    temporary working directory, removed afterwards;
  * a scrubbed environment: PATH, LANG/LC_ALL, HOME/TMPDIR (= the work dir), thread counts;
    nothing else from the trainer's environment;
  * rlimits: address space (RLIMIT_AS), CPU seconds, file size (RLIMIT_FSIZE: also the output
    cap, since stdout/stderr are files), processes (RLIMIT_NPROC), no core dumps;
  * its own session/process group, SIGKILLed as a group at the deadline; the parent waits on a
    pidfd, so it kills before reaping (a reaped leader's pgid could be reused);
  * stdin from a file (a nonce line for the function harness, the test input for stdio);
  * when ``isolation`` finds ``unshare`` usable: new network namespace (no network, not even
    loopback), new PID namespace with ``--kill-child`` (the harness is PID 1: when it dies the
    kernel kills every process it left behind, even ones that called setsid) and a private
    /proc (other processes, including the trainer and its environment, are invisible);
  * when the trainer runs as root: the code runs as ``sandbox_uid`` (default nobody), so
    RLIMIT_NPROC applies (root ignores it), files outside world-writable places cannot be
    written, and the trainer cannot be signalled.

Threat model, honestly: this stops accidents and reward-hacking-grade behaviour of a policy
(infinite loops, fork and memory bombs, huge output, early exit, exiting the interpreter,
killing the parent, reading the trainer's environment, writing into the run directory,
network calls where namespaces work). It is NOT a security boundary against a determined
attacker: same kernel, no seccomp filter, world-writable /tmp and /dev/shm stay writable
(each file capped by RLIMIT_FSIZE, not their number), the filesystem is readable as the
sandbox uid sees it, RLIMIT_NPROC is counted per uid and so shared by the samples running at
once, and the nonce that marks a finished test run lives in the sandboxed process's memory
(code that inspects the harness's frames can find it). A candidate can also return an object
whose ``__eq__`` always says True; the harness does not defend against that. Without root
(no uid switch) the process limit counts all of the user's processes and files the user
can write are writable; without ``unshare`` there is no network or PID isolation. Run
untrusted code from the open internet in a VM or gVisor container.
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HARNESS = Path(__file__).with_name("harness.py")
_UNSHARE_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024
    output_bytes: int = 8 * 2**20
    processes: int = 64


@dataclass(frozen=True)
class RunResult:
    """``returncode`` is negative for a signal (as in subprocess); None only if it never ran."""

    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: bytes
    stderr: bytes
    reports: list[dict]


@lru_cache(maxsize=4)
def isolation_prefix(mode: str = "auto") -> tuple[str, ...]:
    """The ``unshare`` command prefix that works here (probed once), or () for none.

    ``mode``: ``auto`` (use it when it works), ``none``, ``require`` (error when it does not).
    """
    if mode not in ("auto", "none", "require"):
        raise ValueError(f"verifier.isolation must be auto, none or require, got {mode!r}")
    if mode == "none":
        return ()
    unshare = shutil.which("unshare")
    candidates = []
    if unshare:
        if os.geteuid() == 0:
            candidates.append((unshare, *_UNSHARE_FLAGS))
        candidates.append((unshare, "--user", "--map-root-user", *_UNSHARE_FLAGS))
    for prefix in candidates:
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    if mode == "require":
        raise RuntimeError(
            "verifier.isolation=require but no usable `unshare` (util-linux; needs root or unprivileged "
            "user namespaces). Set verifier.isolation=auto to run without network/PID isolation."
        )
    return ()


def _read_capped(path: Path, cap: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(cap)


def _parse_reports(raw: bytes, nonce: str) -> list[dict]:
    reports = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        head, _, body = line.partition(" ")
        if head != nonce:
            continue  # not written by the harness (or from a forged line without the nonce)
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if isinstance(record, dict):
            reports.append(record)
    return reports


def _wait_then_kill_group(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``proc`` to exit (without reaping it), then SIGKILL its
    process group and reap. True if the deadline passed."""
    timed_out = True
    try:
        with_pidfd = hasattr(os, "pidfd_open")
        if with_pidfd:
            fd = os.pidfd_open(proc.pid)
            try:
                timed_out = not select.select([fd], [], [], max(timeout_s, 0.0))[0]
            finally:
                os.close(fd)
        else:  # poll without reaping
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    timed_out = False
                    break
                time.sleep(0.005)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is not reaped yet: its pgid is ours
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return timed_out


_PROBE = "import socket, json, math, re, collections, heapq, hashlib, fractions, decimal, typing\nprint('ok')\n"


class Sandbox:
    """Runs ``harness.py`` on a program: ``mode`` is ``function`` or ``stdio``.

    ``python``: the interpreter for the untrusted code. None picks the first of the trainer's
    own interpreter and the system ``python3`` that can import the standard library *as the
    sandbox uid* (a pyenv/conda Python under a 0700 /root cannot), probed once.
    """

    def __init__(
        self,
        limits: Limits = Limits(),
        isolation: str = "auto",
        sandbox_uid: int | None = 65534,
        python: str | None = None,
    ) -> None:
        self.limits, self.isolation, self.requested_python = limits, isolation, python
        # Switching uid needs root; without it the limits still apply, but as the same user.
        self.uid = sandbox_uid if (sandbox_uid is not None and os.geteuid() == 0) else None
        self._python: str | None = None

    @property
    def python(self) -> str:
        if self._python is None:
            candidates = [self.requested_python] if self.requested_python else [sys.executable, "/usr/bin/python3"]
            why = ""
            for candidate in candidates:
                self._python = candidate
                try:
                    probe = self.run("stdio", _PROBE, timeout_s=20)
                except OSError as error:
                    why = str(error)
                    continue
                if probe.stdout.strip() == b"ok":
                    return candidate
                why = probe.stderr.decode(errors="replace")[-300:]
            self._python = None
            raise RuntimeError(
                f"no Python in {candidates} can import the standard library as the sandbox uid {self.uid} "
                f"(last try: {why!r}). Set verifier.python to an "
                "interpreter that uid can read, or verifier.sandbox_uid=null (runs the code as this user)."
            )
        return self._python

    def run(
        self,
        mode: str,
        program: str,
        *,
        stdin: bytes = b"",
        timeout_s: float,
        test: str | None = None,
        entry_point: str | None = None,
        test_timeout_s: float | None = None,
        nonce: str = "",
    ) -> RunResult:
        box = Path(tempfile.mkdtemp(prefix="cipo-sandbox-"))
        try:
            return self._run_in(box, mode, program, stdin, timeout_s, test, entry_point, test_timeout_s, nonce)
        finally:
            shutil.rmtree(box, ignore_errors=True)

    def _run_in(self, box, mode, program, stdin, timeout_s, test, entry_point, test_timeout_s, nonce) -> RunResult:
        # box/ is traversable but not listable; its files are the parent's (0600) and are read by
        # the harness before it drops privileges. Only box/work belongs to the sandbox uid.
        box.chmod(0o711)
        work = box / "work"
        work.mkdir(mode=0o700)
        if self.uid is not None:
            os.chown(work, self.uid, self.uid)
        (box / "solution.py").write_text(program, encoding="utf-8")
        if test is not None:
            (box / "test.py").write_text(test, encoding="utf-8")
        (box / "stdin").write_bytes(stdin)
        config = {
            "mode": mode,
            "program": str(box / "solution.py"),
            "test": str(box / "test.py") if test is not None else None,
            "entry_point": entry_point,
            "test_timeout_s": test_timeout_s or timeout_s,
            "uid": self.uid,
            "gid": self.uid,
            "limits": {
                "memory_bytes": self.limits.memory_mb * 2**20,
                "cpu_s": math.ceil(timeout_s) + 1,
                "file_bytes": self.limits.output_bytes,
                "processes": self.limits.processes,
            },
        }
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(work),
            "TMPDIR": str(work),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        with (
            open(box / "stdin", "rb") as stdin_file,
            open(box / "stdout", "wb") as out,
            open(box / "stderr", "wb") as err,
            open(box / "result", "wb") as result,
        ):
            config["result_fd"] = result.fileno()
            command = [*isolation_prefix(self.isolation), self.python, "-I", str(HARNESS), json.dumps(config)]
            started = time.monotonic()
            proc = subprocess.Popen(
                command,
                cwd=work,
                env=env,
                stdin=stdin_file,
                stdout=out,
                stderr=err,
                pass_fds=(result.fileno(),),
                start_new_session=True,
            )
            timed_out = _wait_then_kill_group(proc, timeout_s)
            seconds = time.monotonic() - started
        cap = self.limits.output_bytes
        return RunResult(
            returncode=proc.returncode,
            timed_out=timed_out,
            seconds=seconds,
            stdout=_read_capped(box / "stdout", cap),
            stderr=_read_capped(box / "stderr", cap),
            reports=_parse_reports(_read_capped(box / "result", cap), nonce),
        )
