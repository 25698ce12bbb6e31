"""The last lines of a run: its folder, the final held-out accuracy, what to run next."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cipo.cli.run_summary import RunEnd, run_end_text, shown_path, sibling_command


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("cipo-train", "cipo-eval", "tensorboard"):
        (bin_dir / name).write_text("")
    monkeypatch.setattr(sys, "argv", [str(bin_dir / "cipo-train")])
    monkeypatch.setenv("PATH", "/usr/bin")
    return tmp_path


def test_paths_and_commands_as_the_user_would_type_them(in_tmp):
    assert shown_path(in_tmp / "logs" / "x") == "logs/x"
    assert shown_path("/elsewhere/y") == "/elsewhere/y"
    assert sibling_command("cipo-eval") == ".venv/bin/cipo-eval"
    assert sibling_command("not-installed") == "not-installed"


def test_a_finished_run(in_tmp):
    end = RunEnd(in_tmp / "logs/train/runs/T", 100, 100, 271, exported=True, stopped=False, validation_every=10)
    assert run_end_text(end, {"val/accuracy": 0.5664}).splitlines() == [
        "cipo-train: finished RL step 100 of 100 in 04:31",
        "  run folder   logs/train/runs/T",
        "  held-out     val_acc 0.566 after RL step 100 (val/accuracy; all metrics: docs/metrics.md)",
        "  view         .venv/bin/tensorboard --logdir logs/train/runs/T",
        "  evaluate     .venv/bin/cipo-eval run_dir=logs/train/runs/T",
    ]


def test_without_an_exported_policy_the_last_checkpoint_is_evaluated(in_tmp):
    end = RunEnd(Path("/runs/T"), 3, 3, 5, exported=False, stopped=False, validation_every=0)
    text = run_end_text(end, {})
    assert "  run folder   /runs/T" in text and "not measured (validation.every=0)" in text
    assert text.endswith(".venv/bin/cipo-eval run_dir=/runs/T ckpt=last")


def test_a_stopped_run_says_which_validation_it_reports_and_how_to_resume(in_tmp):
    end = RunEnd(in_tmp / "r", 37, 100, 60, exported=False, stopped=True, validation_every=10)
    lines = run_end_text(end, {"val/accuracy": 0.4}).splitlines()
    assert lines[0] == "cipo-train: stopped at your request after RL step 37 of 100 in 01:00"
    assert "val_acc 0.400 after RL step 30" in lines[2]
    assert lines[-1] == "  resume       .venv/bin/cipo-train resume=r"
    early = RunEnd(in_tmp / "r", 4, 100, 9, exported=False, stopped=True, validation_every=10)
    assert "val_acc 0.400 of the initial policy" in run_end_text(early, {"val/accuracy": 0.4})
