"""Which errors are a user's mistake (one paragraph) and which keep their traceback; which run
folders count as never started. The entry points' output: tests/test_entry_points.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from cipo.checkpointing.resume import resolve_ckpt_path
from cipo.cli.errors import (
    RunInterrupted,
    is_unstarted_run,
    paragraph,
    raised_by_cipo,
    reported_errors,
    user_error_message,
)


def _raised(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


def test_cipos_own_messages_are_user_errors():
    error = _raised(lambda: resolve_ckpt_path("/no/such.ckpt", "/tmp"))
    assert raised_by_cipo(error)
    assert user_error_message(error).startswith("ckpt_path='/no/such.ckpt': no such checkpoint file")


def test_a_library_error_or_a_bug_keeps_its_traceback():
    assert user_error_message(_raised(lambda: int("abc"))) is None  # a ValueError, but not cipo's message
    assert user_error_message(_raised(lambda: {}["key"])) is None
    assert user_error_message(_raised(lambda: None.missing)) is None


def test_a_target_built_with_wrong_arguments_names_the_key():
    node = {"_target_": "cipo.callbacks.progress.RLProgress", "colour": "red"}
    error = _raised(lambda: instantiate({"progress": node}).progress)
    assert isinstance(error, InstantiationException)
    assert user_error_message(error) == "progress: RLProgress.__init__() got an unexpected keyword argument 'colour'"


def test_a_paragraph_joins_the_lines_and_says_how_to_get_the_traceback():
    text = paragraph("cipo-train", "Could not override 'x'.\n  Key 'x' is not in struct\n")
    head, hint = text.split("\n")
    assert head == "cipo-train: error: Could not override 'x'. Key 'x' is not in struct"
    assert hint == "(HYDRA_FULL_ERROR=1 shows the traceback)"


def test_a_folder_with_only_hydra_files_and_logs_was_never_started(tmp_path: Path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "cli.log").write_text("")
    assert is_unstarted_run(tmp_path)
    (tmp_path / "tensorboard").mkdir()
    assert not is_unstarted_run(tmp_path)
    assert not is_unstarted_run(tmp_path / "missing")


def test_an_interrupted_command_exits_130():
    with pytest.raises(SystemExit) as info:
        with reported_errors("cipo-eval"):
            raise KeyboardInterrupt
    assert info.value.code == 130
    with pytest.raises(SystemExit) as info:
        with reported_errors("cipo-train"):
            raise RunInterrupted("stopped")
    assert info.value.code == 130


def test_no_folder_is_removed_outside_a_hydra_job(tmp_path):
    """A Hydra config without a job's runtime (composed, as tests and some tools do) names no run
    folder: nothing is removed and nothing is raised while an error is being reported."""
    from cipo.cli.errors import remove_unstarted_run
    from conftest import compose_train

    with compose_train([], tmp_path=tmp_path):
        assert remove_unstarted_run() is None
