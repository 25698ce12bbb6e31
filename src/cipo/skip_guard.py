"""Non-finite updates: skipped and counted; ``max_consecutive_skips`` in a row stop the run.

A bf16 overflow or a degenerate batch can make one update's loss or gradient non-finite. Stepping
would write NaN into every weight; skipping loses one update. The guard skips, counts (the module
logs ``train/skipped_steps``) and warns, and a run of ``max_consecutive_skips`` stops training with
the settings to change, since by then the cause is not a passing accident.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


class SkipGuard:
    def __init__(self, max_consecutive_skips: int) -> None:
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self.consecutive = 0

    def allows_step(self, loss: float, grad_norm: float, where: str, warn: bool = True) -> bool:
        """True for a finite update; else count it, warn (``warn``) and return False, or raise
        once ``max_consecutive_skips`` updates in a row were non-finite. ``where`` names the step."""
        if math.isfinite(grad_norm) and math.isfinite(loss):
            self.consecutive = 0
            return True
        self.skipped_steps += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive_skips:
            raise RuntimeError(
                f"{where}: {self.consecutive} optimizer steps in a row had a non-finite loss or gradient "
                f"(loss={loss}, grad_norm={grad_norm}), so the run stops (module.max_consecutive_skips="
                f"{self.max_consecutive_skips}). Lower optimizer.lr, set model.dtype=float32 or "
                "trainer.precision=32-true, or check the rewards/data; resume from the last checkpoint with "
                "`cipo-train resume=<run folder>` after changing the setting"
            )
        if warn:
            log.warning(
                "%s: non-finite loss or gradient (loss=%s, grad_norm=%s): update skipped, %d in a row "
                "(train/skipped_steps; the run stops at module.max_consecutive_skips=%d)",
                where,
                loss,
                grad_norm,
                self.consecutive,
                self.max_consecutive_skips,
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.consecutive = int(state.get("consecutive", 0))
