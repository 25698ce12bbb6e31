"""One memory limit and one process limit for all the processes of a code sample (cgroups).

RLIMIT_AS caps one process; a sample that forks five children gets five times that. A cgroup
per sample caps them together, counts what they write to the sample's tmpfs as memory, and
lists them for a last kill. Found at start, in this order, where this process may write:

  * cgroup v2 with the memory and pids controllers: ``memory.max``, ``memory.swap.max = 0``,
    ``pids.max`` under ``<this process's cgroup>/cipo-sandbox`` (or under the root's
    ``cipo-sandbox`` when this cgroup holds processes and so cannot delegate controllers);
  * cgroup v1 (what this project's machines have: v1 memory and pids, v2 without
    controllers): ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` where swap
    accounting exists; ``memory.swappiness = 0`` in any case, so swap cannot hold what the cap
    refuses) under this process's memory cgroup, and ``pids.max``.

Without either (no root, no delegation) samples run without a joint cap; ``sandbox.py`` logs it.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
PARENT_NAME = "cipo-sandbox"
_counter = itertools.count()


@dataclass(frozen=True)
class CgroupLayout:
    version: int
    memory: Path | None  # folder under which each sample gets a memory cgroup (v2: both controllers)
    pids: Path | None

    def describe(self) -> str:
        if self.version == 2:
            return f"cgroup v2 (memory.max + pids.max under {self.memory})"
        parts = [f"memory.limit_in_bytes under {self.memory}" if self.memory else "", "pids.max" if self.pids else ""]
        return "cgroup v1 (" + " + ".join(p for p in parts if p) + ")"


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, file system type, options) of every mount."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append((fields[1], fields[2], fields[3]))
    return found


def _own_paths() -> dict[str, str]:
    """{controller (or "" for v2): this process's cgroup path}."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _v2_parent(mount: Path, own: str) -> Path | None:
    for base in (mount / own.lstrip("/"), mount):
        try:
            if not {"memory", "pids"} <= set((base / "cgroup.controllers").read_text().split()):
                continue
            if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                _write(base / "cgroup.subtree_control", "+memory +pids")
            parent = base / PARENT_NAME
            parent.mkdir(exist_ok=True)
            _write(parent / "cgroup.subtree_control", "+memory +pids")
            return parent
        except OSError:
            continue
    return None


def find_layout() -> CgroupLayout | None:
    """Where per-sample cgroups can be made here, checked by making one; None if nowhere."""
    if os.geteuid() != 0 and not os.access("/sys/fs/cgroup", os.W_OK):
        return None
    try:
        mounts, own = _mounts(), _own_paths()
    except (OSError, ValueError):
        return None
    for point, kind, _ in mounts:
        if kind == "cgroup2" and "" in own:
            parent = _v2_parent(Path(point), own[""])
            if parent is not None and _works(layout := CgroupLayout(2, parent, parent)):
                return layout
    v1 = {}
    for point, kind, options in mounts:
        for controller in ("memory", "pids"):
            if kind == "cgroup" and controller in options.split(",") and controller in own:
                v1[controller] = Path(point) / own[controller].lstrip("/") / PARENT_NAME
    for controller, parent in list(v1.items()):
        try:
            parent.mkdir(exist_ok=True)
        except OSError:
            del v1[controller]
    layout = CgroupLayout(1, v1.get("memory"), v1.get("pids")) if v1 else None
    return layout if layout is not None and _works(layout) else None


def _works(layout: CgroupLayout) -> bool:
    try:
        SampleCgroup(layout, 64 * 2**20, 8).remove()
        _remove_stale(layout)
        return True
    except OSError as error:
        log.debug("cgroups at %s not usable: %s", layout, error)
        return False


def _remove_stale(layout: CgroupLayout) -> None:
    """Empty sample cgroups left by a trainer that was killed (their owner pid is gone)."""
    for parent in {layout.memory, layout.pids} - {None}:
        for folder in parent.iterdir():
            owner = folder.name.split("-")[0]
            if folder.is_dir() and owner.isdigit() and not Path(f"/proc/{owner}").exists():
                try:
                    folder.rmdir()
                except OSError:
                    pass


class SampleCgroup:
    """The cgroup(s) of one sample: made with their limits, removed after the sample's processes."""

    def __init__(self, layout: CgroupLayout, memory_bytes: int, processes: int) -> None:
        self.layout, self.limits = layout, (memory_bytes, processes)
        name = f"{os.getpid()}-{threading.get_native_id()}-{next(_counter)}"
        self.folders: list[Path] = []
        try:
            if layout.version == 2:
                folder = self._make(layout.memory / name)
                _write(folder / "memory.max", str(memory_bytes))
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", "0")
                _write(folder / "pids.max", str(processes))
                return
            if layout.memory is not None:
                folder = self._make(layout.memory / name)
                _write(folder / "memory.limit_in_bytes", str(memory_bytes))
                if (folder / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no swap either
                    _write(folder / "memory.memsw.limit_in_bytes", str(memory_bytes))
                try:  # without swap accounting, a machine with swap would let the sample page out past the cap
                    _write(folder / "memory.swappiness", "0")
                except OSError:
                    log.debug("memory.swappiness not settable under %s", folder)
            if layout.pids is not None:
                _write(self._make(layout.pids / name) / "pids.max", str(processes))
        except OSError:
            self.remove()
            raise

    def _make(self, folder: Path) -> Path:
        folder.mkdir()
        self.folders.append(folder)
        return folder

    def empty(self) -> None:
        """SIGKILL anything still in the cgroups (a last resort: the sandbox has killed them already)."""
        for folder in self.folders:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    pids = []
                if not pids:
                    break
                if (folder / "cgroup.kill").exists():
                    _write(folder / "cgroup.kill", "1")
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)

    def remove(self) -> None:
        self.empty()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still draining (a process being torn down)
                    time.sleep(0.01)
            else:
                log.warning("could not remove the sample cgroup %s (still busy)", folder)
        self.folders = []


def _remove_all(cgroups: dict) -> None:
    for cgroup in list(cgroups.values()):
        cgroup.remove()
    cgroups.clear()


class SampleCgroups:
    """One cgroup per trainer thread, reused by its samples (a thread runs one sample at a time):
    making and removing a memory cgroup costs more than a whole sample's namespaces."""

    def __init__(self) -> None:
        self._by_thread: dict[tuple[int, int], SampleCgroup] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _remove_all, self._by_thread)

    def for_this_thread(self, layout: CgroupLayout | None, memory_bytes: int, processes: int) -> SampleCgroup | None:
        if layout is None:
            return None
        key = (os.getpid(), threading.get_native_id())
        with self._lock:
            cgroup = self._by_thread.get(key)
        if cgroup is not None and (cgroup.layout, cgroup.limits) == (layout, (memory_bytes, processes)):
            return cgroup
        if cgroup is not None:
            cgroup.remove()
        cgroup = SampleCgroup(layout, memory_bytes, processes)
        with self._lock:
            self._by_thread[key] = cgroup
        return cgroup

    def remove_all(self) -> None:
        with self._lock:
            _remove_all(self._by_thread)

    def __getstate__(self) -> dict:  # a copy (pickled verifier) makes its own cgroups
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
