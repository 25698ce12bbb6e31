"""RLProgress: one line per RL step, plain in a log file, live on a terminal (driven here by a
stand-in trainer; tests/test_entry_points.py reads the lines of real runs)."""

from __future__ import annotations

import io
import logging
import sys
from types import SimpleNamespace

import pytest
import torch

from cipo.callbacks.progress import RLProgress, format_duration, step_line


@pytest.mark.parametrize("seconds, text", [(0, "00:00"), (75.4, "01:15"), (3599.6, "1:00:00"), (3725, "1:02:05")])
def test_durations_read_like_tqdm(seconds, text):
    assert format_duration(seconds) == text


def test_a_step_line_has_the_counter_times_and_the_metrics_it_is_given():
    metrics = {"rollout/reward_mean": 0.46875, "rollout/accuracy": 0.5, "train/loss": 1.0}
    line = step_line(7, 100, 41.2, 302, metrics)
    assert line == "step   7/100 | 00:41 elapsed, ETA 05:02 | reward 0.469 | acc 0.500"
    with_val = step_line(10, 100, 60, 0, {**metrics, "val/accuracy": 0.453})
    assert with_val.endswith("| acc 0.500 | val_acc 0.453")


class FakeTrainer(SimpleNamespace):
    """The attributes RLProgress reads; ``step(metrics)`` plays one RL step's end."""

    def __init__(self, max_epochs: int, heldout: int = 8, ckpt_path=None):
        super().__init__(
            max_epochs=max_epochs,
            current_epoch=0,
            ckpt_path=ckpt_path,
            is_global_zero=True,
            callback_metrics={},
            datamodule=SimpleNamespace(heldout_records=list(range(heldout))),
        )


def drive(progress: RLProgress, trainer: FakeTrainer, rewards: list[float], val: dict[int, float]) -> None:
    """Validation at x = 0 (fresh run), then RL steps with the given rewards; ``val`` maps
    completed steps to held-out accuracies (the rollout callback's callback_metrics)."""
    progress.setup(trainer, None, "fit")
    progress.on_fit_start(trainer, None)
    if 0 in val:
        trainer.callback_metrics["val/accuracy"] = torch.tensor(val[0])
    progress.on_train_start(trainer, None)
    for reward in rewards:
        trainer.callback_metrics["rollout/reward_mean"] = torch.tensor(reward)
        trainer.callback_metrics["rollout/accuracy"] = torch.tensor(reward)
        done = trainer.current_epoch + 1
        if done in val:
            trainer.callback_metrics["val/accuracy"] = torch.tensor(val[done])
        progress.on_train_epoch_end(trainer, None)
        trainer.current_epoch = done
    progress.on_train_end(trainer, None)
    progress.teardown(trainer, None, "fit")


def test_plain_lines_one_per_step_with_val_acc_on_validated_steps(caplog):
    progress = RLProgress(validation_every=2, validation_samples=4, validation_max_problems=5, live=False)
    with caplog.at_level(logging.INFO, logger="cipo.progress"):
        drive(progress, FakeTrainer(5), [0.1, 0.2, 0.3, 0.4, 0.5], {0: 0.25, 2: 0.5, 4: 0.75, 5: 0.8})
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "validating the initial policy on 5 held-out problems x 4 samples before RL step 1"
    assert messages[1].startswith("initial policy: val_acc 0.250 (validated in 00:0")
    steps = messages[2:]
    assert [m.split(" |")[0] for m in steps] == [f"step {k}/5" for k in range(1, 6)]
    last_fields = ["acc 0.100", "val_acc 0.500", "acc 0.300", "val_acc 0.750", "val_acc 0.800"]
    assert [m.rsplit("| ", 1)[1] for m in steps] == last_fields
    assert all(", ETA " in m for m in steps)
    assert all("\r" not in m for m in messages)  # a log file gets plain lines


def test_a_resumed_run_skips_the_initial_validation_and_counts_from_its_step(caplog):
    trainer = FakeTrainer(4, ckpt_path="last.ckpt")
    progress = RLProgress(validation_every=2, live=False)
    progress.setup(trainer, None, "fit")
    with caplog.at_level(logging.INFO, logger="cipo.progress"):
        progress.on_fit_start(trainer, None)
        trainer.current_epoch = 2  # restored from the checkpoint
        progress.on_train_start(trainer, None)
        trainer.callback_metrics["rollout/reward_mean"] = torch.tensor(0.5)
        progress.on_train_epoch_end(trainer, None)
    assert [r.getMessage().split(" |")[0] for r in caplog.records] == ["step 3/4"]


def test_only_rank_zero_prints(caplog):
    trainer = FakeTrainer(2)
    trainer.is_global_zero = False
    with caplog.at_level(logging.INFO, logger="cipo.progress"):
        drive(RLProgress(validation_every=1, live=False), trainer, [0.1, 0.2], {0: 0.1, 1: 0.2, 2: 0.3})
    assert not caplog.records


def test_live_line_on_a_terminal_keeps_only_validated_steps_as_lines(monkeypatch):
    """The live line is redrawn in place; log records go above it; a plain step's line is kept
    off the console (the live line shows it) but validated steps and the last one stay."""
    monkeypatch.setenv("COLUMNS", "160")  # the live line is cut at the terminal's width
    screen = io.StringIO()
    console = logging.StreamHandler(sys.stdout)  # what Hydra's console handler is
    monkeypatch.setattr(sys, "stdout", screen)
    console.setStream(screen)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [console])
    monkeypatch.setattr(root, "level", logging.INFO)
    progress = RLProgress(validation_every=2, live=True, stream=screen, refresh_s=0.01)
    drive(progress, FakeTrainer(3), [0.1, 0.2, 0.3], {0: 0.25, 2: 0.5, 3: 0.6})
    text = screen.getvalue()
    assert "\rstep 0/3 | 00:00 elapsed, validating the initial policy on 8 held-out problems x 1 samples" in text
    assert "\rstep 1/3 | " in text and ", ETA " in text and "reward 0.100" in text
    kept = [line for line in text.split("\n") if "step " in line.rsplit("\r", 1)[-1]]
    assert [line.rsplit("\r", 1)[-1].split(" |")[0] for line in kept] == ["step 2/3", "step 3/3"]
    assert "initial policy: val_acc 0.250" in text
    assert console.filters == [] and root.handlers == [console]  # the console is handed back as it was
    assert progress._ticker is None
