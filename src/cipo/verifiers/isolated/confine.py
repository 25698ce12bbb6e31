"""Mounts, limits and identities for one sample (standard library + ``ctypes`` for the few Linux
calls Python 3.11 lacks: mount, prctl, capset).

Identities (set by ``sandbox.py``; None when the trainer is not root):
  * the program's processes run as a uid of their own (``uid``), so they can signal, trace or
    read the ``/proc`` files of no other process, RLIMIT_NPROC counts this sample alone, and
    a kill of "every process of that uid" reaches every process the sample started;
  * the judge keeps root only for setup, then runs the reference's tests as ``judge_uid`` with
    one capability, CAP_KILL (to stop the program), and PR_SET_NO_NEW_PRIVS.

Filesystem (inside the sample's mount namespace): a size- and inode-capped tmpfs on /tmp (the
work dir, the judge's files in a root-only folder) with /dev/shm bound to a folder of it, and
every top-level folder that Python does not need (/work, /root, /home, /var, /run, /mnt, ...)
covered by an empty read-only tmpfs, so data sets and run folders are out of sight.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND = 1, 2, 4, 8, 4096
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS = 1, 4, 8, 38
CAP_KILL = 5
# Top-level folders a Python program may need; everything else is hidden when asked.
KEEP = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "sys", "tmp"}
LIMITS = {"memory_bytes": "RLIMIT_AS", "cpu_s": "RLIMIT_CPU", "file_bytes": "RLIMIT_FSIZE", "processes": "RLIMIT_NPROC"}

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def prctl(option: int, value: int) -> None:
    check(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), target)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def set_capabilities(mask: int) -> None:
    """Effective = permitted = ``mask`` (capabilities 0-31), nothing inheritable."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    check(libc.capset(ctypes.byref(header), data), "capset")


# --- the sample's filesystem -----------------------------------------------------------------


def interpreter_roots() -> set[str]:
    """Top-level folders holding this interpreter and its standard library (kept visible)."""
    paths = {sys.executable, sys.prefix, sys.base_prefix, os.path.realpath(sys.executable)}
    paths |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    return {p.strip("/").split("/")[0] for p in paths if p.startswith("/")}


def private_filesystem(scratch_bytes: int, scratch_files: int, hide: bool) -> list[str]:
    """Mount the sample's tmpfs on /tmp (and /dev/shm), hide what it must not see; returns the
    hidden folders. Only call inside a fresh mount namespace."""
    options = f"size={scratch_bytes},nr_inodes={scratch_files},mode=1777"
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options)
    if os.path.isdir("/dev/shm") and not os.path.islink("/dev/shm"):
        os.mkdir("/tmp/.shm", 0o1777)
        os.chmod("/tmp/.shm", 0o1777)
        mount("/tmp/.shm", "/dev/shm", None, MS_BIND)
    hidden = []
    if hide:
        keep = KEEP | interpreter_roots()
        for name in sorted(os.listdir("/")):
            path = "/" + name
            if name in keep or os.path.islink(path) or not os.path.isdir(path):
                continue
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=8,mode=755")
            hidden.append(path)
    return hidden


# --- the program's process -------------------------------------------------------------------


def arrange(descriptors: list[int]) -> None:
    """Make ``descriptors`` this process's 0, 1, 2, ... and close every other descriptor."""
    high = [os.dup(fd) for fd in descriptors]  # out of the way of the targets first
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(len(high), 1 << 20)


def become_program(settings: dict, descriptors: list[int], work: str) -> None:
    """In a freshly forked child: keep only ``descriptors`` (as 0, 1, 2, ...), join the sample's
    cgroups, set the limits and become the sample's uid. Anything failing here ends the child."""
    try:
        arrange(descriptors)
        for folder in settings.get("cgroups") or ():
            with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
                procs.write("0")
        os.setsid()
        for key, name in LIMITS.items():
            value = settings["limits"].get(key)
            if value is not None:
                # CPU: SIGXCPU at the soft limit (a timeout in the program), SIGKILL a second later
                resource.setrlimit(getattr(resource, name), (value, value + 1 if key == "cpu_s" else value))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        uid = settings.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        elif os.geteuid() == 0:  # root of a user namespace (no uid to switch to): shed every capability
            set_capabilities(0)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        os.chdir(work)
        os.umask(0o077)
        os.environ.update(HOME=work, TMPDIR=work)
    except BaseException as error:  # never run the program half-confined
        os.write(2, f"sandbox setup failed: {type(error).__name__}: {error}\n".encode())
        os._exit(71)


def become_judge(judge_uid: int | None) -> None:
    """Keep only CAP_KILL (to stop the program) and drop to ``judge_uid`` before any reference
    code runs; without root, just make this process untraceable by the program."""
    if judge_uid is not None and os.geteuid() == 0:
        prctl(PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(judge_uid, judge_uid, judge_uid)
        os.setresuid(judge_uid, judge_uid, judge_uid)
        set_capabilities(1 << CAP_KILL)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_programs(uid: int | None, fallback_group: int | None = None) -> None:
    """SIGKILL every process the sample started, then reap all of this process's children.

    As init of the sample's PID namespace, ``kill(-1)`` reaches every other process in it; else
    a helper with the sample's uid sends ``kill(-1)``, which reaches every process of that uid
    (each sample has its own). ``kill(-1)`` is never sent as root outside a PID namespace.
    """
    if os.getpid() == 1:
        _quiet(os.kill, -1, signal.SIGKILL)
    elif uid is not None and os.geteuid() == 0:
        helper = os.fork()
        if helper == 0:
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    elif fallback_group is not None:
        _quiet(os.killpg, fallback_group, signal.SIGKILL)
    while True:  # SIGKILLed processes end promptly; as init this also reaps the orphans
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def oom_kills(settings: dict) -> int:
    """Processes the kernel killed for the sample's memory cgroup limit so far."""
    count = 0
    for folder in settings.get("cgroups") or ():
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(folder, name)) as handle:
                    for line in handle:
                        key, _, value = line.partition(" ")
                        count += int(value) if key == "oom_kill" else 0
            except (OSError, ValueError):
                continue
    return count


def exit_description(returncode: int) -> str:
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _quiet(call, *args) -> None:
    try:
        call(*args)
    except OSError:
        pass
