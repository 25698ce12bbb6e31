"""Hostile programs, one property each: the right status, quickly, and the test process (the
trainer) survives and keeps verifying. Sandbox coverage and limits: src/cipo/verifiers/sandbox.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cipo.code_reference import function_reference, stdio_reference
from cipo.types import VerifyStatus
from cipo.verifiers.code import CodeVerifier
from cipo.verifiers.sandbox import namespaces_unavailable

S = VerifyStatus
SAMPLE_S, TEST_S = 5.0, 1.5
REF = function_reference("def f(x):\n", "def check(candidate):\n    assert candidate(1) == 2\n", "f")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch (and RLIMIT_NPROC) needs root")
needs_isolation = pytest.mark.skipif(bool(namespaces_unavailable()), reason="namespaces not usable here")


@pytest.fixture(scope="module")
def verifier():
    verifier = CodeVerifier(
        num_workers=2, sample_timeout_s=SAMPLE_S, test_timeout_s=TEST_S, memory_mb=512, max_output_bytes=2**20
    )
    yield verifier
    verifier.close()


def _sample_uids(verifier) -> set[str]:
    """The uids this verifier's samples run as: one per worker thread (see sandbox.py)."""
    threads = [t for t in threading.enumerate() if t.name.startswith("cipo-code-verifier")]
    return {str(verifier.sandbox.uid_base + 1 + t.native_id) for t in threads}


def _sandbox_processes(uids: set[str]) -> dict[int, bytes]:
    """Processes running as one of ``uids``."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            real_uid = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("Uid:"))
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if real_uid in uids:
            found[int(status.parent.name)] = cmdline[:120]
    return found


def run(verifier, code: str, ref: str = REF):
    started = time.monotonic()
    [result] = verifier([f"```python\n{code}\n```"], [ref])
    seconds = time.monotonic() - started
    # the trainer is alive (we are running) and the verifier still works afterwards
    after = verifier(["```python\ndef f(x):\n    return 2 * x\n```"], [REF])[0]
    assert after.status == S.PASSED, after
    return result, seconds


def test_infinite_loop_is_a_timeout(verifier):
    result, seconds = run(verifier, "def f(x):\n    while True:\n        pass")
    assert result.status == S.TIMEOUT and seconds < TEST_S + 3


def test_loop_that_swallows_the_alarm_is_killed_at_the_sample_deadline(verifier):
    code = """def f(x):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass"""
    result, seconds = run(verifier, code)
    assert result.status == S.TIMEOUT and seconds < SAMPLE_S + 3


@needs_root
def test_fork_bomb_is_contained(verifier):
    code = "import os\ndef f(x):\n    while True:\n        os.fork()"
    result, seconds = run(verifier, code)
    assert result.status in (S.RUNTIME_ERROR, S.TIMEOUT) and seconds < SAMPLE_S + 3, result
    # nothing it forked survives the sample (the kernel may take a moment to reap a torn-down namespace)
    uids = _sample_uids(verifier)
    assert uids
    give_up = time.monotonic() + 5
    while _sandbox_processes(uids) and time.monotonic() < give_up:
        time.sleep(0.05)
    assert not _sandbox_processes(uids)


def test_memory_bomb_is_memory_exceeded(verifier):
    result, seconds = run(
        verifier, "def f(x):\n    chunks = []\n    while True:\n        chunks.append(bytearray(10**8))"
    )
    assert result.status == S.MEMORY_EXCEEDED and seconds < SAMPLE_S
    result, _ = run(verifier, "def f(x):\n    return len(bytearray(8 * 1024**3))")
    assert result.status == S.MEMORY_EXCEEDED


@needs_root
def test_writing_outside_the_work_dir_fails(verifier, tmp_path):
    targets = [tmp_path / "escaped.txt", Path.cwd() / "escaped-from-sandbox.txt"]
    paths = [str(t) for t in targets]
    code = f"def f(x):\n    for path in {paths!r}:\n        open(path, 'w').write('pwned')\n    return 2"
    result, _ = run(verifier, code)
    # refused, or (inside the sample's mount namespace) not even there to write to
    assert result.status == S.RUNTIME_ERROR and (
        "PermissionError" in result.feedback or "FileNotFound" in result.feedback
    )
    assert not any(t.exists() for t in targets)


def test_killing_the_parent_does_not_reach_the_trainer(verifier):
    code = f"""import os, signal
def f(x):
    for attempt in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                    lambda: os.killpg(os.getpgid(0), signal.SIGKILL),
                    lambda: os.kill({os.getpid()}, signal.SIGKILL),
                    lambda: os.kill(-1, signal.SIGKILL)):
        try:
            attempt()
        except OSError:
            pass
    return 2"""
    result, seconds = run(verifier, code)
    assert result.status in (S.PASSED, S.RUNTIME_ERROR) and seconds < SAMPLE_S
    assert not result.success or result.status == S.PASSED


def test_environment_secrets_are_not_visible(verifier, monkeypatch):
    monkeypatch.setenv("CIPO_FAKE_SECRET", "hunter2-fake-secret")
    code = """import os, glob
def f(x):
    seen = [repr(dict(os.environ))]
    for path in glob.glob('/proc/*/environ'):
        try:
            seen.append(open(path, 'rb').read().decode('latin-1'))
        except OSError:
            pass
    return '\\n'.join(seen)"""
    ref = function_reference("", "def check(candidate):\n    assert 'hunter2' in candidate(0)\n", "f")
    result, _ = run(verifier, code, ref)
    assert result.status == S.FAILED  # the program ran fine and found no secret


def test_huge_output_is_capped(verifier):
    result, seconds = run(verifier, "def f(x):\n    while True:\n        print('x' * 100000)")
    assert result.status == S.RUNTIME_ERROR and "File too large" in result.feedback
    assert seconds < SAMPLE_S


@pytest.mark.parametrize(
    "code",
    [
        "import sys\nsys.exit(0)\ndef f(x):\n    return 2",
        "import os\nos._exit(0)\ndef f(x):\n    return 2",
        "import sys\ndef f(x):\n    sys.exit(0)",
        "import os\ndef f(x):\n    os._exit(0)",
    ],
    ids=["sys.exit-before", "os._exit-before", "sys.exit-in-test", "os._exit-in-test"],
)
def test_exiting_before_the_tests_finish_is_not_a_pass(verifier, code):
    result, _ = run(verifier, code)
    assert result.status == S.RUNTIME_ERROR and not result.success and result.reward == 0.0


def test_recursion_bomb(verifier):
    plain, _ = run(verifier, "def f(x):\n    return f(x + 1)")
    assert plain.status == S.RUNTIME_ERROR and "RecursionError" in plain.feedback
    # without Python's limit, recursion through a C function overflows the C stack: SIGSEGV
    code = "import sys\nsys.setrecursionlimit(10**8)\ndef f(x):\n    return list(map(f, [x + 1]))"
    deep, seconds = run(verifier, code)
    assert deep.status == S.RUNTIME_ERROR and "SIGSEGV" in deep.feedback and seconds < SAMPLE_S
    # pure-Python frames live on the heap (3.11): that one ends at the time or memory limit
    deep, seconds = run(verifier, "import sys\nsys.setrecursionlimit(10**8)\ndef f(x):\n    return f(x + 1)")
    assert deep.status in (S.TIMEOUT, S.MEMORY_EXCEEDED, S.RUNTIME_ERROR) and seconds < SAMPLE_S + 3


@needs_isolation
def test_no_network(verifier):
    code = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\nprint('connected')"
    result, _ = run(verifier, code, stdio_reference(["\n"], ["connected"]))
    assert result.status == S.RUNTIME_ERROR and "unreachable" in result.feedback.lower()


def test_stdio_infinite_loop_uses_the_per_test_limit(verifier):
    ref = stdio_reference(["1\n", "2\n"], ["1", "2"])
    result, seconds = run(verifier, "while True:\n    pass", ref)
    assert result.status == S.TIMEOUT and result.score == 0.0 and seconds < SAMPLE_S + 3
