"""The judge's side of the program's process: a request channel and the stand-ins the reference
tests see in place of the program's functions and objects.

A call ``candidate(1, [2])`` sends the arguments as plain values, waits (at most the time left
to the test, plus ``GRACE_S`` for the program's own alarm to answer) and decodes the reply into
exact built-in types, so the test compares values the program cannot influence after the fact.
An object without a plain form (a ``Solution()`` instance, a generator) stays in the program's
process; the test gets a ``Remote`` for it, which can be called, have attributes read and be
iterated (listed), but is never equal to a plain value and has no truth value of its own.
Lists, dicts, sets and bytearrays the function changed in place are changed in place here too.
"""

from __future__ import annotations

import builtins
import os
import select
import signal
import time

from . import wire

GRACE_S = 1.0
_NAMES_READ_THROUGH = ("__name__", "__qualname__", "__doc__", "__module__")


class ProgramGone(BaseException):
    """The program's process ended or stopped answering; a BaseException so that a test's
    ``except Exception`` cannot turn it into a pass."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


class ProgramFailure(BaseException):
    """The program timed out (or sent nonsense) during a request: not catchable by ``except Exception``."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def as_exception(error: dict) -> BaseException:
    """The exception a test sees for the program's error: the same built-in class where there
    is one (so ``except ValueError`` in a test works), carrying the program's own description."""
    status, name = str(error.get("status", "runtime_error")), str(error.get("type", ""))
    text = str(error.get("text", name))[:2000]
    if status in ("timeout", "memory_exceeded", "syntax_error") and name != "MemoryError":
        return ProgramFailure(status, text)
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or issubclass(cls, (StopIteration, Warning)):
        return ProgramFailure("runtime_error", text)
    try:
        exception = cls(text)
    except Exception:
        return ProgramFailure("runtime_error", text)
    exception.program_text = text
    return exception


class Channel:
    def __init__(self, fd: int, pid: int, max_bytes: int, watch: list[int], describe_end) -> None:
        self.fd, self.pid, self.max_bytes, self.watch = fd, pid, max_bytes, watch
        self.describe_end = describe_end  # (how) -> ProgramGone, after the process has ended
        self.deadline = time.monotonic()  # of the current test; set by the judge
        self.sequence, self.pending = 0, None
        self.gone: ProgramGone | None = None

    # --- requests ------------------------------------------------------------------------

    def request(self, message: dict) -> object:
        if self.gone is not None:
            raise self.gone
        if self.pending is not None:  # a reply abandoned when a test's alarm interrupted the wait
            self._await(self.pending, GRACE_S)
        self.sequence += 1
        left = max(self.deadline - time.monotonic(), 0.001)
        wire.write_frame(self.fd, {**message, "id": self.sequence, "timeout": left})
        self.pending = self.sequence
        reply = self._await(self.sequence, left + GRACE_S)
        if "error" in reply:
            raise as_exception(reply["error"] if isinstance(reply["error"], dict) else {})
        return reply

    def call(self, target: dict, args: tuple, kwargs: dict):
        sent_args = [wire.encode(a) for a in args]  # Unsendable (a TypeError) for a function or a file
        sent_kwargs = {key: wire.encode(value) for key, value in kwargs.items()}
        reply = self.request({"op": "call", "target": target, "args": sent_args, "kwargs": sent_kwargs})
        value = self._decode(reply.get("value"))
        changed = reply.get("changed") or {}
        if not isinstance(changed, dict):
            raise ProgramFailure("runtime_error", "the program's process sent a malformed reply")
        for key, data in changed.items():
            original = args[int(key)] if key.isdigit() and int(key) < len(args) else kwargs.get(key)
            _update_in_place(original, self._decode(data))
        return value

    def getattr(self, target: dict, name: str):
        return self._decode(self.request({"op": "getattr", "target": target, "name": name}).get("value"))

    def listing(self, target: dict) -> list:
        value = self._decode(self.request({"op": "list", "target": target}).get("value"))
        if type(value) is not list:
            raise ProgramFailure("runtime_error", "the program's process sent a malformed reply")
        return value

    def _decode(self, data):
        try:
            return wire.decode(data, lambda index, kind: Remote(self, {"ref": index}, kind))
        except wire.ProtocolError as error:
            raise ProgramFailure("runtime_error", f"the program's process sent a malformed reply ({error})") from None

    # --- waiting -------------------------------------------------------------------------

    def _await(self, sequence: int, wait_s: float) -> dict:
        give_up = time.monotonic() + wait_s
        while True:
            left = give_up - time.monotonic()
            ready = select.select([self.fd, *self.watch], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.end(f"it did not answer within {wait_s:.1f} s (it ignored the time limit)", "timeout")
            if any(fd in ready for fd in self.watch):
                os._exit(3)  # the trainer is gone: nobody is waiting for this verdict
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # never half a frame
            try:
                reply = wire.read_frame(self.fd, self.max_bytes)
            except EOFError:
                self.end("", "")
            except (OSError, wire.ProtocolError) as error:
                self.end(f"it sent an unreadable reply ({error})", "runtime_error")
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if isinstance(reply, dict) and reply.get("id") == sequence:
                self.pending = None
                return reply

    def end(self, why: str, status: str) -> None:
        """Stop the program's process for good; every later request raises the same ``ProgramGone``."""
        if self.gone is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self.gone = self.describe_end(why, status)
        raise self.gone


def _update_in_place(original, new) -> None:
    if type(original) is not type(new):
        return
    if type(original) in (list, bytearray):
        original[:] = new
    elif type(original) in (dict, set):
        original.clear()
        original.update(new)


class Remote:
    """A function or object of the program, as the reference's tests see it."""

    __slots__ = ("_remote_channel", "_remote_target", "_remote_ref", "_remote_type")

    def __init__(self, channel: Channel, target: dict, kind: str) -> None:
        self._remote_channel, self._remote_target, self._remote_type = channel, target, kind
        self._remote_ref = target.get("ref")

    def __call__(self, *args, **kwargs):
        return self._remote_channel.call(self._remote_target, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name not in _NAMES_READ_THROUGH:
            raise AttributeError(name)
        return self._remote_channel.getattr(self._remote_target, name)

    def __iter__(self):
        return iter(self._remote_channel.listing(self._remote_target))

    def __bool__(self) -> bool:
        raise TypeError(
            f"the program returned a {self._remote_type} object where a plain value (a number, a string, "
            "a list, ...) was expected"
        )

    def __repr__(self) -> str:
        return f"<{self._remote_type} of the program>"


wire.REMOTE_TYPES = (Remote,)
