"""stdin/stdout mode of the judge: one fresh interpreter per test, as the sample's uid.

For each test the judge writes the input to a root-only file, forks, confines the child and
``exec``s ``python -I -c <stdio_runner.py> solution.py`` (a fresh interpreter: nothing of the
judge's memory, such as the other tests' inputs or the nonce, is left in it), waits up to the
test's time, then kills every process of the sample before the next test. The report holds the
output (capped); the trainer compares it with the expected output, which never enters the
sandbox. The judge stays root here: it runs no reference code in this mode.
"""

from __future__ import annotations

import base64
import json
import os
import select
import sys
import time

from . import confine, wire

RUNNER = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stdio_runner.py")).read()
FAILURES = ("syntax_error", "runtime_error", "memory_exceeded", "timeout")


def _fresh(path: str, flags: int = os.O_RDWR) -> int:
    return os.open(path, flags | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)


def _read_all(fd: int, cap: int) -> bytes:
    return os.pread(fd, cap, 0)


def _failure(raw: bytes) -> dict | None:
    """The runner's line about how the program failed, if it is one (a claimed pass is ignored)."""
    for line in raw.decode("utf-8", errors="replace").splitlines()[:1]:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if isinstance(record, dict) and record.get("status") in FAILURES:
            return {"status": record["status"], "error": str(record.get("error", ""))[:2000]}
    return None


def stdio_mode(judge, box: str, work: str) -> None:
    settings = judge.settings
    secret = wire.read_frame(0)
    os.close(0)
    report = judge.reporter(secret["nonce"])
    program = os.path.join(box, "solution.py")
    with open(program, "w", encoding="utf-8", errors="surrogatepass") as handle:
        handle.write(secret["program"])
    os.chmod(program, 0o644)  # the program's own text: readable, not writable, by its uid
    cap = settings["limits"]["file_bytes"]
    for index, given in enumerate(secret["inputs"]):
        left = judge.budget()
        if left <= 0:
            report(test=index, status="timeout", error=f"no time left for test {index}")
            continue
        record = _one_test(settings, judge.trainer, box, work, program, given, left, cap)
        report(test=index, **record)
        if record.get("status") == "syntax_error":
            break  # every other test would say the same
    report(done=True)


def _one_test(settings, trainer, box, work, program, given: str, seconds: float, cap: int) -> dict:
    stdin_path = os.path.join(box, "stdin")
    with open(_fresh(stdin_path, os.O_WRONLY), "w", encoding="utf-8", errors="surrogatepass") as handle:
        handle.write(given)
    descriptors = [os.open(stdin_path, os.O_RDONLY | os.O_NOFOLLOW)]
    descriptors += [_fresh(os.path.join(box, name)) for name in ("stdout", "stderr", "failure")]
    ooms_before = confine.oom_kills(settings)
    pid = os.fork()
    if pid == 0:
        confine.become_program(settings, descriptors, work)
        try:
            os.execv(sys.executable, [sys.executable, "-I", "-c", RUNNER, program])
        finally:
            os._exit(72)
    started = time.monotonic()
    pidfd = os.pidfd_open(pid)
    try:
        ready = select.select([pidfd, *trainer], [], [], seconds)[0]
    finally:
        os.close(pidfd)
    if any(fd in ready for fd in trainer):
        os._exit(3)  # the trainer is gone
    timed_out = not ready
    if timed_out:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    confine.kill_programs(settings.get("uid"), fallback_group=pid)
    returncode = os.waitstatus_to_exitcode(status)
    _, stdout, stderr, failure = descriptors
    record = {
        "returncode": returncode,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
        "stdout": base64.b64encode(_read_all(stdout, cap)).decode(),
        "stderr": _read_all(stderr, cap)[-2000:].decode("utf-8", errors="replace"),
    }
    claimed = _failure(_read_all(failure, 4096))
    if claimed:
        record.update(claimed)
    if confine.oom_kills(settings) > ooms_before:
        record.update(status="memory_exceeded", error="the sample's processes together reached the memory limit")
    elif returncode != 0 and not timed_out and "status" not in record:
        record.update(status="runtime_error", error=confine.exit_description(returncode))
    for fd in descriptors:
        os.close(fd)
    return record
