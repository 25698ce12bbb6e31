"""Run one code sample (an untrusted program and the reference's tests) in a sandbox of its own;
the trainer never blocks past the deadline and never holds more than the output cap in memory.

One launcher per trainer process (``sandbox_process.py``, ``isolated/launcher.py``) forks, for
each sample, the *judge* (trusted, root at start): init of fresh PID, mount, IPC and network
namespaces (entered with unshare(2); with a user namespace when the trainer is not root). The
judge runs the program in a process of its own as the sample's uid and judges every test
itself: function style, the reference's tests run in the judge and call the program over a
socket, getting back plain values only (``isolated/remote.py``); stdin/stdout style, a fresh
interpreter per test and its output compared here. Details: ``isolated/judge.py``,
``isolated/confine.py``, ``cgroups.py``.

What the project's machines allow (CI runs on the same kind; each protection is probed at the
first sample and logged): the trainer runs as root; cgroup v1 memory and pids hierarchies are
writable (v2 is mounted at /sys/fs/cgroup/unified without controllers: the v2 path is written
but not run here); unshare of mount, PID, IPC, network and user namespaces works; /tmp,
/var/tmp, /run/lock and /dev/shm are the world-writable folders; no Yama ptrace restrictions.

Contained, each with a test (tests/verifiers/test_code_{adversarial,reward_hacks,judge_attacks}.py,
test_sandbox_{containment,unprivileged}.py), with namespaces and, marked (f), also in the
fallback without them (``isolation=none``, or a kernel that refuses):
  * reward without a solution (f): the program cannot reach the judge (another uid, or the
    untraceable init of its PID namespace), so patching builtins or the runner, forging result
    lines (the trainer reads only lines carrying a per-sample nonce that only the judge knows,
    in both modes), exiting early, threads and exit hooks, malformed replies, and returned
    objects whose ``__eq__`` or ``__bool__`` lie (decoded as plain built-ins, or refused) give
    no pass; the reference's own helpers (from its prompt) are used, not the program's copies;
  * reading the tests (f): the judge reads them only after the program's process was forked,
    never writes them where the program can read, and stdio's expected outputs never enter
    the sandbox;
  * other samples (f): every sample has its own uid (``sandbox_uid`` + 1 + the trainer thread's
    id), so it can signal, trace or read ``/proc/<pid>/fd`` of nothing but its own processes;
  * leftovers: the judge is PID 1, so every process of the sample dies with it, setsid and
    double forks included; it exits when the trainer dies (it watches a pidfd of the trainer).
    (f): a ``kill(-1)`` sent as the sample's uid once the judge has ended;
  * memory and processes: one cgroup per trainer thread caps a sample's processes together
    (memory including its tmpfs files, pids) on top of RLIMIT_AS and RLIMIT_NPROC each.
    Without cgroups: per process only, so up to RLIMIT_AS x RLIMIT_NPROC;
  * scratch space: /tmp and /dev/shm are a private tmpfs (``scratch_mb``, ``scratch_files``)
    freed with the sample; SysV IPC is private; no network; the top-level folders Python does
    not need (/work, /root, /home, /var, /run, /mnt, /opt, ...) are hidden, so data sets, run
    folders and the trainer's files cannot be read. (f): none of this; a shared /tmp with each
    file capped by RLIMIT_FSIZE, and the file system readable as the sample's uid sees it;
  * time: per-test alarms, the sample deadline, RLIMIT_CPU, and a last kill here.

Not contained: the kernel is shared and there is no syscall filter (a kernel bug is an escape);
files any uid may read outside the hidden folders (/usr, /etc, /sys) stay readable; CPU is not
capped beyond the time limits; without root there is no uid switch and no cgroup (the program
can send the judge the one signal it handles, SIGALRM, which fails the test, but cannot trace
it); the fallback's final kill cannot tell a sample from a process with the same uid in another
PID namespace (containers sharing uids). Run code from the open internet in a VM or gVisor.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from cipo.verifiers.cgroups import CgroupLayout, SampleCgroups, find_layout
from cipo.verifiers.sandbox_process import TRAINER_FD, Launcher, probe_namespaces, trainer_pidfd

log = logging.getLogger(__name__)
# Above the uid ranges of containers (systemd-nspawn ends at 1878982656, /etc/subuid ranges lower).
DEFAULT_UID_BASE = 1_900_000_000
_PROBE = "import socket, json, math, re, collections, heapq, hashlib, fractions, decimal, typing\nprint('ok')\n"


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024
    output_bytes: int = 8 * 2**20
    processes: int = 64
    scratch_mb: int = 64
    scratch_files: int = 4096


@dataclass(frozen=True)
class SampleRun:
    """What the judge reported (lines with this sample's nonce), and how the judge itself ended."""

    reports: list[dict] = field(default_factory=list)
    timed_out: bool = False  # the judge itself ran past the sample deadline and was killed
    returncode: int | None = None
    seconds: float = 0.0
    stderr: str = ""


@lru_cache(maxsize=4)
def namespaces_unavailable(python: str = "/usr/bin/python3") -> str | None:
    """None when samples get their own namespaces here (as this user), else why not."""
    return probe_namespaces(python)


@lru_cache(maxsize=1)
def cgroup_layout() -> CgroupLayout | None:
    return find_layout()


def parse_reports(raw: bytes, nonce: str) -> list[dict]:
    """The JSON records of lines ``<nonce> <json>``; every other line is ignored."""
    reports = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        head, _, body = line.partition(" ")
        if not nonce or head != nonce:
            continue
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if isinstance(record, dict):
            reports.append(record)
    return reports


class Sandbox:
    """Runs code samples: ``run_function`` (HumanEval style) and ``run_stdio``.

    ``python``: the interpreter for the judge and the program. None picks the first of the
    trainer's own interpreter and the system ``python3`` that works as the sandbox uids (a
    pyenv/conda Python under a 0700 /root does not), probed once with every protection.
    ``isolation``: namespaces auto (when they work), none, require. ``cgroups``: the same.
    """

    def __init__(
        self,
        limits: Limits = Limits(),
        isolation: str = "auto",
        sandbox_uid: int | None = DEFAULT_UID_BASE,
        python: str | None = None,
        cgroups: str = "auto",
    ) -> None:
        for key, value in (("isolation", isolation), ("cgroups", cgroups)):
            if value not in ("auto", "none", "require"):
                raise ValueError(f"verifier.{key} must be auto, none or require, got {value!r}")
        self.limits, self.isolation, self.requested_python, self.cgroups = limits, isolation, python, cgroups
        # Switching uid needs root; without it the limits still apply, but as the same user.
        self.uid_base = sandbox_uid if (sandbox_uid is not None and os.geteuid() == 0) else None
        self.launcher: Launcher | None = None
        self._private_tmp = False
        self._cgroups = SampleCgroups()
        self.protections: dict = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "launcher": None, "protections": {}}

    def close(self) -> None:
        """Stop the launcher and remove the sample cgroups (both come back on the next sample)."""
        if self.launcher is not None:
            self.launcher.close()
        self.launcher = None
        self._cgroups.remove_all()

    # --- setup -----------------------------------------------------------------------------

    @property
    def python(self) -> str:
        if self.launcher is None:
            self._choose_python()
        return self.launcher.python

    def _layout(self) -> CgroupLayout | None:
        layout = cgroup_layout() if self.cgroups != "none" else None
        if layout is None and self.cgroups == "require":
            raise RuntimeError("verifier.cgroups=require but no writable cgroup v1/v2 memory hierarchy (needs root)")
        return layout

    def _choose_python(self) -> None:
        candidates = [self.requested_python] if self.requested_python else [sys.executable, "/usr/bin/python3"]
        why = ""
        for candidate in candidates:
            launcher = Launcher(candidate, self.isolation)
            try:
                launcher.start()
            except OSError as error:
                why = str(error)
                continue
            if self.isolation == "require" and not launcher.namespaces:
                launcher.close()
                raise RuntimeError(f"verifier.isolation=require but namespaces are not usable here: {launcher.why}")
            self.launcher = launcher
            for private_tmp in [True, False] if launcher.namespaces else [False]:
                self._private_tmp = private_tmp
                probe = self._run("stdio", {"program": _PROBE, "inputs": [""]}, 20, 20, probe=True)
                tests = [r for r in probe.reports if "test" in r]
                if tests and stdio_output(tests[0]) == b"ok\n":
                    self._log_protections(next((r["protections"] for r in probe.reports if "protections" in r), {}))
                    return
                why = (tests[0].get("stderr") or tests[0].get("error", "") if tests else probe.stderr)[-300:]
            self.launcher = None
            launcher.close()
        raise RuntimeError(
            f"no Python in {candidates} can run the sandbox as the sandbox uids (from {self.uid_base}) "
            f"(last try: {why!r}). Set verifier.python to an interpreter any uid can read, or "
            "verifier.sandbox_uid=null (runs the code as this user)."
        )

    def _log_protections(self, found: dict) -> None:
        layout = self._layout()
        self.protections = {
            "uid": f"a uid per sample from {self.uid_base + 1}" if self.uid_base is not None else None,
            "namespaces": "pid, net, ipc, mount" if found.get("pid_namespace") else None,
            "private_tmp": f"{self.limits.scratch_mb} MB tmpfs on /tmp, /dev/shm" if found.get("private_tmp") else None,
            "hidden": ", ".join(found.get("hidden") or []) or None,
            "cgroup": layout.describe() if layout is not None else None,
        }
        missing = sorted(key for key, value in self.protections.items() if value is None)
        log.info("code sandbox: %s", "; ".join(f"{k}: {v}" for k, v in self.protections.items() if v))
        if missing:
            why = f" (namespaces: {self.launcher.why})" if not self.launcher.namespaces else ""
            log.warning(
                "code sandbox runs without %s%s; see the threat model in cipo/verifiers/sandbox.py", missing, why
            )

    # --- one sample ------------------------------------------------------------------------

    def run_function(
        self, program: str, prompt: str, test: str, entry_point: str, test_timeout_s: float, sample_timeout_s: float
    ) -> SampleRun:
        secret = {"program": program, "prompt": prompt, "test": test, "entry_point": entry_point}
        return self._run("function", secret, test_timeout_s, sample_timeout_s)

    def run_stdio(self, program: str, inputs: list[str], test_timeout_s: float, sample_timeout_s: float) -> SampleRun:
        return self._run("stdio", {"program": program, "inputs": list(inputs)}, test_timeout_s, sample_timeout_s)

    def _run(self, mode: str, secret: dict, test_timeout_s: float, sample_timeout_s: float, probe=False) -> SampleRun:
        if not probe:
            _ = self.python  # the launcher, started and probed once
        launcher = self.launcher
        uid = self.uid_base + 1 + threading.get_native_id() if self.uid_base is not None else None
        limits = self.limits
        layout = self._layout()
        cgroup = self._cgroups.for_this_thread(layout, (limits.memory_mb + limits.scratch_mb) * 2**20, limits.processes)
        box = None if self._private_tmp else tempfile.mkdtemp(prefix="cipo-sandbox-")
        settings = {
            "mode": mode,
            "uid": uid,
            "judge_uid": self.uid_base,
            "limits": {
                "memory_bytes": limits.memory_mb * 2**20,
                "cpu_s": int(sample_timeout_s) + 2,
                "file_bytes": limits.output_bytes,
                "processes": limits.processes,
            },
            "scratch": {"bytes": limits.scratch_mb * 2**20, "files": limits.scratch_files}
            if self._private_tmp
            else None,
            "hide": True,
            "box": box,
            "cgroups": [str(folder) for folder in cgroup.folders] if cgroup else [],
            "test_timeout_s": test_timeout_s,
            "sample_timeout_s": sample_timeout_s,
            "trainer_fd": TRAINER_FD if trainer_pidfd() is not None else None,
            "probe": probe,
        }
        nonce = secrets.token_hex(16)
        try:
            finished = launcher.run(
                [settings, {**secret, "nonce": nonce}],
                deadline_s=sample_timeout_s + 5.0,
                output_cap=(limits.output_bytes * 4 // 3 + 65536) * (len(secret.get("inputs") or [None]) + 1),
            )
        finally:
            if (
                uid is not None and not launcher.namespaces
            ):  # no PID namespace: kill what still runs as the sample's uid
                subprocess.run(
                    ["kill", "-s", "KILL", "--", "-1"], user=uid, group=uid, extra_groups=[], capture_output=True
                )
            if cgroup is not None:
                cgroup.empty()
            if box is not None:
                shutil.rmtree(box, ignore_errors=True)
        return SampleRun(
            reports=parse_reports(finished.stdout, nonce),
            timed_out=finished.timed_out,
            returncode=finished.returncode,
            seconds=finished.seconds,
            stderr=finished.stderr.decode("utf-8", errors="replace")[-2000:],
        )


def stdio_output(record: dict) -> bytes:
    """A stdin/stdout test's output as the program wrote it (capped at ``output_bytes``)."""
    return base64.b64decode(record.get("stdout") or "")
