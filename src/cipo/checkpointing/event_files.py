"""Cut TensorBoard event files back to the moment a checkpoint was written.

A run killed after its last checkpoint has already logged points that the resumed run will log
again (the steps between the checkpoint and the kill). Every checkpoint records the wall time
up to which everything logged is part of it (``logged_until``; the loggers are flushed first),
and before a resumed run starts logging, every event created after that time is removed from
the run's event files. The curves then hold each point once, whichever reader opens them
(TensorBoard's ``purge_step`` cannot do this here: it cuts every tag at one step, while our
``train/*`` tags count optimizer updates and ``rollout/*`` tags count RL steps).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.record_writer import RecordWriter

EVENT_GLOB = "events.out.tfevents.*"


def wait_until_after_newest(folder: str | Path, clock=time.time, sleep=time.sleep) -> float:
    """Sleep until the wall clock's second is past every event file's name stamp; returns seconds slept.

    Event files are named ``events.out.tfevents.<unix seconds>.<host>.<pid>...`` and readers
    (TensorBoard included) load a folder's files in name order. A run resumed within the same
    second as the previous writer started would otherwise sort by pid (as a string), so its points
    could be read *before* the ones they continue.
    """
    stamps = []
    for path in Path(folder).rglob(EVENT_GLOB):
        field = path.name.split(".")[3]
        if field.isdigit():
            stamps.append(int(field))
    if not stamps:
        return 0.0
    wait = max(stamps) + 1 - clock()
    if wait > 0:
        sleep(wait)
    return max(wait, 0.0)


def cut_event_files(folder: str | Path, until: float) -> dict[str, int]:
    """Drop events with ``wall_time > until`` from every event file under ``folder``.

    A file left with no event but its header is deleted; a truncated last record (a writer
    killed mid-write) is dropped too. Returns ``{"kept": n, "dropped": n, "files_removed": n}``.
    """
    totals = {"kept": 0, "dropped": 0, "files_removed": 0}
    for path in sorted(Path(folder).rglob(EVENT_GLOB)):
        header, kept, dropped = [], [], 0
        for raw in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(raw)
            if event.HasField("file_version"):
                header.append(raw)
            elif event.wall_time <= until:
                kept.append(raw)
            else:
                dropped += 1
        totals["kept"] += len(kept)
        totals["dropped"] += dropped
        if not kept:
            path.unlink()
            totals["files_removed"] += 1
        elif dropped or _size(header + kept) != path.stat().st_size:
            _rewrite(path, header + kept)
    return totals


def _size(records: list[bytes]) -> int:
    return sum(len(raw) + 16 for raw in records)  # 8-byte length and two 4-byte CRCs per record


def _rewrite(path: Path, records: list[bytes]) -> None:
    temporary = path.with_name(f".{path.name}.cut")
    with open(temporary, "wb") as handle:
        writer = RecordWriter(handle)
        for raw in records:
            writer.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
