"""Sandbox: scrubbed environment, output cap, process-group kill at the deadline, isolation
probe, interpreter choice; the nonce decides which report lines count."""

from __future__ import annotations

import json
import os
import time

import pytest

from cipo.verifiers.sandbox import Limits, Sandbox, _parse_reports, isolation_prefix


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(Limits(memory_mb=512, output_bytes=64 * 1024))


def test_environment_is_scrubbed(sandbox, monkeypatch):
    monkeypatch.setenv("CIPO_FAKE_SECRET", "hunter2")
    run = sandbox.run("stdio", "import json, os\nprint(json.dumps(dict(os.environ)))", timeout_s=10)
    env = json.loads(run.stdout)
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"} | {
        "MKL_NUM_THREADS",
        "LC_CTYPE",  # Python's UTF-8 mode may add it
    }
    assert "hunter2" not in run.stdout.decode()
    assert env["HOME"] == env["TMPDIR"] and env["HOME"].endswith("/work")


def test_work_dir_is_fresh_and_removed(sandbox):
    code = "import os\nprint(os.getcwd())\nprint(os.listdir('.'))\nopen('scratch.txt', 'w').write('x')"
    run = sandbox.run("stdio", code, timeout_s=10)
    cwd, listing = run.stdout.decode().splitlines()
    assert listing == "[]" and not os.path.exists(cwd)


def test_output_is_capped(sandbox):
    run = sandbox.run("stdio", "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", timeout_s=10)
    assert len(run.stdout) <= 64 * 1024 and run.returncode != 0 and not run.timed_out


def test_stdin_is_fed(sandbox):
    run = sandbox.run("stdio", "import sys\nprint(sys.stdin.read().upper())", stdin=b"abc", timeout_s=10)
    assert run.stdout == b"ABC\n"


def test_deadline_kills_the_whole_group_without_isolation(tmp_path):
    sandbox = Sandbox(Limits(), isolation="none", sandbox_uid=None)
    code = "import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nprint(p.pid, flush=True)\ntime.sleep(60)"
    started = time.monotonic()
    run = sandbox.run("stdio", code, timeout_s=1.5)
    assert run.timed_out and time.monotonic() - started < 6
    child = int(run.stdout.split()[0])
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or "Z" in open(f"/proc/{child}/stat").read().split()[2]


def test_reports_need_the_nonce():
    raw = b'abc {"done": true}\nabd {"x": 1}\nabc not-json\n {"y": 2}\nabc [1]\n'
    assert _parse_reports(raw, "abc") == [{"done": True}]
    assert _parse_reports(raw, "") == [{"y": 2}]


def test_isolation_modes():
    assert isolation_prefix("none") == ()
    with pytest.raises(ValueError, match=r"verifier\.isolation"):
        isolation_prefix("sometimes")
    prefix = isolation_prefix("auto")
    assert prefix == () or ("--net" in prefix and "--pid" in prefix)


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch needs root")
def test_runs_as_the_sandbox_uid(sandbox):
    run = sandbox.run("stdio", "import os\nprint(os.getuid(), os.getgid(), os.getgroups())", timeout_s=10)
    assert run.stdout.split()[:2] == [b"65534", b"65534"]


@pytest.mark.parametrize("isolation", ["none", "auto"])
def test_unusable_interpreter_is_a_clear_error(isolation):
    sandbox = Sandbox(python="/nonexistent/python3", isolation=isolation)
    with pytest.raises(RuntimeError, match=r"verifier\.python"):
        _ = sandbox.python
