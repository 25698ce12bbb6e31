import pytest

from cipo.callbacks.last_checkpoint import LastCheckpoint


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_bad_interval_names_the_key(every, tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint\.every"):
        LastCheckpoint(str(tmp_path), every)


def test_writes_every_n_steps_at_the_end_and_when_stopping(tmp_path):
    saved = []

    class Trainer:
        max_epochs, should_stop, received_sigterm, is_global_zero = 10, False, False, True

        def save_checkpoint(self, path, weights_only=None):
            assert weights_only is False  # said explicitly: Lightning logs a line per write otherwise
            saved.append((self.current_epoch, path.name))

    trainer, callback = Trainer(), LastCheckpoint(str(tmp_path), every_n_steps=3)
    for epoch in range(10):
        trainer.current_epoch = epoch
        trainer.should_stop = epoch == 4
        callback.on_train_epoch_end(trainer, None)
    assert saved == [(2, "last.ckpt"), (4, "last.ckpt"), (5, "last.ckpt"), (8, "last.ckpt"), (9, "last.ckpt")]
