"""A run killed with SIGKILL and resumed continues as if it had never stopped.

4 RL steps straight vs. 2 steps, SIGKILL in the middle of step 3 (after its rollout and first
update were logged and flushed), then ``ckpt_path=auto`` in the same run folder to 4: the final
weights, optimizer and scheduler, counters, sampler position, replay state, global RNG draws and
every logged curve match, bitwise (one thread, CPU). Two mini-batches per step put ``train/*``
(one point per update) and ``rollout/*`` (one per RL step) on different x-axes, and a warm-up
makes the scheduler's state matter.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch

import fakes
from cipo.cli.train import train
from conftest import compose_train
from fakes import read_series

OVERRIDES = [
    "trainer.max_epochs=4",
    "algorithm.num_mini_batches=2",
    "scheduler.num_warmup_steps=3",
    "validation.every=2",
    "+callbacks.rng_probe._target_=fakes.RngProbe",
]
TIMING = ("time/", "throughput/", "compute/step_s")


def _train(tmp_path: Path, model_path: str, extra=()) -> Path:
    with compose_train(OVERRIDES + list(extra), tmp_path=tmp_path, model_path=model_path) as cfg:
        train(cfg)
        return Path(cfg.paths.output_dir)


def _killed_child(tmp_path: Path, model_path: str) -> int:
    """Runs in a forked process, which kills itself during RL step 3 (epoch 2)."""
    context = multiprocessing.get_context("fork")
    process = context.Process(
        target=_train,
        args=(
            tmp_path,
            model_path,
            ["+callbacks.kill._target_=fakes.KillAt", "+callbacks.kill.epoch=2", "+callbacks.kill.update=1"],
        ),
    )
    process.start()
    process.join(timeout=300)
    return process.exitcode


@pytest.fixture(scope="module")
def straight_and_resumed(tmp_path_factory, tiny_policy_dir):
    fakes.RNG_DRAWS.clear()
    straight = _train(tmp_path_factory.mktemp("straight"), tiny_policy_dir)
    straight_draws = dict(fakes.RNG_DRAWS)

    folder = tmp_path_factory.mktemp("killed")
    assert _killed_child(folder, tiny_policy_dir) == -9  # SIGKILL
    run = folder / "run"
    killed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert killed["epoch"] == 1  # the newest checkpoint is from the end of step 2
    assert any(tag.startswith("train/") for tag in read_series(run / "tensorboard"))
    killed_points = read_series(run / "tensorboard")

    fakes.RNG_DRAWS.clear()
    resumed = _train(folder, tiny_policy_dir, ["ckpt_path=auto"])
    assert resumed == run
    return straight, resumed, straight_draws, dict(fakes.RNG_DRAWS), killed_points


def test_the_killed_run_had_logged_past_its_checkpoint(straight_and_resumed):
    *_, killed_points = straight_and_resumed
    assert 2 in {step for step, _ in killed_points["rollout/accuracy"]}  # step 3 (x = 2) was on disk
    assert 4 in {step for step, _ in killed_points["train/loss"]}  # and its first update (x = 2 * 2)


def test_final_weights_optimizer_and_state_match_bitwise(straight_and_resumed):
    straight, resumed, *_ = straight_and_resumed
    a = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (3, 8)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    for pa, pb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(pa[key], pb[key]) for key in pa)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert a["PromptDataModule"] == b["PromptDataModule"]
    assert a["cipo_skips"] == b["cipo_skips"]
    key = next(k for k in a["callbacks"] if "RolloutCallback" in k)
    state_a, state_b = a["callbacks"][key], b["callbacks"][key]
    assert state_a["replay"] == state_b["replay"]  # the replay controller's state
    tokens = ("generated_tokens", "processed_tokens")  # the compute totals; seconds are timing
    assert {k: state_a["compute"][k] for k in tokens} == {k: state_b["compute"][k] for k in tokens}
    assert state_b["compute"]["processed_tokens"] > state_b["compute"]["generated_tokens"] > 0


def test_global_rng_continues_where_it_stopped(straight_and_resumed):
    _, _, straight_draws, resumed_draws, _ = straight_and_resumed
    assert sorted(resumed_draws) == [2, 3]
    assert resumed_draws == {epoch: straight_draws[epoch] for epoch in (2, 3)}


def test_logged_curves_match_without_duplicates(straight_and_resumed):
    straight, resumed, *_ = straight_and_resumed
    expected = read_series(straight / "tensorboard")
    found = read_series(resumed / "tensorboard")
    assert sorted(found) == sorted(expected)
    assert [step for step, _ in found["train/loss"]] == list(range(8))
    assert [step for step, _ in found["rollout/accuracy"]] == [0, 1, 2, 3]
    assert [step for step, _ in found["val/accuracy"]] == [0, 2, 4]
    for tag, points in expected.items():
        steps = [step for step, _ in found[tag]]
        assert len(steps) == len(set(steps)), f"{tag}: duplicated points {steps}"
        assert steps == [step for step, _ in points], tag
        if not tag.startswith(TIMING):
            assert [value for _, value in found[tag]] == [value for _, value in points], tag
    seconds = [value for _, value in found["compute/step_s"]]  # continued from the checkpoint, not from 0
    assert all(later > earlier for earlier, later in zip(seconds, seconds[1:])), seconds
