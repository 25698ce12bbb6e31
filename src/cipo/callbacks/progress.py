"""The console's view of a run: one progress line per RL step, readable live and in a log file.

Lightning's bars count batches, and an RL step is one batch of one epoch here, so they show
``1/1 0.00it/s``. ``RLProgress`` counts RL steps instead:

    step  12/100 | 00:41 elapsed, ETA 05:02 | reward 0.469 | acc 0.469 | val_acc 0.453

* Every step's line goes to the ``cipo.progress`` logger (INFO), so it lands in the run's log
  file and, when the console is not a terminal (``> train.log``, a SLURM log, a pipe), on the
  console as one plain line per step, with ``val_acc`` on the steps that validated.
* On a terminal, a single live line (tqdm) shows the same fields, redrawn every second so the
  elapsed time moves during a step; log records are written above it
  (``tqdm.contrib.logging.logging_redirect_tqdm``), and the lines of validated steps and of the
  last step stay on the screen as history.
* Before the first RL step the rollout callback validates the initial policy, which can take a
  while on a real data set: the line says so while it runs and reports the result after.

Rewards and accuracies are read from ``trainer.callback_metrics`` (``rollout/reward_mean``,
``rollout/accuracy``, ``val/accuracy``), where the rollout callback puts them each step. Only
rank 0 prints. The ETA extrapolates the mean time of the steps run by this process.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

log = logging.getLogger("cipo.progress")
STEP_LINE = "cipo_step_line"  # a LogRecord attribute: a step's line that the live view replaces on a terminal
FIELDS = (("reward", "rollout/reward_mean"), ("acc", "rollout/accuracy"))


def format_duration(seconds: float) -> str:
    """``75.4`` -> ``01:15``; ``3725`` -> ``1:02:05`` (tqdm's format, so both views agree)."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def step_line(step: int, total: int, elapsed: float, eta: float | None, metrics: Mapping[str, float]) -> str:
    """The plain line for RL step ``step`` of ``total`` (``val_acc`` only if ``metrics`` holds it)."""
    width = len(str(total))
    timing = f"{format_duration(elapsed)} elapsed" + (f", ETA {format_duration(eta)}" if eta is not None else "")
    parts = [f"step {step:>{width}}/{total}", timing]
    parts += [f"{label} {metrics[key]:.3f}" for label, key in FIELDS if key in metrics]
    if "val/accuracy" in metrics:
        parts.append(f"val_acc {metrics['val/accuracy']:.3f}")
    return " | ".join(parts)


class _HideStepLines(logging.Filter):
    """On a terminal the live line shows every step; only validated steps stay as lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, STEP_LINE, False)


class RLProgress(ProgressBar):
    """Progress of an RL run in RL steps (see the module docstring).

    Args:
        validation_every: ``validation.every`` (0: never), to say when a step's line carries
            ``val_acc`` and whether the initial policy is validated first.
        validation_samples / validation_max_problems: ``validation.samples`` / ``.max_problems``,
            for the message shown while the initial policy is validated.
        live: True: the live terminal line; False: plain lines only; None: live when the
            stream is a terminal.
        stream: where the live line is drawn (default: standard output).
        refresh_s: seconds between redraws of the live line.
    """

    def __init__(
        self,
        validation_every: int = 0,
        validation_samples: int = 1,
        validation_max_problems: int | None = None,
        live: bool | None = None,
        stream: TextIO | None = None,
        refresh_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.validation_every = validation_every
        self.validation_samples = validation_samples
        self.validation_max_problems = validation_max_problems
        self.stream = stream
        self.live = live
        self.refresh_s = refresh_s
        self.enabled = True
        self._bar = None
        self._redirect = None
        self._filtered: list[logging.Handler] = []
        self._ticker: threading.Thread | None = None
        self._stop_ticking = threading.Event()
        self._fit_started = 0.0
        self._train_started = 0.0
        self._first_step = 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    # --- hooks ----------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        self._fit_started = time.monotonic()
        stream = self.stream or sys.stdout
        if self.live if self.live is not None else _is_terminal(stream):
            self._start_live(trainer, stream)
        if self.validation_every and trainer.ckpt_path is None:  # a fresh run validates its initial policy first
            message = (
                f"validating the initial policy on {self._heldout_size(trainer)} held-out problems x "
                f"{self.validation_samples} samples before RL step 1"
            )
            self._status(message)
            log.info(message, extra={STEP_LINE: True})

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        self._train_started, self._first_step = time.monotonic(), trainer.current_epoch
        metrics = _scalars(trainer.callback_metrics)
        if self._first_step == 0 and "val/accuracy" in metrics:
            log.info(
                "initial policy: val_acc %.3f (validated in %s)",
                metrics["val/accuracy"],
                format_duration(self._train_started - self._fit_started),
            )
        if self._bar is not None:  # a resumed run starts at its checkpoint's step
            self._bar.n = self._bar.last_print_n = self._first_step
            self._status("")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done, total = trainer.current_epoch + 1, trainer.max_epochs or 0
        eta = (now - self._train_started) / (done - self._first_step) * (total - done)
        metrics = _scalars(trainer.callback_metrics)
        validated = self.validation_every > 0 and (done % self.validation_every == 0 or done >= total)
        if not validated:
            metrics.pop("val/accuracy", None)
        line = step_line(done, total, now - self._fit_started, eta, metrics)
        # on a terminal, validated steps and the last one stay on the screen; the live line shows the rest
        log.info(line, extra={STEP_LINE: not (validated or done >= total)})
        if self._bar is not None:
            self._bar.n = done
            self._status(line.split(", ", 1)[1])  # the live line draws the step counter and elapsed itself

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_live()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop_live()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop_live()

    # --- the live line ----------------------------------------------------------------

    def _start_live(self, trainer: L.Trainer, stream: TextIO) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        console = [h for h in logging.root.handlers if _is_console_handler(h)]
        for handler in console:  # copied onto the handlers that logging_redirect_tqdm puts in their place
            handler.addFilter(_HideStepLines())
        self._filtered = console
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        self._bar = tqdm(
            total=trainer.max_epochs,
            file=stream,
            bar_format="step {n_fmt}/{total_fmt} | {elapsed} elapsed{postfix}",
            # a terminal that reports no size (0 x 0) gets 80 x 24: tqdm would draw 0 columns, or hide the line
            ncols=shutil.get_terminal_size().columns,
            nrows=shutil.get_terminal_size().lines,
            leave=False,  # the last step's line is logged
        )
        self._stop_ticking.clear()
        self._ticker = threading.Thread(target=self._tick, name="cipo-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop_ticking.wait(self.refresh_s):
            bar = self._bar
            if bar is not None:
                bar.refresh()

    def _status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def _stop_live(self) -> None:
        self._stop_ticking.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        for handler in self._filtered:
            for found in [f for f in handler.filters if isinstance(f, _HideStepLines)]:
                handler.removeFilter(found)
        self._filtered = []

    def _heldout_size(self, trainer: L.Trainer) -> int:
        records = getattr(trainer.datamodule, "heldout_records", [])
        return len(records[: self.validation_max_problems])


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _is_console_handler(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)
