"""Event files cut at a wall time: later points go, earlier ones and other files stay."""

from __future__ import annotations

import time

from torch.utils.tensorboard import SummaryWriter

from cipo.checkpointing.event_files import cut_event_files, wait_until_after_newest
from fakes import read_series


def _write(folder, points):
    writer = SummaryWriter(str(folder))
    for tag, step, value in points:
        writer.add_scalar(tag, value, step)
    writer.flush()
    writer.close()


def test_points_after_the_stamp_are_removed_in_every_tag(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    writer.add_scalar("rollout/accuracy", 0.25, 0)
    writer.add_scalar("train/loss", 1.0, 0)
    writer.add_scalar("train/loss", 0.5, 1)
    writer.flush()
    time.sleep(0.05)
    stamp = time.time()
    time.sleep(0.05)
    writer.add_scalar("rollout/accuracy", 0.2, 1)
    writer.add_scalar("train/loss", 0.8, 2)
    writer.close()
    counts = cut_event_files(tmp_path, stamp)
    assert counts["dropped"] == 2 and counts["files_removed"] == 0
    assert read_series(tmp_path) == {"rollout/accuracy": [(0, 0.25)], "train/loss": [(0, 1.0), (1, 0.5)]}
    assert cut_event_files(tmp_path, stamp)["dropped"] == 0  # idempotent


def test_a_file_begun_after_the_stamp_is_deleted_and_minus_infinity_clears_all(tmp_path):
    _write(tmp_path, [("train/loss", 0, 1.0)])
    stamp = time.time()
    time.sleep(0.05)
    _write(tmp_path, [("train/loss", 1, 0.5)])
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert cut_event_files(tmp_path, stamp)["files_removed"] == 1
    assert read_series(tmp_path) == {"train/loss": [(0, 1.0)]}
    cut_event_files(tmp_path, float("-inf"))
    assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_a_truncated_last_record_is_dropped(tmp_path):
    _write(tmp_path, [("train/loss", 0, 1.0), ("train/loss", 1, 0.5)])
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-7])  # a writer killed mid-record
    cut_event_files(tmp_path, time.time())
    assert read_series(tmp_path) == {"train/loss": [(0, 1.0)]}
    _write(tmp_path, [("train/loss", 1, 0.25)])  # a resumed writer appends cleanly
    assert read_series(tmp_path) == {"train/loss": [(0, 1.0), (1, 0.25)]}


def test_a_resumed_writer_waits_until_its_file_sorts_after_the_existing_ones(tmp_path):
    """Same-second restarts would sort by pid as a string ('9999' > '10000'): wait into the next second."""
    (tmp_path / "events.out.tfevents.1700000005.host.9999.0").write_bytes(b"")
    (tmp_path / "events.out.tfevents.1700000003.host.10000.0").write_bytes(b"")
    slept: list[float] = []
    assert wait_until_after_newest(tmp_path, clock=lambda: 1700000005.25, sleep=slept.append) == 0.75
    assert slept == [0.75]
    slept.clear()
    assert wait_until_after_newest(tmp_path, clock=lambda: 1700000006.5, sleep=slept.append) == 0.0
    assert slept == [] and wait_until_after_newest(tmp_path / "empty-or-missing") == 0.0
