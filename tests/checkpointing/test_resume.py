"""ckpt_path values and resume=<run folder> on the command line."""

from __future__ import annotations

import os
import time

import pytest

from cipo.checkpointing.resume import latest_checkpoint, resolve_ckpt_path, resume_arguments


def _touch(path, age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


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
    assert args == [
        f"--config-path={run / '.hydra'}",
        "--config-name=config",
        "trainer.max_epochs=8",
        f'hydra.run.dir="{run}"',
        "ckpt_path=auto",
    ]
    assert resume_arguments([f"resume={run}", "ckpt_path=/x.ckpt"])[-1] == f'hydra.run.dir="{run}"'
    # with cipo's conf/: the saved config has no hydra section; the run's logging comes from conf/hydra/
    args = resume_arguments([f"resume={run}", "trainer.max_epochs=8"], config_dir="/conf")
    assert args[:3] == [f"--config-path={run / '.hydra'}", "--config-name=config", "--config-dir=/conf"]
    assert args[3:] == ["trainer.max_epochs=8", f'hydra.run.dir="{run}"', "+hydra=default", "ckpt_path=auto"]


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
