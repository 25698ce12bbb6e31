"""Containment: what a sample starts dies with its verdict, its memory and scratch space are
capped as a whole (not per process), and samples running at once cannot see or signal each other.
Each property is checked with the namespaces (auto) and, where the fallback promises it, without."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cipo.code_reference import function_reference
from cipo.types import VerifyStatus
from cipo.verifiers.code import CodeVerifier
from cipo.verifiers.sandbox import cgroup_layout

S = VerifyStatus
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="uid switch, cgroups and mounts need root")


def ref(test_body: str) -> str:
    return function_reference("def f(x):\n", f"def check(candidate):\n    {test_body}\n", "f")


def marked_processes(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def wait_until_gone(marker: str, seconds: float = 3.0) -> list[int]:
    give_up = time.monotonic() + seconds
    while marked_processes(marker) and time.monotonic() < give_up:
        time.sleep(0.05)
    return marked_processes(marker)


@pytest.fixture(scope="module", params=["auto", "none"])
def verifier(request):
    verifier = CodeVerifier(num_workers=2, sample_timeout_s=8, test_timeout_s=6, memory_mb=512, isolation=request.param)
    yield verifier
    verifier.close()


def run(verifier, code: str, reference: str):
    [result] = verifier([f"```python\n{code}\n```"], [reference])
    return result


def escapee(marker: str) -> str:
    """A program whose grandchild leaves the session and the process group, then sleeps on."""
    return f"""import os, time
def f(x):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp('sleep', ['sleep', '60', '0.{marker}'])
        os._exit(0)
    time.sleep(0.3)
    return 2 * x"""


@needs_root
def test_a_setsid_double_fork_dies_with_the_verdict(verifier):
    marker = str(random.randrange(10**9, 10**10))
    result = run(verifier, escapee(marker), ref("assert candidate(1) == 2"))
    assert result.status == S.PASSED, result  # the program is right; its leftovers must still die
    assert not wait_until_gone(marker, 2.0)


@needs_root
def test_a_sample_that_outlives_its_deadline_is_killed_whole(verifier):
    marker = str(random.randrange(10**9, 10**10))
    # the process that runs the program leaves the session too and ignores the per-test alarm
    # (as root it once outlived the deadline kill: dropping to the sandbox uid cleared its death signal)
    stubborn = (
        "    try:\n        os.setsid()\n    except OSError:\n        pass\n"
        "    while True:\n        try:\n            time.sleep(60)\n        except BaseException:\n            pass"
    )
    code = escapee(marker).replace("    time.sleep(0.3)", stubborn)
    started = time.monotonic()
    result = run(verifier, code, ref("assert candidate(1) == 2"))
    assert result.status == S.TIMEOUT and time.monotonic() - started < 14, result
    assert not wait_until_gone(marker, 2.0)


@needs_root
def test_nothing_survives_a_trainer_killed_mid_sample(tmp_path):
    marker = str(random.randrange(10**9, 10**10))
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    script = tmp_path / "trainer.py"
    script.write_text(
        "import sys\n"
        "from cipo.verifiers.code import CodeVerifier\n"
        "from cipo.code_reference import function_reference\n"
        "verifier = CodeVerifier(num_workers=1, sample_timeout_s=60, test_timeout_s=60)\n"
        "_ = verifier.sandbox.python\n"
        "print('ready', flush=True)\n"
        f"code = {escapee(marker).replace('time.sleep(0.3)', 'time.sleep(60)')!r}\n"
        "ref = function_reference('def f(x):\\n', 'def check(candidate):\\n    assert candidate(1) == 2\\n', 'f')\n"
        "verifier(['```python\\n' + code + '\\n```'], [ref])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "TMPDIR": str(scratch)}
    trainer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert trainer.stdout.readline().strip() == b"ready"
        give_up = time.monotonic() + 20
        while not marked_processes(marker) and time.monotonic() < give_up:
            time.sleep(0.05)
        assert marked_processes(marker), "the sample never started"
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    assert not wait_until_gone(marker, 5.0)
    assert not list(scratch.iterdir())  # no sandbox folder (with tests and program) left behind


def children_holding_at_once(megabytes: int) -> str:
    """A program whose five forked children each fill ``megabytes`` and sleep; it returns how many
    filled theirs and were all still alive together (a child the kernel killed to make room for
    the next one does not count: the cap is on memory held at once, not on allocations made)."""
    return f"""import os, select, time
def f(x):
    read, write = os.pipe()
    children = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            block = b'x' * ({megabytes} * 2**20)
            os.write(write, b'1')
            time.sleep(5)
            os._exit(0)
        children.append(pid)
    held, end = 0, time.monotonic() + 3
    while held < 5 and select.select([read], [], [], max(end - time.monotonic(), 0))[0]:
        held += len(os.read(read, 5))
    alive = sum(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children)
    return min(held, alive)"""


def skip_without_joint_cap(verifier) -> None:
    if verifier.sandbox.isolation == "none":
        pytest.skip("the fallback caps memory per process only (RLIMIT_AS x RLIMIT_NPROC), as stated")
    if cgroup_layout() is None:
        pytest.skip("no writable cgroup memory hierarchy here: per-process caps only, as the sandbox logs")


@needs_root
def test_memory_is_capped_for_the_sample_not_per_process(verifier):
    skip_without_joint_cap(verifier)
    # five children of 200 MB each under a 512 MB limit: at most two can hold their memory at once
    result = run(verifier, children_holding_at_once(200), ref("assert candidate(0) == 5"))
    assert result.status != S.PASSED, result


@needs_root
def test_five_children_within_the_cap_all_hold_their_memory(verifier):
    # the control for the test above: the same program passes when 5 x 40 MB fit under 512 MB
    skip_without_joint_cap(verifier)
    result = run(verifier, children_holding_at_once(40), ref("assert candidate(0) == 5"))
    assert result.status == S.PASSED, result


@needs_root
@pytest.mark.parametrize("folder", ["/tmp", "/dev/shm"])
def test_scratch_space_is_capped_and_gone_after_the_sample(verifier, folder):
    if verifier.sandbox.isolation == "none":
        pytest.skip("the fallback has no private /tmp or /dev/shm (each file is capped by RLIMIT_FSIZE only)")
    marker = str(random.randrange(10**9, 10**10))
    code = f"""import os
def f(x):
    written = files = 0
    try:
        for i in range(40):
            with open('{folder}/fill-{marker}-' + str(i), 'wb') as out:
                out.write(b'x' * (5 * 2**20))
                written += 5 * 2**20
        for i in range(20000):
            open('{folder}/many-{marker}-' + str(i), 'w').close()
            files += 1
    except OSError:
        pass
    return (written, files)"""
    result = run(verifier, code, ref("assert candidate(0) == (200 * 2**20, 20000)"))
    assert result.status == S.FAILED, result
    assert not list(Path(folder).glob(f"*{marker}*"))


@needs_root
def test_a_sysv_shared_memory_segment_does_not_outlive_the_sample(verifier):
    if verifier.sandbox.isolation == "none":
        pytest.skip("without an IPC namespace a segment outlives the sample (stated)")
    key = random.randrange(0x4B1D0000, 0x4B1DFFFF)
    code = f"""import ctypes
def f(x):
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmget({key}, 2**20, 0o1000 | 0o600)"""
    try:
        result = run(verifier, code, ref("assert candidate(0) >= 0"))
        assert result.status == S.PASSED, result  # creating one is allowed; keeping it is not
        assert f"{key:d}" not in Path("/proc/sysvipc/shm").read_text().split()
    finally:
        subprocess.run(["ipcrm", "-M", str(key)], capture_output=True)


@needs_root
def test_samples_running_at_once_cannot_signal_or_open_each_other(verifier):
    killer = """import glob, os, signal
def f(x):
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    opened = 0
    for path in glob.glob('/proc/[0-9]*/fd/*'):
        if not path.startswith(f'/proc/{os.getpid()}/') and not path.startswith('/proc/self/'):
            try:
                os.close(os.open(path, os.O_RDONLY))
                opened += 1
            except OSError:
                pass
    for pid in map(int, [p.split('/')[2] for p in glob.glob('/proc/[0-9]*')]):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return opened"""
    victim = "import time\ndef f(x):\n    time.sleep(1.5)\n    return 2 * x"
    results = verifier(
        [f"```python\n{killer}\n```", f"```python\n{victim}\n```"],
        [ref("assert candidate(0) == 0"), ref("assert candidate(1) == 2")],
    )
    assert results[1].status == S.PASSED, results[1]  # the victim was neither killed nor touched
    assert results[0].status == S.PASSED, results[0]  # and the killer could open no one else's descriptors


def test_symlinks_in_the_work_dir_do_not_redirect_the_verifier(verifier, tmp_path):
    sentinel = Path(f"/tmp/cipo-sentinel-{random.randrange(10**9)}")
    sentinel.write_text("keep")
    sentinel.chmod(0o644)
    code = f"""import os
def f(x):
    for name in ('stdout', 'stderr', 'result', 'solution.py', '../stdout', '../x'):
        try:
            os.symlink({str(sentinel)!r}, name)
        except OSError:
            pass
    os.symlink('/', 'root')
    print('x' * 1000)
    return 2 * x"""
    try:
        result = run(verifier, code, ref("assert candidate(1) == 2"))
        assert result.status == S.PASSED, result
        assert sentinel.read_text() == "keep"
    finally:
        sentinel.unlink()
