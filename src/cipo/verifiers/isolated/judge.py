"""The trusted side of one sample's sandbox: set it up, run the program in a process of its own,
judge every test here, report to the trainer.

Started by ``sandbox.py`` as ``python -I boot.py`` (as root; as init of fresh PID, mount, IPC
and network namespaces where ``unshare`` works). Standard input holds two frames
(``wire.read_frame``): the settings, then, read only *after* the program's process has been
forked (so its memory never held them), the nonce, the program and the tests. Reports go to
standard output as ``<nonce> <json>`` lines; only this process writes there.

``function`` mode: fork the program's process (``program.py``, as the sample's uid), then drop
to the judge identity (``confine.become_judge``), run the reference's prompt (its helpers, as
the tests must use the reference's own and not the program's) and test code here, and every
top-level statement of ``check(candidate)`` in order with its own alarm, ``candidate`` and
the program's other functions being stand-ins (``remote.py``). Statements that contain an
``assert`` are the tests (a score is the fraction that passed), the others are setup; no
``check`` statement with an assert -> one test, ``check(candidate)``. ``stdio`` mode:
``stdio.py``.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import os
import resource
import signal
import socket
import time
import traceback

from . import confine, program, stdio, wire
from .remote import Channel, ProgramFailure, ProgramGone, Remote

_HERE = os.path.dirname(os.path.abspath(__file__))
_ALARM_SLACK_S = 2.0  # the program's own alarm answers first; this one catches the judge's own loops


class _TestTimeout(BaseException):
    """Raised by the judge's alarm; a BaseException so that ``except Exception`` in a test misses it."""


def _raise_timeout(signum, frame) -> None:
    raise _TestTimeout()


class Reporter:
    def __init__(self, fd: int, nonce: str) -> None:
        self.fd, self.nonce = fd, nonce

    def __call__(self, **record) -> None:
        os.write(self.fd, f"{self.nonce} {json.dumps(record)}\n".encode())


def describe(error: BaseException, limit: int = 3) -> tuple[str, str]:
    """(status, short text) for an exception that ended a test statement."""
    if isinstance(error, _TestTimeout):
        return "timeout", "the test ran past its time limit"
    if isinstance(error, (ProgramGone, ProgramFailure)):
        return error.status, error.text
    if isinstance(error, wire.Unsendable):
        return "error", f"the verifier cannot run this test in a separate process: {error}"
    if isinstance(error, MemoryError):
        return "memory_exceeded", "MemoryError: the memory limit was reached"
    if hasattr(error, "program_text"):  # raised by the program, in the program's process
        return "runtime_error", error.program_text
    described = traceback.TracebackException.from_exception(error)
    head = "".join(described.format_exception_only()).strip()
    frames = [f for f in described.stack if not f.filename.startswith(_HERE)][::-1][:limit]
    where = [f"  at {f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    return "runtime_error", "\n".join([head, *where])


def check_statements(test_source: str) -> tuple[str, list[tuple[str, object, bool]]] | None:
    """(argument name, [(source, code, is_test)]) of ``check``'s body; None if not splittable."""
    tree = ast.parse(test_source)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check" and n.args.args]
    if not checks:
        return None
    check = checks[-1]
    statements = []
    for stmt in check.body:
        is_test = any(isinstance(node, ast.Assert) for node in ast.walk(stmt))
        source = ast.get_source_segment(test_source, stmt) or ast.unparse(stmt)
        statements.append((source, compile(ast.Module([stmt], []), "test.py", "exec"), is_test))
    if not any(is_test for _, _, is_test in statements):
        return None
    return check.args.args[0].arg, statements


def compile_prompt(prompt: str):
    """The reference's prompt as code (its imports and helper functions), or None. A prompt that
    ends in a bare signature (``def f(x):``) gets a ``pass`` body."""
    for suffix in ("", "\n pass\n", "\n    pass\n", "\n        pass\n"):
        try:
            return compile(prompt + suffix, "prompt.py", "exec")
        except (SyntaxError, ValueError):
            continue
    return None


class Judge:
    def __init__(self, settings: dict, started: float, hidden: list[str]) -> None:
        self.settings, self.started, self.hidden = settings, started, hidden
        self.sample_deadline = started + settings["sample_timeout_s"]
        self.trainer = [settings["trainer_fd"]] if settings.get("trainer_fd") is not None else []

    def reporter(self, nonce: str) -> Reporter:
        report = Reporter(1, nonce)
        if self.settings.get("probe"):  # what this sandbox could set up, for the trainer's log
            scratch = bool(self.settings.get("scratch"))
            report(protections={"pid_namespace": os.getpid() == 1, "private_tmp": scratch, "hidden": self.hidden})
        return report

    def budget(self) -> float:
        return min(self.settings["test_timeout_s"], self.sample_deadline - time.monotonic())

    def timed(self, work, seconds: float, channel: Channel | None = None):
        """``work()`` under the judge's alarm; returns the exception it raised, or None."""
        if channel is not None:
            channel.deadline = time.monotonic() + seconds
        signal.setitimer(signal.ITIMER_REAL, seconds + _ALARM_SLACK_S)
        try:
            work()
            return None
        except BaseException as error:
            return error
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    # --- function mode ---------------------------------------------------------------------

    def function_mode(self, box: str, work: str) -> None:
        ooms_before = confine.oom_kills(self.settings)  # the cgroup is reused: its counts add up
        log = os.open(os.path.join(box, "program.log"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        judge_end, program_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            confine.become_program(self.settings, [null, log, log, program_end.fileno()], work)
            program.Server(3).serve()
            os._exit(0)
        program_end.close()
        os.close(null)
        secret = wire.read_frame(0)
        report = self.reporter(secret["nonce"])
        confine.become_judge(self.settings.get("judge_uid"))
        memory = self.settings["limits"].get("memory_bytes")
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory + 2**28, memory + 2**28))
        signal.signal(signal.SIGALRM, _raise_timeout)

        def ended(why: str, status: str) -> ProgramGone:
            _, code = os.waitpid(pid, 0)
            if confine.oom_kills(self.settings) > ooms_before:
                return ProgramGone("memory_exceeded", "the sample's processes together reached the memory limit")
            how = confine.exit_description(os.waitstatus_to_exitcode(code))
            tail = os.pread(log, 4096, max(os.fstat(log).st_size - 4096, 0)).decode(errors="replace")
            tail = " | ".join(tail.strip().splitlines()[-3:])
            text = f"the program's process stopped: {why}" if why else f"the program's process ended ({how})"
            return ProgramGone(status or "runtime_error", text + (f": {tail}" if tail else ""))

        channel = Channel(judge_end.fileno(), pid, self.settings["limits"]["file_bytes"], self.trainer, ended)
        try:
            self.run_function_tests(secret, channel, report)
        finally:
            try:
                channel.end("the tests are over", "runtime_error")
            except ProgramGone:
                pass
            if os.getpid() == 1:
                confine.kill_programs(None)

    def run_function_tests(self, secret: dict, channel: Channel, report: Reporter) -> None:
        names: list = []

        def load() -> None:
            listed = channel.request({"op": "load", "source": secret["program"]}).get("value")
            # the program's process says which names it defines: only plain identifiers are taken
            # (never __builtins__ or another dunder, which would change how the tests themselves run)
            listed = listed[:10_000] if isinstance(listed, list) else []
            names.extend(n for n in listed if isinstance(n, str) and n.isidentifier() and not n.startswith("__"))

        error = self.timed(load, self.budget(), channel)
        if error is not None:
            status, text = describe(error)
            if status == "syntax_error" or getattr(error, "status", "") == "syntax_error":
                return report(status="syntax_error", error=text)
            return report(status=status, error=f"while running the program: {text}")
        entry = secret["entry_point"]
        for name in ("prompt", "test"):  # source lines in tracebacks
            text = secret.get(name) or ""
            linecache.cache[f"{name}.py"] = (len(text), None, text.splitlines(True), f"{name}.py")
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        namespace.update({name: Remote(channel, {"name": name}, "function") for name in names})
        prompt = compile_prompt(secret.get("prompt") or "")

        def reference() -> None:
            if prompt is not None:
                exec(prompt, namespace)  # the reference's helpers replace the program's copies
            if entry in names:
                namespace[entry] = Remote(channel, {"name": entry}, "function")
            exec(compile(secret["test"], "test.py", "exec"), namespace)

        error = self.timed(reference, self.budget(), channel)
        if isinstance(error, (ProgramGone, ProgramFailure)):
            return report(status=error.status, error=f"while running the test code: {error.text}")
        if error is not None:
            return report(status="error", error=f"the reference test code failed: {type(error).__name__}: {error}")
        if entry not in names:
            return report(status="runtime_error", error=f"the program does not define {entry}()")
        split = check_statements(secret["test"])
        if split is None:
            arg, statements = "candidate", [("check(candidate)", compile("check(candidate)", "test.py", "exec"), True)]
        else:
            arg, statements = split
        scope = dict(namespace)
        scope[arg] = namespace[entry]
        report(total=sum(is_test for _, _, is_test in statements))
        index = 0
        for source, code, is_test in statements:
            left = self.budget()
            error = self.timed(lambda code=code: exec(code, scope), left, channel) if left > 0 else _TestTimeout()
            if is_test:
                report(test=index, **self.test_record(error, source))
                index += 1
            elif error is not None:
                status, text = describe(error)
                report(setup=source[:300], status=status, error=f"{text}\nin test: {source[:300]}")
        report(done=True)

    @staticmethod
    def test_record(error: BaseException | None, source: str) -> dict:
        if error is None:
            return {"status": "passed"}
        if isinstance(error, AssertionError):
            detail = getattr(error, "program_text", None) or str(error)
            return {
                "status": "failed",
                "error": f"failed: {source[:300]}" + (f"\nAssertionError: {detail}" if detail else ""),
            }
        status, text = describe(error)
        return {"status": status, "error": f"{text}\nin test: {source[:300]}"}


def prepare(settings: dict) -> tuple[str, str, list[str]]:
    """(box: root-only folder of the judge's files, work: the program's folder, hidden folders)."""
    scratch = settings.get("scratch")
    hidden = []
    if scratch:
        hidden = confine.private_filesystem(scratch["bytes"], scratch["files"], settings.get("hide", True))
        box = "/tmp/.box"
        os.mkdir(box, 0o711)
    else:
        box = settings["box"]  # made by the trainer, 0700 root
    os.chmod(box, 0o711)  # traversable, not listable: the program reaches only its own folder
    work = os.path.join(box, "work")
    os.mkdir(work, 0o700)
    if settings.get("uid") is not None:
        os.chown(work, settings["uid"], settings["uid"])
    return box, work, hidden


def main() -> None:
    started = time.monotonic()
    settings = wire.read_frame(0)
    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL)
    box, work, hidden = prepare(settings)
    judge = Judge(settings, started, hidden)
    if settings["mode"] == "function":
        judge.function_mode(box, work)
    else:
        stdio.stdio_mode(judge, box, work)
    os._exit(0)
