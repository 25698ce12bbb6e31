"""A bounded pool of worker processes with a hard per-item deadline, for verifiers whose work
can hang or crash (math-verify/sympy).

Built on ``pebble.ProcessPool`` rather than ``concurrent.futures.ProcessPoolExecutor``:
the stdlib executor marks itself broken when one worker dies (every pending future fails,
with no way to tell which item killed it) and cannot stop a running task. pebble gives each
task its own deadline, counted from when a worker picks the task up; on expiry it terminates
that worker (SIGTERM, SIGKILL after 3 s) and starts a new one, and a worker that dies mid-task
fails only that task (``ProcessExpired``). The rest of the batch goes on.

What this module adds:
  * an ``Outcome`` per item instead of exceptions: ``value`` or ``failure`` in
    {"timeout", "crashed", "raised"} with a one-line ``detail``;
  * a ``forkserver`` start method by default: the parent (a trainer) has torch and pebble's
    own threads, and forking a threaded process can deadlock the child;
  * lazy creation on first use and ``__getstate__`` without the pool, so an owner (a verifier
    inside a Lightning callback) can be pickled or deep-copied;
  * rebuild: if pebble reports the pool itself broken (a worker died while idle, a manager
    thread died), a fresh pool runs the items that had not finished, once;
  * a batch-level guard on waiting, so a wedged manager thread cannot hang the caller;
  * ``close()``, also run by a ``weakref.finalize`` at garbage collection / interpreter exit,
    so no worker outlives its owner (pebble's own atexit hook stops its workers as well).
"""

from __future__ import annotations

import math
import multiprocessing
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import pebble
from pebble.common.types import RemoteTraceback

# Time for a fresh worker to start (forkserver + imports) before its first deadline counts.
_STARTUP_S = 30.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: ``value`` when ``failure`` is None, else why not."""

    value: Any = None
    failure: str | None = None  # "timeout" | "crashed" | "raised"
    detail: str = ""


def _stop(pool: pebble.ProcessPool | None) -> None:
    if pool is not None:
        pool.stop()
        try:
            pool.join(timeout=10)
        except Exception:  # a wedged manager thread: its workers were already sent SIGTERM/SIGKILL
            pass


def _outcome(future, wait_s: float, deadline_s: float) -> tuple[Outcome | None, bool]:
    """(outcome of one scheduled item or None when the pool broke under it, pool unusable?)."""
    try:
        return Outcome(value=future.result(timeout=wait_s)), False
    except BaseException as error:  # math-verify's TimeoutException is a BaseException
        if isinstance(error.__cause__, RemoteTraceback):  # raised by fn inside the worker
            return Outcome(failure="raised", detail=f"{type(error).__name__}: {error}"[:500]), False
        if isinstance(error, pebble.ProcessExpired):
            return Outcome(failure="crashed", detail=f"worker died (exit code {error.exitcode})"), False
        if isinstance(error, (FutureTimeout, TimeoutError)):
            if future.done():  # pebble's per-item deadline fired and killed the worker
                return Outcome(failure="timeout", detail=f"exceeded the {deadline_s:g} s deadline"), False
            return Outcome(failure="timeout", detail="the worker pool stopped answering"), True
        if isinstance(error, (BrokenProcessPool, CancelledError, RuntimeError)):
            return None, True
        raise  # not from a worker: e.g. Ctrl-C in the parent while waiting


class WorkerPool:
    """``num_workers`` processes running ``fn(item)`` with at most ``deadline_s`` per item.

    ``initializer`` runs once in every new worker (e.g. imports, resource limits); it must be
    a module-level function, as must every ``fn`` (they are pickled by reference).
    """

    def __init__(
        self,
        num_workers: int,
        deadline_s: float,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        start_method: str = "forkserver",
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method={start_method!r} is not available here; "
                f"choose one of {multiprocessing.get_all_start_methods()}"
            )
        self.num_workers, self.deadline_s = num_workers, float(deadline_s)
        self.initializer, self.initargs, self.start_method = initializer, initargs, start_method
        self._pool: pebble.ProcessPool | None = None
        self._finalizer: weakref.finalize | None = None
        self.rebuilds = 0  # how many times a broken pool was replaced (for tests and logs)

    # --- lifecycle --------------------------------------------------------------------

    def _ensure_pool(self) -> pebble.ProcessPool:
        if self._pool is None or not self._pool.active:
            if self._pool is not None:
                self.rebuilds += 1
            self.close()
            self._pool = pebble.ProcessPool(
                max_workers=self.num_workers,
                initializer=self.initializer,
                initargs=self.initargs,
                context=multiprocessing.get_context(self.start_method),
            )
            self._finalizer = weakref.finalize(self, _stop, self._pool)
        return self._pool

    def close(self) -> None:
        """Stop every worker now (pending items are dropped). The pool restarts on next use."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once and detaches
        self._pool, self._finalizer = None, None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"], state["_finalizer"] = None, None
        return state

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- work -------------------------------------------------------------------------

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Outcome]:
        """``fn`` over ``items`` in the workers, one ``Outcome`` per item, in order."""
        outcomes: list[Outcome | None] = [None] * len(items)
        todo = list(range(len(items)))
        for attempt in range(2):
            if not todo:
                break
            todo = self._run(fn, items, todo, outcomes, last_try=attempt == 1)
        return [o if o is not None else Outcome(failure="crashed", detail="worker pool broken") for o in outcomes]

    def _run(self, fn, items, todo: list[int], outcomes: list, last_try: bool) -> list[int]:
        """Run ``todo``; fill ``outcomes``; return the indices to retry on a fresh pool."""
        try:
            pool = self._ensure_pool()
            futures = {i: pool.schedule(fn, args=(items[i],), timeout=self.deadline_s) for i in todo}
        except RuntimeError:  # the pool died between the check and the call
            self._pool_broken()
            return todo
        # Items queue behind each other: the guard allows every wave its full deadline.
        waves = math.ceil(len(todo) / self.num_workers)
        guard = _STARTUP_S + (waves + 1) * (self.deadline_s + 5.0)
        give_up_at = time.monotonic() + guard
        retry: list[int] = []
        broken = False
        for i, future in futures.items():
            outcome, unusable = _outcome(future, max(give_up_at - time.monotonic(), 0.1), self.deadline_s)
            broken = broken or unusable
            if outcome is None and not last_try:
                retry.append(i)
            else:
                outcomes[i] = outcome or Outcome(failure="crashed", detail="worker pool broken")
        if broken:
            self._pool_broken()
        return retry

    def _pool_broken(self) -> None:
        self.rebuilds += 1
        self.close()
