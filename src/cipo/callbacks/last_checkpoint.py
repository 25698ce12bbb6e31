"""``<run>/checkpoints/last.ckpt``: the resume point, rewritten every N RL steps.

Written at the end of every ``every_n_steps``-th RL step, after the last one, and whenever the
run is about to stop early (Ctrl-C via ``GracefulStop``, SIGTERM, ``trainer.should_stop``), so a
stopped run always leaves a checkpoint of its last completed step. It derives from Lightning's
``Checkpoint`` so Lightning runs it after every other epoch-end hook (the replay controller has
been updated and every metric of the step logged when it writes). The long-lived snapshots
(``step*.ckpt``, pruned to ``checkpoint.keep_last_k``) are Lightning's ``ModelCheckpoint``.

Lightning's ``ModelCheckpoint(save_last=True)`` cannot be the resume point by itself: it writes
``last.ckpt`` only in steps where it writes a snapshot, and skips a step whose optimizer steps
were all skipped (the global step did not move).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from cipo.checkpointing.resume import LAST_NAME

log = logging.getLogger(__name__)


class LastCheckpoint(Checkpoint):
    def __init__(self, dirpath: str, every_n_steps: int = 1) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"checkpoint.every: RL steps between checkpoints, an integer >= 1, got {every_n_steps!r}")
        self.path = Path(dirpath) / LAST_NAME
        self.every_n_steps = every_n_steps

    @property
    def state_key(self) -> str:
        return self._generate_state_key(path=str(self.path))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        stopping = trainer.should_stop or trainer.received_sigterm
        if done % self.every_n_steps == 0 or done >= (trainer.max_epochs or 0) or stopping:
            # the full state (optimizer, loops, callbacks): said explicitly, or Lightning logs
            # "`weights_only` was not set, defaulting to `False`" at every write
            trainer.save_checkpoint(self.path, weights_only=False)
            if stopping and trainer.is_global_zero:
                log.warning("stopping early: wrote %s (after RL step %d)", self.path, done)
