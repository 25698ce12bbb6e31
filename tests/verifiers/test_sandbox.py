"""Sandbox: scrubbed environment, output cap, the work dir, the deadline kill, isolation and cgroup
probes, interpreter choice, per-sample uids; the nonce decides which report lines count."""

from __future__ import annotations

import json
import os
import time

import pytest

from cipo.verifiers.sandbox import Limits, Sandbox, namespaces_unavailable, parse_reports, stdio_output

ENV_KEYS = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch needs root")


@pytest.fixture(scope="module", params=["auto", "none"])
def sandbox(request):
    return Sandbox(Limits(memory_mb=512, output_bytes=64 * 1024), isolation=request.param)


def one(sandbox, code: str, given: str = "", seconds: float = 10) -> dict:
    run = sandbox.run_stdio(code, [given], seconds, seconds)
    [record] = [r for r in run.reports if "test" in r]
    return record


def test_environment_is_scrubbed(sandbox, monkeypatch):
    monkeypatch.setenv("CIPO_FAKE_SECRET", "hunter2")
    record = one(sandbox, "import json, os\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(stdio_output(record))
    assert set(env) <= ENV_KEYS | {"LC_CTYPE"}  # Python's UTF-8 mode may add LC_CTYPE
    assert "hunter2" not in json.dumps(env)
    assert env["HOME"] == env["TMPDIR"] and env["HOME"].endswith("/work")


def test_work_dir_is_fresh_and_removed(sandbox):
    code = "import os\nprint(os.getcwd())\nprint(os.listdir('.'))\nopen('scratch.txt', 'w').write('x')"
    cwd, listing = stdio_output(one(sandbox, code)).decode().splitlines()
    assert listing == "[]" and not os.path.exists(cwd)  # on disk and removed, or on the sample's own tmpfs


def test_output_is_capped(sandbox):
    record = one(sandbox, "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)")
    assert len(stdio_output(record)) <= 64 * 1024 and record["returncode"] != 0 and not record["timed_out"]


def test_stdin_is_fed_and_every_test_gets_a_fresh_process(sandbox):
    code = "import os, sys\nprint(sys.stdin.read().upper(), os.getpid())"
    run = sandbox.run_stdio(code, ["abc", "def"], 10, 20)
    (first, one), (second, two) = [stdio_output(r).split() for r in run.reports if "test" in r]
    assert (first, second) == (b"ABC", b"DEF") and one != two


def test_the_sample_deadline_covers_every_test(sandbox):
    started = time.monotonic()
    run = sandbox.run_stdio("import time\ntime.sleep(60)", ["", "", ""], 1.0, 1.5)
    assert time.monotonic() - started < 8 and not run.timed_out
    records = [r for r in run.reports if "test" in r]
    assert records[0]["timed_out"] and all(r.get("timed_out") or r.get("status") == "timeout" for r in records)
    assert records[-1] == {"test": 2, "status": "timeout", "error": "no time left for test 2"}


def test_reports_need_the_nonce():
    raw = b'abc {"done": true}\nabd {"x": 1}\nabc not-json\n {"y": 2}\nabc [1]\n'
    assert parse_reports(raw, "abc") == [{"done": True}]
    assert parse_reports(raw, "") == []  # an empty nonce matches nothing (once it matched " {...}")


def test_bad_modes_name_the_key():
    with pytest.raises(ValueError, match=r"verifier\.isolation"):
        Sandbox(isolation="sometimes")
    with pytest.raises(ValueError, match=r"verifier\.cgroups"):
        Sandbox(cgroups="sometimes")


@needs_root
def test_each_sample_runs_as_a_uid_of_its_own(sandbox):
    code = "import os\nprint(os.getuid(), os.getgid(), os.getgroups())"
    first = stdio_output(one(sandbox, code)).split()
    assert int(first[0]) == int(first[1]) > sandbox.uid_base and first[2] == b"[]"


@needs_root
def test_protections_are_probed_and_reported(sandbox, caplog):
    fresh = Sandbox(Limits(), isolation=sandbox.isolation)
    with caplog.at_level("INFO", logger="cipo.verifiers.sandbox"):
        _ = fresh.python
    assert "code sandbox:" in caplog.text and fresh.protections["uid"]
    if sandbox.isolation == "auto" and not namespaces_unavailable():
        assert fresh.protections["namespaces"] and fresh.protections["private_tmp"]
        assert "/work" in fresh.protections["hidden"]
    else:
        assert fresh.protections["namespaces"] is None and "runs without" in caplog.text


@pytest.mark.parametrize("isolation", ["none", "auto"])
def test_unusable_interpreter_is_a_clear_error(isolation):
    sandbox = Sandbox(python="/nonexistent/python3", isolation=isolation)
    with pytest.raises(RuntimeError, match=r"verifier\.python"):
        _ = sandbox.python
