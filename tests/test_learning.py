"""The shipped policy really learns: held-out accuracy rises under the default CIPO config.

Slow (about 2-3 minutes on 2 cores): ``pytest -m slow``. The threshold is far below what the
default run reaches (about +15 points after 100 steps), so only a broken learning signal
(wrong advantage sign, stale batches, a no-op optimizer step) makes it fail.
"""

import pytest

from cipo.cli.train import train
from conftest import compose_train
from fakes import read_scalars


@pytest.mark.slow
def test_default_cipo_raises_heldout_accuracy(tmp_path):
    overrides = [
        "~callbacks.model_checkpoint",
        "trainer.max_epochs=40",
        "validation.every=40",
        "export_policy=false",
    ]
    with compose_train(overrides, tmp_path=tmp_path, fast=False) as cfg:
        train(cfg)
    accuracy = read_scalars(tmp_path / "run")["val/accuracy"]
    assert set(accuracy) == {0, 40}
    assert accuracy[40] >= accuracy[0] + 0.04, accuracy
