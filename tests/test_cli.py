"""End to end through ``cipo.cli.train`` with ``debug=fast`` and the tiny random policy:
TensorBoard tags, sample table, checkpoints, exported policy, GRPO, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from cipo.algorithms.replay import ReplayControl, ReplayState, RetentionCounts, update_replay_ratio
from cipo.cli.train import train
from conftest import compose_train
from fakes import read_scalars, read_text_tags, record_rollouts

REQUIRED_TAGS = [
    "train/loss",
    "train/pg_loss",
    "train/correction_loss",
    "train/clipfrac",
    "train/grad_norm",
    "train/lr",
    "rollout/reward_mean",
    "rollout/accuracy",
    "rollout/frac_all_correct",
    "rollout/frac_all_wrong",
    "rollout/completion_len_mean",
    "correction/num_anchors",
    "correction/replay_ratio",
    "val/accuracy",
    "time/generate_s",
    "time/verify_s",
    "time/train_s",
    "throughput/tokens_per_s",
    "compute/generated_tokens",
    "compute/processed_tokens",
    "compute/step_s",
]


def run_train(tmp_path: Path, model_path: str, overrides=()):
    with compose_train(list(overrides), tmp_path=tmp_path, model_path=model_path) as cfg:
        metrics = train(cfg)
        return Path(cfg.paths.output_dir), metrics


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory, tiny_policy_dir):
    return run_train(tmp_path_factory.mktemp("fast_run"), tiny_policy_dir)


def test_runs_two_epochs_and_logs_the_required_tags(fast_run):
    out, metrics = fast_run
    scalars = read_scalars(out / "tensorboard")
    missing = [tag for tag in REQUIRED_TAGS if tag not in scalars]
    assert not missing, f"missing TensorBoard tags: {missing}"
    assert sorted(scalars["rollout/accuracy"]) == [0, 1]  # one point per RL step
    assert sorted(scalars["train/loss"]) == [0, 1]  # one optimizer step per RL step
    assert sorted(scalars["val/accuracy"]) == [0, 1, 2]  # initial policy, then after each step
    assert scalars["correction/num_anchors"][0] == 2  # debug=fast: 2 anchors
    assert scalars["correction/replay_ratio"][0] == pytest.approx(0.3)
    assert all(v >= 0 for v in scalars["time/train_s"].values())
    assert "val/accuracy" in metrics and "train/loss" in metrics


def test_sample_table_is_logged(fast_run):
    out, _ = fast_run
    assert any(tag.startswith("samples/rollouts") for tag in read_text_tags(out / "tensorboard"))


def test_checkpoint_and_exported_policy(fast_run):
    out, _ = fast_run
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file()
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2
    assert checkpoint["PromptDataModule"] == {"pass": 0, "position": 8}  # 2 steps x 4 prompts
    rollout_state = next(v for k, v in checkpoint["callbacks"].items() if "RolloutCallback" in k)
    assert set(rollout_state["replay"]) == {f.name for f in dataclasses.fields(ReplayState)}

    policy = out / "policy"
    assert (policy / "config.json").is_file() and (policy / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(policy)
    exported = model.state_dict()
    saved = {k.removeprefix("policy."): v for k, v in checkpoint["state_dict"].items() if k.startswith("policy.")}
    for name, tensor in exported.items():
        if name in saved:
            torch.testing.assert_close(tensor, saved[name], msg=name)  # the export is the trained policy
    assert "model.embed_tokens.weight" in saved


def test_periodic_checkpoint_names(fast_run):
    out, _ = fast_run
    assert (out / "checkpoints" / "step0000.ckpt").is_file()


def test_grpo_run(tmp_path, tiny_policy_dir):
    out, metrics = run_train(tmp_path, tiny_policy_dir, ["algorithm=grpo"])
    scalars = read_scalars(out / "tensorboard")
    assert set(scalars["correction/num_anchors"].values()) == {0.0}
    assert "correction/fix_rate" not in scalars
    assert sorted(scalars["train/loss"]) == [0, 1]
    assert (out / "policy" / "model.safetensors").is_file()


def _main_rows(batch, count):
    return [batch.input_ids[i][batch.attention_mask[i].bool()].tolist() for i in range(count)]


def test_resume_continues_one_epoch_and_restores_state(fast_run, tmp_path, tiny_policy_dir, monkeypatch):
    first_out, _ = fast_run
    checkpoint = torch.load(first_out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    key = next(k for k in checkpoint["callbacks"] if "RolloutCallback" in k)
    # a checkpoint of an older version (no moving sums): loads, and the sums start from 0
    planted = {"ratio": 0.55, "prev_retention": 0.4, "low_streak": 2}
    checkpoint["callbacks"][key]["replay"] = dict(planted)
    planted_ckpt = tmp_path / "planted.ckpt"
    torch.save(checkpoint, planted_ckpt)

    seen = record_rollouts(monkeypatch)
    out, _ = run_train(tmp_path / "resumed", tiny_policy_dir, ["trainer.max_epochs=3", f"ckpt_path={planted_ckpt}"])
    assert [epoch for epoch, _ in seen] == [2]  # exactly one more RL step
    scalars = read_scalars(out / "tensorboard")
    assert sorted(scalars["rollout/accuracy"]) == [2]
    assert scalars["correction/replay_ratio"][2] == pytest.approx(0.55)  # the restored ratio was used

    resumed = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 3
    assert resumed["PromptDataModule"] == {"pass": 0, "position": 12}
    names = ("num_kept", "num_from_right", "num_resolve_correct", "num_resolve_samples")
    evidence = RetentionCounts(*(scalars[f"correction/{name}"][2] for name in names))
    expected = update_replay_ratio(ReplayState.from_dict(planted), evidence, ReplayControl())
    assert ReplayState.from_dict(resumed["callbacks"][key]["replay"]).as_dict() == pytest.approx(expected.as_dict())

    # Resumed from the untouched checkpoint, step 3 generates exactly what an uninterrupted
    # 3-step run generates (weights, prompt sampler position, replay state and seeds restored).
    seen.clear()
    run_train(tmp_path / "straight", tiny_policy_dir, ["trainer.max_epochs=3"])
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    straight = seen[2][1]
    seen.clear()
    last = first_out / "checkpoints" / "last.ckpt"
    run_train(tmp_path / "resumed_again", tiny_policy_dir, ["trainer.max_epochs=3", f"ckpt_path={last}"])
    ((epoch, resumed_batch),) = seen
    assert epoch == 2
    assert _main_rows(resumed_batch, 4 * 4) == _main_rows(straight, 4 * 4)  # B * G of debug=fast
    assert torch.equal(resumed_batch.input_ids, straight.input_ids)


def test_ckpt_path_last_resolves_inside_the_run(tmp_path, tiny_policy_dir, monkeypatch):
    out, _ = run_train(tmp_path, tiny_policy_dir, ["trainer.max_epochs=1"])
    seen = record_rollouts(monkeypatch)
    run_train(tmp_path, tiny_policy_dir, ["trainer.max_epochs=2", "ckpt_path=last"])
    assert [epoch for epoch, _ in seen] == [1]


def test_export_can_be_disabled(tmp_path, tiny_policy_dir):
    out, _ = run_train(tmp_path, tiny_policy_dir, ["trainer.max_epochs=1", "export_policy=false", "validation.every=0"])
    assert not (out / "policy").exists()
    assert "val/accuracy" not in read_scalars(out / "tensorboard")
