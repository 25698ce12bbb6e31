"""The program's process in function mode: it runs the untrusted program and answers the judge's
requests (call a function, read an attribute, list an iterable) over a socket, one at a time.

Nothing here is trusted: the program can replace any of it. What it cannot do is reach the
judge, which decides every test itself from the plain values it is sent (``wire.decode``).
Each request carries the time left to its test; an alarm ends the request with a timeout.
"""

from __future__ import annotations

import itertools
import linecache
import os
import signal
import traceback
import types

from . import wire

MAX_ITEMS = 10**6  # an iterable the judge lists (a returned generator) is cut here


class _CallTimeout(BaseException):
    """From the alarm; a BaseException so that ``except Exception`` in the program misses it."""


class _CompileError(Exception):
    """The program does not compile (its text is the message)."""


def _raise_timeout(signum, frame) -> None:
    raise _CallTimeout()


def describe(error: BaseException, limit: int = 3) -> dict:
    """``{"type", "status", "text"}`` of an exception raised by the program, innermost frames first."""
    if isinstance(error, _CallTimeout):
        return {"type": "Timeout", "status": "timeout", "text": "the test ran past its time limit"}
    if isinstance(error, MemoryError):
        return {"type": "MemoryError", "status": "memory_exceeded", "text": "MemoryError: the memory limit was reached"}
    if isinstance(error, SystemExit):
        return {
            "type": "SystemExit",
            "status": "runtime_error",
            "text": f"SystemExit({error.code!r}) raised by the program",
        }
    try:
        described = traceback.TracebackException.from_exception(error)
        head = "".join(described.format_exception_only()).strip()
        frames = [f for f in described.stack if f.filename != __file__][::-1][:limit]
        where = [f"  at {f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
        text = "\n".join([head, *where])
    except BaseException:  # an exception whose __str__ fails, or worse
        text = type(error).__name__
    return {"type": type(error).__name__[:100], "status": "runtime_error", "text": text[:2000]}


class Server:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refs: list = []
        self.namespace: dict = {}

    def serve(self) -> None:
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.signal(signal.SIGXCPU, _raise_timeout)
        while True:
            try:
                request = wire.read_frame(self.fd)
                reply = self.answer(request)
                reply["id"] = request.get("id")
                wire.write_frame(self.fd, reply)
            except _CallTimeout:  # an alarm that fired between requests
                continue
            except (EOFError, OSError, wire.ProtocolError):
                os._exit(0)

    def answer(self, request: dict) -> dict:
        op, timeout = request.get("op"), float(request.get("timeout") or 1.0)
        if op == "exit":
            os._exit(0)
        try:
            if op == "load":
                return {"value": self._timed(timeout, lambda: self._load(request["source"]))}
            target = self._target(request.get("target"))
            if op == "getattr":
                name = str(request["name"])
                return {"value": self._timed(timeout, lambda: wire.encode(getattr(target, name), self.refs))}
            if op == "list":
                work = lambda: wire.encode(list(itertools.islice(target, MAX_ITEMS)), self.refs)  # noqa: E731
                return {"value": self._timed(timeout, work)}
            if op == "call":
                return self._call(target, request, timeout)
            raise wire.ProtocolError(f"unknown request {op!r}")
        except _CompileError as error:
            return {"error": {"type": "SyntaxError", "status": "syntax_error", "text": str(error)[:2000]}}
        except BaseException as error:  # the program's exception (or its time running out)
            return {"error": describe(error)}

    def _timed(self, timeout: float, work):
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
        try:
            return work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _load(self, source: str) -> list[str]:
        try:
            code = compile(source, "solution.py", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:  # also null bytes, deep nesting
            raise _CompileError("".join(traceback.format_exception_only(type(error), error)).strip()) from None
        linecache.cache["solution.py"] = (len(source), None, source.splitlines(True), "solution.py")  # for tracebacks
        self.namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
        exec(code, self.namespace)
        return [
            name
            for name, value in self.namespace.items()
            if not name.startswith("__") and callable(value) and not isinstance(value, types.ModuleType)
        ]

    def _target(self, target):
        if not isinstance(target, dict):
            raise wire.ProtocolError("a request without a target")
        if "name" in target:
            return self.namespace[target["name"]]
        return self._ref(target.get("ref"))

    def _ref(self, index, kind: str = "") -> object:
        if not isinstance(index, int) or not 0 <= index < len(self.refs):
            raise wire.ProtocolError(f"no object #{index}")
        return self.refs[index]

    def _call(self, function, request: dict, timeout: float) -> dict:
        raw_args, raw_kwargs = request.get("args") or [], request.get("kwargs") or {}
        args = [wire.decode(item, self._ref) for item in raw_args]
        kwargs = {str(key): wire.decode(item, self._ref) for key, item in raw_kwargs.items()}

        def work():
            value = wire.encode(function(*args, **kwargs), self.refs)
            # arguments changed in place (a list sorted by the function) travel back too
            changed = {}
            for key, before, now in itertools.chain(
                zip(map(str, range(len(args))), raw_args, args),
                ((key, raw_kwargs[key], kwargs[key]) for key in kwargs),
            ):
                if type(now) in (list, dict, set, bytearray):
                    after = wire.encode(now, self.refs)
                    if after != before:
                        changed[key] = after
            return value, changed

        value, changed = self._timed(timeout, work)
        return {"value": value, "changed": changed}
