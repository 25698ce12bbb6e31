"""Faults that must not kill a run, injected through ``cipo-train``'s ``train(cfg)``.

Each test says what it injects; together with tests/test_resume.py (SIGKILL) and
tests/checkpointing/test_atomic_io.py (a crash during a checkpoint write).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

import fakes
from cipo.cli.errors import RunInterrupted
from cipo.cli.train import train
from cipo.module import CIPOModule
from conftest import compose_train
from fakes import read_series, record_rollouts


def run(tmp_path: Path, model_path: str, overrides=()):
    with compose_train(list(overrides), tmp_path=tmp_path, model_path=model_path) as cfg:
        metrics = train(cfg)
        return Path(cfg.paths.output_dir), metrics


def _nan_loss_at(monkeypatch, epochs):
    original = CIPOModule._micro_batch_loss

    def poisoned(self, micro, denominators):
        loss, stats = original(self, micro, denominators)
        if self.current_epoch in epochs:
            loss = loss * float("nan")
            stats["loss"] = float("nan")
        return loss, stats

    monkeypatch.setattr(CIPOModule, "_micro_batch_loss", poisoned)


def test_a_non_finite_loss_skips_the_update_counts_it_and_the_run_goes_on(
    tmp_path, tiny_policy_dir, monkeypatch, caplog
):
    """Injects: a NaN loss in RL step 2 of 3. The run skips that update, keeps the weights, logs
    train/skipped_steps and a warning, and trains normally again in step 3."""
    _nan_loss_at(monkeypatch, {1})
    fakes.WEIGHT_TRACE.clear()
    overrides = [
        "trainer.max_epochs=3",
        "+callbacks.trace._target_=fakes.WeightTrace",
        "rollout.engine._target_=fakes.scripted_engine",  # mixed rewards: every update moves the weights
        "+rollout.engine.script=alternating",
    ]
    with caplog.at_level(logging.WARNING):
        out, _ = run(tmp_path, tiny_policy_dir, overrides)
    trace = fakes.WEIGHT_TRACE
    assert trace[1] == trace[0] and trace[2] != trace[1]  # step 2 left the weights alone, step 3 trained
    skipped = dict(read_series(out / "tensorboard")["train/skipped_steps"])
    assert skipped == {0: 0.0, 1: 1.0, 2: 1.0}
    assert "RL step 1: non-finite loss or gradient" in caplog.text and "module.max_consecutive_skips=5" in caplog.text
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["cipo_skips"] == {"skipped_steps": 1, "consecutive": 0}


def test_k_non_finite_updates_in_a_row_stop_the_run_with_the_key_and_a_resume_point(
    tmp_path, tiny_policy_dir, monkeypatch
):
    """Injects: NaN losses from RL step 2 on, with module.max_consecutive_skips=2. The run stops in
    step 3 with a message naming the key, the fixes and how to resume; step 2's checkpoint is there."""
    _nan_loss_at(monkeypatch, {1, 2, 3})
    overrides = ["trainer.max_epochs=4", "module.max_consecutive_skips=2"]
    with pytest.raises(
        RuntimeError,
        match=r"RL step 2: 2 optimizer steps in a row .*module\.max_consecutive_skips=2.*optimizer\.lr.*resume=",
    ):
        run(tmp_path, tiny_policy_dir, overrides)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["cipo_skips"]["consecutive"] == 1


def test_empty_completions_are_scored_counted_and_warned_about_once(tmp_path, tiny_policy_dir, caplog):
    """Injects: an engine whose every completion is empty. Both steps run; the samples score 0 as
    no_answer, rollout/num_empty counts them, and one warning says so."""
    overrides = ["rollout.engine._target_=fakes.scripted_engine", "+rollout.engine.script=empty", "validation.every=0"]
    with caplog.at_level(logging.WARNING):
        out, _ = run(tmp_path, tiny_policy_dir, overrides)
    scalars = read_series(out / "tensorboard")
    assert dict(scalars["rollout/num_empty"]) == {0: 16.0, 1: 16.0}  # B * G of debug=fast
    assert dict(scalars["verify/status_no_answer"]) == {0: 16.0, 1: 16.0}
    assert dict(scalars["rollout/reward_mean"]) == {0: 0.0, 1: 0.0}
    assert caplog.text.count("completion(s) are empty") == 1
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_a_mostly_unanswered_step_warns_with_the_setting_to_check(tmp_path, tiny_policy_dir, caplog):
    """Injects: completions without the verifier's answer line. The run goes on and warns that the
    verifier's answer format is the likely cause (nothing was cut off by the length limit)."""
    overrides = [
        "rollout.engine._target_=fakes.scripted_engine",
        "+rollout.engine.script=no_answer",
        "validation.every=0",
    ]
    with caplog.at_level(logging.WARNING):
        run(tmp_path, tiny_policy_dir, overrides)
    assert "16 of 16 samples have no final answer" in caplog.text and "verifier's answer format" in caplog.text


def test_prompts_longer_than_the_context_are_dropped_with_a_warning(tmp_path, tiny_policy_dir, monkeypatch, caplog):
    """Injects: 4 train prompts of 480 characters (the tiny model has 512 positions; a prompt needs
    its length + 2 x 32 + the template). They are dropped at start, counted in a warning, and no
    rollout ever contains them, although the 4 remaining prompts are drawn twice."""
    seen = record_rollouts(monkeypatch)
    overrides = [
        "data.train._target_=fakes.records_with_long_prompts",
        "data.train.num_records=4",
        "validation.every=0",
    ]
    with caplog.at_level(logging.WARNING):
        run(tmp_path, tiny_policy_dir, overrides)
    assert "dropped 4 train and 0 held-out prompts that do not fit" in caplog.text and "long-" in caplog.text
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert all(batch.input_ids.shape[1] < 300 for _, batch in seen)


def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_the_run_resumes(
    tmp_path, tiny_policy_dir, monkeypatch, caplog
):
    """Injects: one SIGINT during RL step 2 of 4. The step completes, last.ckpt is written, the run
    ends with its summary and resume command and raises RunInterrupted (cipo-train exits with 130;
    tests/test_entry_points.py), the policy is not exported, and ckpt_path=auto continues with
    steps 3 and 4."""
    overrides = [
        "trainer.max_epochs=4",
        "+callbacks.interrupt._target_=fakes.InterruptAt",
        "+callbacks.interrupt.epoch=1",
    ]
    with caplog.at_level(logging.INFO), pytest.raises(RunInterrupted, match="after RL step 2"):
        run(tmp_path, tiny_policy_dir, overrides)
    out = tmp_path / "run"
    assert "Ctrl-C: finishing this RL step" in caplog.text
    assert "cipo-train: stopped at your request after RL step 2 of 4" in caplog.text
    assert f"resume       cipo-train resume={out}" in caplog.text
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and not (out / "policy").exists()
    seen = record_rollouts(monkeypatch)
    run(tmp_path, tiny_policy_dir, ["trainer.max_epochs=4", "ckpt_path=auto"])
    assert [epoch for epoch, _ in seen] == [2, 3]
    assert [step for step, _ in read_series(out / "tensorboard")["rollout/accuracy"]] == [0, 1, 2, 3]


def test_a_second_ctrl_c_stops_at_once_and_the_last_checkpoint_still_resumes(tmp_path, tiny_policy_dir, monkeypatch):
    """Injects: two SIGINTs during RL step 3. The run exits at once (Lightning's interrupt path,
    exit code 1); step 2's checkpoint is intact and ckpt_path=auto redoes step 3."""
    overrides = [
        "trainer.max_epochs=3",
        "+callbacks.interrupt._target_=fakes.InterruptAt",
        "+callbacks.interrupt.epoch=2",
        "+callbacks.interrupt.times=2",
    ]
    with pytest.raises(SystemExit):
        run(tmp_path, tiny_policy_dir, overrides)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1
    seen = record_rollouts(monkeypatch)
    run(tmp_path, tiny_policy_dir, ["trainer.max_epochs=3", "ckpt_path=auto"])
    assert [epoch for epoch, _ in seen] == [2]


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits(tmp_path, tiny_policy_dir, monkeypatch):
    """Injects: SIGTERM (what a scheduler sends before killing a job) during RL step 2 of 4. The step
    completes, last.ckpt is written, the run stops with Lightning's SIGTERMException (a non-zero
    exit for the scheduler), and ckpt_path=auto continues with steps 3 and 4."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    overrides = [
        "trainer.max_epochs=4",
        "+callbacks.interrupt._target_=fakes.InterruptAt",
        "+callbacks.interrupt.epoch=1",
        "+callbacks.interrupt.signal_name=SIGTERM",
    ]
    with pytest.raises(SIGTERMException):
        run(tmp_path, tiny_policy_dir, overrides)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1
    seen = record_rollouts(monkeypatch)
    run(tmp_path, tiny_policy_dir, ["trainer.max_epochs=4", "ckpt_path=auto"])
    assert [epoch for epoch, _ in seen] == [2, 3]


def test_snapshots_are_pruned_to_keep_last_k(tmp_path, tiny_policy_dir):
    out, _ = run(tmp_path, tiny_policy_dir, ["trainer.max_epochs=5", "checkpoint.keep_last_k=2", "validation.every=0"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt", "step0003.ckpt", "step0004.ckpt"]
    assert not math.isnan(torch.load(out / "checkpoints" / "step0004.ckpt", weights_only=True)["epoch"])
