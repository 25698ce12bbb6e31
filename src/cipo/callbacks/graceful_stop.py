"""Ctrl-C finishes the current RL step, writes a checkpoint and stops; a second Ctrl-C stops at once.

Without this, Ctrl-C raises ``KeyboardInterrupt`` wherever the run happens to be (usually in
generation) and Lightning exits without a checkpoint of the work since the last one. The first
SIGINT only sets a flag; at the end of the step every rank agrees on it (a rank that missed the
signal must stop too), ``trainer.should_stop`` is set, and ``LastCheckpoint`` writes
``last.ckpt``. The run then ends (``cipo.cli.train`` prints the resume command and raises
``RunInterrupted``: the command exits with status 130) and can be resumed. A second
Ctrl-C restores the previous handler and interrupts at once (the newest checkpoint is then the
last one written).
"""

from __future__ import annotations

import logging
import signal
import threading

import lightning as L

log = logging.getLogger(__name__)


class GracefulStop(L.Callback):
    def __init__(self, resume_hint: str = "") -> None:
        self.resume_hint = resume_hint
        self.requested = False
        self._previous = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if threading.current_thread() is threading.main_thread() and self._previous is None:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "Ctrl-C: finishing this RL step, then writing a checkpoint and stopping "
            "(press Ctrl-C again to stop at once, losing this step)"
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self.requested = True
            trainer.should_stop = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            log.warning(
                "interrupted during RL step %d; the newest checkpoint is kept. %s",
                trainer.current_epoch + 1,
                self.resume_hint,
            )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
