"""ckpt_path values and resume=<run folder> on the command line."""

from __future__ import annotations

import logging
import os
import time

import pytest
import torch

from cipo.checkpointing.resume import latest_checkpoint, newest_config, resolve_ckpt_path, resume_arguments


def _touch(path, age=0.0):
    """A small, real checkpoint file (``.yaml`` files get text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ckpt":
        torch.save({"epoch": 0}, path)
    else:
        path.write_text("seed: 1\n")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def _truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_auto_last_and_explicit_paths(tmp_path):
    assert resolve_ckpt_path(None, tmp_path) is None
    assert resolve_ckpt_path("auto", tmp_path) is None  # nothing yet: start fresh
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: no checkpoint in .*resume=<that run's folder>"):
        resolve_ckpt_path("last", tmp_path)
    _touch(tmp_path / "checkpoints" / "step0004.ckpt", age=10)
    _touch(tmp_path / "checkpoints" / "step0009.ckpt", age=5)
    assert resolve_ckpt_path("auto", tmp_path).endswith("step0009.ckpt")  # newest snapshot, no last.ckpt
    _touch(tmp_path / "checkpoints" / "last.ckpt", age=20)
    assert resolve_ckpt_path("last", tmp_path).endswith("last.ckpt")  # last.ckpt wins
    explicit = tmp_path / "checkpoints" / "step0004.ckpt"
    assert resolve_ckpt_path(str(explicit), tmp_path) == str(explicit)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path='/nope.ckpt': no such checkpoint file"):
        resolve_ckpt_path("/nope.ckpt", tmp_path)


def test_a_dangling_last_link_falls_back_to_the_newest_snapshot(tmp_path):
    folder = tmp_path / "checkpoints"
    _touch(folder / "step0001.ckpt")
    (folder / "last.ckpt").symlink_to("step0099.ckpt")
    assert latest_checkpoint(folder) == folder / "step0001.ckpt"


def test_resume_argument_reopens_the_runs_config_and_folder(tmp_path):
    run = tmp_path / "runs" / "2026-01-01_00-00-00"
    _touch(run / ".hydra" / "config.yaml")
    assert resume_arguments(["trainer.max_epochs=8"]) == ["trainer.max_epochs=8"]
    args = resume_arguments([f"resume={run}", "trainer.max_epochs=8"])
    record = args[4]
    assert args == [
        f"--config-path={run / '.hydra'}",
        "--config-name=config",
        "trainer.max_epochs=8",
        f'hydra.run.dir="{run}"',
        record,
        "ckpt_path=auto",
    ]
    assert record.startswith("hydra.output_subdir=.hydra/resumes/")  # the launch's .hydra/ stays as it was
    assert resume_arguments([f"resume={run}", "ckpt_path=/x.ckpt"])[-1].startswith("hydra.output_subdir=")
    # with cipo's conf/: the saved config has no hydra section; the run's logging comes from conf/hydra/
    args = resume_arguments([f"resume={run}", "trainer.max_epochs=8"], config_dir="/conf")
    assert args[:3] == [f"--config-path={run / '.hydra'}", "--config-name=config", "--config-dir=/conf"]
    assert args[3:5] == ["trainer.max_epochs=8", f'hydra.run.dir="{run}"'] and args[5] == "+hydra=default"
    assert args[6].startswith("hydra.output_subdir=.hydra/resumes/") and args[7:] == ["ckpt_path=auto"]
    # two resumes from one process within the same second get two records (the second used to overwrite)
    records = {resume_arguments([f"resume={run}"])[-2] for _ in range(3)}
    assert len(records) == 3


@pytest.mark.parametrize(
    "argv, match",
    [
        (["resume=/no/such/run"], r"resume=/no/such/run: .*config\.yaml does not exist"),
        (["resume=/a", "resume=/b"], "given 2 times"),
        (["-m", "resume=/a"], "cannot be combined"),
    ],
)
def test_bad_resume_arguments_say_what_to_do(argv, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        resume_arguments(argv)


def test_a_resume_reopens_the_newest_resumes_config(tmp_path):
    run = tmp_path / "run"
    _touch(run / ".hydra" / "config.yaml")
    assert newest_config(run) == run / ".hydra" / "config.yaml"
    _touch(run / ".hydra" / "resumes" / "2026-01-01_00-00-00_7" / "config.yaml")
    _touch(run / ".hydra" / "resumes" / "2026-01-02_00-00-00_3" / "config.yaml")
    assert newest_config(run) == run / ".hydra" / "resumes" / "2026-01-02_00-00-00_3" / "config.yaml"
    assert resume_arguments([f"resume={run}"])[0] == f"--config-path={newest_config(run).parent}"


def test_a_truncated_last_checkpoint_falls_back_to_the_newest_readable_snapshot(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    _touch(folder / "step0002.ckpt", age=30)
    _touch(folder / "step0004.ckpt", age=20)
    _touch(folder / "last.ckpt", age=10)
    _truncate(folder / "last.ckpt")
    _truncate(folder / "step0004.ckpt", keep=0.9)
    with caplog.at_level(logging.WARNING, logger="cipo.checkpointing.resume"):
        found = resolve_ckpt_path("auto", tmp_path)
    assert found == str(folder / "step0002.ckpt")
    assert torch.load(found, weights_only=True) == {"epoch": 0}
    [warning] = caplog.records
    assert "last.ckpt is truncated" in warning.getMessage() and "resuming from" in warning.getMessage()
    assert str(folder / "last.ckpt") in warning.getMessage() and str(folder / "step0002.ckpt") in warning.getMessage()


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    folder = tmp_path / "checkpoints"
    _touch(folder / "last.ckpt")
    _truncate(folder / "last.ckpt")
    (folder / "step0001.ckpt").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"no readable checkpoint in .*last\.ckpt is truncated.*step0001\.ckpt is empty"
    ):
        resolve_ckpt_path("auto", tmp_path)
    with pytest.raises(ValueError, match=r"ckpt_path=.*last\.ckpt' is truncated"):
        resolve_ckpt_path(str(folder / "last.ckpt"), tmp_path)
