"""Starts sample sandboxes by forking: one of these per trainer process, started once, so a
sample costs a few forks instead of an interpreter start and its imports (about 25 ms of CPU).

Run as ``python -I boot.py launcher <control fd> <trainer pidfd or -1> <isolation>``. It holds
nothing of any sample: the trainer sends it a sample's three descriptors (request, reports,
errors) over a SOCK_SEQPACKET socket; it forks A, which takes them as 0, 1, 2 (and the trainer's
pidfd as 3), starts a session, enters fresh mount, PID, IPC and network namespaces (plus a user
namespace mapping this uid to root when the trainer is not root) and forks B, the sample's init,
which mounts its /proc and runs ``judge.main``. A waits for B and exits with its status. The
trainer gets a pidfd of A to wait on and kills A's process group at its deadline (A is reaped
only when the trainer asks, so its pid and process group cannot be reused before that).
The launcher exits when the trainer closes the socket or dies.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys

from . import confine, judge

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)
MS_REC, MS_PRIVATE = 16384, 1 << 18
TRAINER_FD = 3


def enter_namespaces(user: bool) -> None:
    """Fresh mount, PID (for the next child), IPC and network namespaces for this process."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | (CLONE_NEWUSER if user else 0)
    confine.check(confine.libc.unshare(flags), "unshare")
    if user:  # root inside, this uid outside (what `unshare --map-root-user` does)
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    confine.mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host


def become_init() -> None:
    """In the first process of the new PID namespace: its own /proc."""
    confine.mount("proc", "/proc", "proc", confine.MS_NOSUID | confine.MS_NODEV | confine.MS_NOEXEC)


def probe(user: bool) -> str | None:
    """None if namespaces can be entered here, else why not (tried in a throwaway child)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            enter_namespaces(user)
            init = os.fork()
            if init == 0:
                become_init()
                os._exit(0 if os.getpid() == 1 else 1)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(init, 0)[1]))
        except BaseException as error:
            os.write(write, f"{type(error).__name__}: {error}".encode()[:500])
            os._exit(1)
    os.close(write)
    why = os.read(read, 500).decode(errors="replace")
    os.close(read)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return None if status == 0 else (why or f"the namespace test ended with status {status}")


def start(descriptors: list[int], trainer_fd: int | None, namespaces: bool, user: bool) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        confine.arrange(descriptors + ([trainer_fd] if trainer_fd is not None else []))  # 0-2, and 3
        if namespaces:
            enter_namespaces(user)
            init = os.fork()
            if init:
                os._exit(os.waitstatus_to_exitcode(os.waitpid(init, 0)[1]) & 0xFF)
            become_init()
        judge.main()
    except BaseException as error:  # a sandbox that could not be set up runs nothing
        os.write(2, f"sandbox start failed: {type(error).__name__}: {error}\n".encode())
    os._exit(70)


def serve(control_fd: int, trainer_fd: int | None, isolation: str) -> None:
    control = socket.socket(fileno=control_fd)
    user = os.geteuid() != 0
    why = probe(user) if isolation != "none" else "verifier.isolation=none"
    control.send(json.dumps({"namespaces": why is None, "why": why}).encode())
    watch = [control] + ([trainer_fd] if trainer_fd is not None else [])
    while True:
        ready = select.select(watch, [], [])[0]
        if trainer_fd is not None and trainer_fd in ready:
            os._exit(0)  # the trainer died: its samples stop by themselves (they watch it too)
        message, descriptors, _, _ = socket.recv_fds(control, 1 << 16, 4)
        if not message:
            os._exit(0)  # the trainer closed the socket
        request = json.loads(message)
        if request.get("op") == "start":
            pid = start(descriptors, trainer_fd, why is None, user)
            for fd in descriptors:
                os.close(fd)
            pidfd = os.pidfd_open(pid)  # before the trainer could ask to reap it: always this sample's
            socket.send_fds(control, [json.dumps({"pid": pid}).encode()], [pidfd])
            os.close(pidfd)
        else:
            try:
                code = os.waitstatus_to_exitcode(os.waitpid(int(request.get("pid", -1)), 0)[1])
            except (ChildProcessError, ValueError, TypeError):
                code = None
            control.send(json.dumps({"returncode": code}).encode())


def main(argv: list[str]) -> None:
    if argv[:1] == ["probe"]:
        print(json.dumps({"why": probe(os.geteuid() != 0)}))
        return
    _, control_fd, trainer_fd, isolation = argv
    serve(int(control_fd), None if trainer_fd == "-1" else int(trainer_fd), isolation)


if __name__ == "__main__":
    main(sys.argv[1:])
