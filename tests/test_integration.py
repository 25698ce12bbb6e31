"""The batch trained on is the batch just generated (design.md: the hand-over must be proven).

Lightning reloads dataloaders before ``on_train_epoch_start``; the rollout therefore reaches
``training_step`` through ``pl_module.rollout_batch``. This test records what the callback
produced at each epoch start and every row ``training_step`` put through the loss.
"""

from __future__ import annotations

import pytest
import torch

from cipo.cli.train import train
from cipo.module import CIPOModule
from conftest import compose_train
from fakes import record_rollouts


@pytest.mark.parametrize("overrides", [[], ["algorithm.ppo_epochs=2", "module.micro_batch_size=5"]])
def test_trained_batch_is_the_generated_batch(tmp_path, tiny_policy_dir, monkeypatch, overrides):
    generated = record_rollouts(monkeypatch)
    trained: dict[int, list[torch.Tensor]] = {}
    original = CIPOModule._micro_batch_loss

    def recording(self, micro, denominators):
        trained.setdefault(self.current_epoch, []).append((micro.input_ids.clone(), micro.attention_mask.clone()))
        return original(self, micro, denominators)

    def real_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[int, ...]]:
        # Micro-batches hold length-sorted rows cut after their longest one: compare the real tokens, in any order.
        return [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(input_ids, attention_mask)]

    monkeypatch.setattr(CIPOModule, "_micro_batch_loss", recording)
    with compose_train(["trainer.max_epochs=3", "validation.every=0", *overrides], tmp_path, tiny_policy_dir) as cfg:
        train(cfg)

    assert [epoch for epoch, _ in generated] == [0, 1, 2]
    assert sorted(trained) == [0, 1, 2]
    passes = 2 if overrides else 1
    for epoch, batch in generated:
        seen = [row for ids, mask in trained[epoch] for row in real_rows(ids, mask)]
        assert len(seen) == passes * len(batch)  # every row, once per PPO epoch
        expected = real_rows(batch.input_ids, batch.attention_mask) * passes
        assert sorted(seen) == sorted(expected), f"epoch {epoch} trained on other rows"
        assert batch.step == epoch
    for (_, a), (_, b) in zip(generated, generated[1:]):
        assert a.input_ids.shape != b.input_ids.shape or not torch.equal(a.input_ids, b.input_ids)
