"""Attacks on the judge itself (the process that runs the reference's tests): tracing it, reading
its memory or descriptors, signalling it, feeding it malformed replies, undoing the mounts.
None may change a verdict; where an attempt is only observable, the program reports what it
managed (``verdict=True`` means the attack got through)."""

# ruff: noqa: F811 (`verifier` is the fixture imported from both_paths, taken as an argument)
from __future__ import annotations

import pytest
from both_paths import run, verifier  # noqa: F401 (a fixture: every attack on both paths)

from cipo.code_reference import function_reference
from cipo.types import VerifyStatus

S = VerifyStatus
REF = function_reference("def f(x):\n", "def check(candidate):\n    assert candidate(1) == 2\n", "f")
LOOKED = function_reference("def f(x):\n", "def check(candidate):\n    candidate(0)\n    assert False, 'looked'\n", "f")


def attack_got_through(verifier, body: str) -> bool:
    """Run ``body`` (which sets ``got``) inside f; the verdict text says whether it worked."""
    indented = "\n".join("    " + line for line in body.splitlines())
    code = f"import ctypes, glob, os, signal\ndef f(x):\n    got = False\n{indented}\n"
    code += "    raise ValueError('verdict=' + str(got))"
    result = run(verifier, code, LOOKED)
    assert "verdict=" in result.feedback, result  # the attack ran
    return "verdict=True" in result.feedback


def test_the_report_can_say_yes(verifier):
    assert attack_got_through(verifier, "got = True")  # so a "no" below is a real no


def test_tracing_the_judge(verifier):
    body = """libc = ctypes.CDLL(None, use_errno=True)
for pid in {1, os.getppid()}:
    if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
        got = True"""
    assert not attack_got_through(verifier, body)


def test_reading_the_judges_memory_descriptors_and_root(verifier):
    body = """for pid in {1, os.getppid()}:
    for path in ['mem', 'environ', 'fd/0', 'fd/1', 'fd/3', 'root/proc/1/environ', 'cwd/solution.py']:
        try:
            with open(f'/proc/{pid}/{path}', 'rb') as handle:
                handle.read(1)
            got = got or path != 'cwd/solution.py' or pid != os.getpid()
        except OSError:
            pass
    try:
        os.listdir(f'/proc/{pid}/fd')
        got = got or pid != os.getpid()
    except OSError:
        pass"""
    assert not attack_got_through(verifier, body)


def test_signalling_the_judge(verifier):
    code = """import os, signal
def f(x):
    for pid in {1, os.getppid()}:
        for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    return 2 * x"""
    assert run(verifier, code, REF).status == S.PASSED  # the judge was untouched and judged the right answer


def test_becoming_the_judge_or_root(verifier):
    body = """for uid in (0, os.getuid() - 1, 1900000000):
    try:
        os.setuid(uid)
        got = got or uid != os.getuid()
    except OSError:
        pass"""
    assert not attack_got_through(verifier, body)


def test_undoing_the_mounts(verifier):
    if verifier.sandbox.isolation == "none":
        pytest.skip("no mounts to undo without a mount namespace")
    body = """libc = ctypes.CDLL(None, use_errno=True)
for target in (b'/work', b'/root', b'/tmp', b'/proc'):
    got = got or libc.umount2(target, 2) == 0  # MNT_DETACH
got = got or libc.mount(b'none', b'/work', b'tmpfs', 0, None) == 0
got = got or libc.unshare(0x00020000 | 0x10000000) == 0 and libc.umount2(b'/work', 2) == 0"""
    assert not attack_got_through(verifier, body)


@pytest.mark.parametrize(
    "frames",
    [
        "os.write(3, b'\\xff\\xff\\xff\\xff')",  # a 4 GB frame announced
        "os.write(3, b'\\x00\\x00\\x00\\x05{{{{{')",  # not JSON
        'os.write(3, b\'\\x00\\x00\\x00\\x1a{"id": 2, "value": {"eq": 1}}\')',  # an unknown value form
        "import json, struct\n"
        "for i in range(2, 60):\n"  # answers sent ahead, for calls not made yet: just answers
        "    body = json.dumps({'id': i, 'value': {'ref': 0, 'type': 'int'}}).encode()\n"
        "    os.write(3, struct.pack('>I', len(body)) + body)",
    ],
    ids=["huge-length", "not-json", "unknown-form", "replies-ahead"],
)
def test_malformed_replies_from_the_programs_process(verifier, frames):
    code = f"import os, threading, time\n{frames}\ndef f(x):\n    time.sleep(0.2)\n    return x"
    result = run(verifier, code, REF)
    assert not result.success and result.status != S.PASSED, result
