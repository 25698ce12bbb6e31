"""The trainer's end of the sandbox launcher (``isolated/launcher.py``): start it once per
process, hand it each sample's descriptors, wait for the sample, never past a deadline.

A sample's request, reports and error output are unnamed temporary files (no path anyone could
open), so a large request cannot block on a pipe and the reports are read once the sample has
ended. The launcher and every sample hold a pidfd of this process, which becomes readable when
the trainer dies: they exit then, and with a sample's init every process of the sample, even
when the trainer was SIGKILLed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from cipo.verifiers.isolated import wire

BOOT = Path(__file__).with_name("isolated") / "boot.py"
TRAINER_FD = 3  # where a sample finds the trainer's pidfd (isolated/launcher.py)
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_pidfds: dict[int, int | None] = {}
_pidfd_lock = threading.Lock()


@dataclass(frozen=True)
class Finished:
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: bytes
    stderr: bytes


def trainer_pidfd() -> int | None:
    """A pidfd of this process (one per process: a forked worker makes its own), or None."""
    pid = os.getpid()
    with _pidfd_lock:
        if pid not in _pidfds:
            try:
                _pidfds[pid] = os.pidfd_open(pid)
            except (AttributeError, OSError):  # a kernel before 5.3
                _pidfds[pid] = None
        return _pidfds[pid]


def probe_namespaces(python: str) -> str | None:
    """None when a sample can get its own namespaces here, else why not (for tests and logs)."""
    done = subprocess.run([python, "-I", str(BOOT), "probe"], capture_output=True, env=ENV, timeout=60)
    try:
        return json.loads(done.stdout)["why"]
    except (ValueError, KeyError, TypeError):
        return f"the probe failed: {done.stderr.decode(errors='replace')[-300:]}"


def _close(control: socket.socket, process: subprocess.Popen) -> None:
    control.close()  # the launcher exits on end of stream
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Launcher:
    """One launcher process; ``run`` is safe to call from several threads at once."""

    def __init__(self, python: str, isolation: str) -> None:
        self.python, self.isolation = python, isolation
        self.namespaces, self.why = False, ""
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._owner = 0  # the pid that started it: a forked copy of the trainer starts its own
        self._finalizer = None

    def _ensure(self) -> socket.socket:
        if self._control is not None and self._owner == os.getpid():
            return self._control
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pidfd = trainer_pidfd()
        with theirs:
            process = subprocess.Popen(
                [self.python, "-I", str(BOOT), "launcher", str(theirs.fileno()), str(pidfd or -1), self.isolation],
                pass_fds=[theirs.fileno()] + ([pidfd] if pidfd is not None else []),
                stdin=subprocess.DEVNULL,
                env=ENV,
                cwd="/",
                start_new_session=True,
            )
        ours.settimeout(60)
        try:
            hello = json.loads(ours.recv(1 << 16) or b"null")
        except (OSError, ValueError):
            hello = None
        if not isinstance(hello, dict):
            _close(ours, process)
            raise OSError(f"the sandbox launcher ({self.python}) did not start (exit code {process.poll()})")
        ours.settimeout(None)
        self.namespaces, self.why = bool(hello.get("namespaces")), hello.get("why") or ""
        self._control, self._owner = ours, os.getpid()
        self._finalizer = weakref.finalize(self, _close, ours, process)
        return ours

    def close(self) -> None:
        if self._finalizer is not None and self._owner == os.getpid():
            self._finalizer()
        self._control, self._finalizer = None, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lock": None, "_control": None, "_owner": 0, "_finalizer": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def run(self, frames: list[dict], deadline_s: float, output_cap: int) -> Finished:
        """Run one sample (``frames``: settings, then the secret part) and wait for it."""
        with tempfile.TemporaryFile() as request, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            for frame in frames:
                wire.write_frame(request.fileno(), frame)
            os.lseek(request.fileno(), 0, os.SEEK_SET)
            started = time.monotonic()
            pid, pidfd = self._request({"op": "start"}, [request.fileno(), out.fileno(), err.fileno()])
            try:
                timed_out = not select.select([pidfd], [], [], max(deadline_s, 0.0))[0]
                if timed_out:
                    os.killpg(pid, signal.SIGKILL)  # not reaped until we ask: the group is still this sample's
            finally:
                os.close(pidfd)
                returncode = self._reap(pid)
            seconds = time.monotonic() - started
            error_size = os.fstat(err.fileno()).st_size
            return Finished(
                returncode=returncode,
                timed_out=timed_out,
                seconds=seconds,
                stdout=os.pread(out.fileno(), output_cap, 0),
                stderr=os.pread(err.fileno(), 65536, max(error_size - 65536, 0)),
            )

    def _request(self, message: dict, descriptors: list[int]) -> tuple[int, int]:
        for attempt in range(2):
            with self._lock:
                try:
                    control = self._ensure()
                    socket.send_fds(control, [json.dumps(message).encode()], descriptors)
                    reply, fds, _, _ = socket.recv_fds(control, 1 << 16, 1)
                    return int(json.loads(reply)["pid"]), fds[0]
                except (OSError, ValueError, KeyError, IndexError):
                    self.close()  # the launcher died: start a fresh one, once
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def _reap(self, pid: int) -> int | None:
        with self._lock:
            if self._control is None or self._owner != os.getpid():
                return None  # the launcher that started it is gone: init reaps the sample
            try:
                control = self._control
                control.send(json.dumps({"op": "reap", "pid": pid}).encode())
                return int(json.loads(control.recv(1 << 16))["returncode"])
            except (OSError, ValueError, KeyError):  # the launcher died meanwhile: init reaps the sample
                return None
