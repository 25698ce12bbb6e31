"""WorkerPool: per-item deadline, crashed and hung workers cost one item, the pool rebuilds,
closes without leaking processes, and pickles without its processes."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import time
from pathlib import Path

import pytest

from cipo.verifiers.pool import WorkerPool

DEADLINE_S = 1.5


class Stop(BaseException):
    """Like math-verify's TimeoutException: not an Exception."""


# Module-level functions: the workers unpickle them by reference.
def work(item):
    kind, value = item
    if kind == "hang":
        time.sleep(60)
    if kind == "exit":
        os._exit(value)
    if kind == "segfault":
        ctypes.string_at(0)
    if kind == "raise":
        raise ValueError(f"bad item {value}")
    if kind == "runtime":
        raise RuntimeError("an ordinary error that pebble also uses for a dead pool")
    if kind == "timeouterror":
        raise TimeoutError("the work's own timeout, not the deadline")
    if kind == "base":
        raise Stop("a BaseException from inside the work")
    if kind == "pid":
        return os.getpid()
    return value * 2


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(num_workers=2, deadline_s=DEADLINE_S) as pool:
        yield pool


def test_values_come_back_in_order(pool):
    outcomes = pool.map(work, [("ok", i) for i in range(10)])
    assert [o.value for o in outcomes] == [2 * i for i in range(10)]
    assert all(o.failure is None for o in outcomes)
    assert pool.map(work, []) == []


def test_hung_item_times_out_and_the_rest_go_on(pool):
    started = time.monotonic()
    outcomes = pool.map(work, [("ok", 1), ("hang", 0), ("ok", 2), ("ok", 3)])
    elapsed = time.monotonic() - started
    assert outcomes[1].failure == "timeout" and "deadline" in outcomes[1].detail
    assert [outcomes[i].value for i in (0, 2, 3)] == [2, 4, 6]
    assert elapsed < DEADLINE_S + 10  # killed at the deadline, not after the 60 s sleep
    assert pool.map(work, [("ok", 5)])[0].value == 10  # the killed worker was replaced


@pytest.mark.parametrize("item", [("exit", 3), ("segfault", 0)], ids=["os._exit", "segfault"])
def test_crashed_worker_costs_only_its_item(pool, item):
    outcomes = pool.map(work, [("ok", 1), item, ("ok", 2)])
    assert outcomes[1].failure == "crashed" and "exit code" in outcomes[1].detail
    assert outcomes[0].value == 2 and outcomes[2].value == 4
    assert pool.map(work, [("ok", 7)])[0].value == 14


def test_exceptions_are_outcomes_not_raised(pool):
    outcomes = pool.map(work, [("raise", 1), ("base", 0), ("ok", 1)])
    assert outcomes[0].failure == "raised" and "ValueError: bad item 1" in outcomes[0].detail
    assert outcomes[1].failure == "raised" and "Stop: a BaseException" in outcomes[1].detail
    assert outcomes[2].value == 2
    runtime, timeout = pool.map(work, [("runtime", 0), ("timeouterror", 0)])
    assert runtime.failure == "raised" and "RuntimeError" in runtime.detail  # not mistaken for a broken pool
    assert timeout.failure == "raised" and "TimeoutError" in timeout.detail  # not mistaken for the deadline


def test_broken_pool_is_rebuilt():
    with WorkerPool(num_workers=1, deadline_s=DEADLINE_S) as pool:
        pid = pool.map(work, [("pid", 0)])[0].value
        os.kill(pid, signal.SIGKILL)  # dies while idle: pebble declares the whole pool broken
        time.sleep(0.5)
        assert pool.map(work, [("ok", 4), ("ok", 5)])[0].value == 8
        assert pool.rebuilds >= 1


def test_close_leaves_no_worker_processes():
    pool = WorkerPool(num_workers=2, deadline_s=DEADLINE_S)
    pids = {o.value for o in pool.map(work, [("pid", 0)] * 6)}
    assert pids and all(_alive(pid) for pid in pids)
    pool.close()
    assert not any(_alive(pid) for pid in pids)
    assert pool.map(work, [("ok", 1)])[0].value == 2  # restarts lazily after close
    pool.close()


def test_pickles_without_processes(pool):
    pool.map(work, [("ok", 1)])
    clone = pickle.loads(pickle.dumps(pool))
    assert clone._pool is None and clone.deadline_s == DEADLINE_S
    assert clone.map(work, [("ok", 3)])[0].value == 6
    clone.close()


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="num_workers"):
        WorkerPool(0, 1.0)
    with pytest.raises(ValueError, match="deadline_s"):
        WorkerPool(1, 0)
    with pytest.raises(ValueError, match="start_method"):
        WorkerPool(1, 1.0, start_method="teleport")


def test_no_worker_outlives_an_interpreter_that_never_called_close(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "user.py"
    script.write_text(
        "import os\n"
        "from cipo.verifiers.math import MathVerifier\n"
        "if __name__ == '__main__':\n"
        "    verifier = MathVerifier(num_workers=2)\n"
        "    assert verifier([r'\\boxed{1}'], ['1'])[0].success\n"
        "    print(*{o.value for o in verifier.pool.map(os.readlink, ['/proc/self'] * 8)})\n"  # worker pids
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids
    give_up = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < give_up:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
