"""What a checkpoint needs beyond Lightning's own state for an exact resume.

Lightning stores the model, optimizer, schedulers, loop counters, callback and datamodule
states. This callback adds, under ``checkpoint["cipo_run_state"]``:

* ``rng``: the global random states (torch, CUDA, numpy, Python) of every rank, restored on
  each rank just before the first resumed RL step (at ``on_train_start``, after Lightning's
  own setup, so the first resumed step draws exactly what it would have drawn);
* ``logged_until``: the wall time up to which everything logged belongs to this checkpoint.
  The loggers are flushed first, so a run killed right after the write still has those points
  on disk; ``cipo.checkpointing.event_files.cut_event_files`` removes the later ones before a
  resumed run logs them again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states

from cipo.parallel import gather_objects

log = logging.getLogger(__name__)
STATE_KEY = "cipo_run_state"


def read_logged_until(checkpoint_path: str) -> float | None:
    """The ``logged_until`` stamp of a checkpoint file (memory-mapped: the tensors are not read)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", mmap=True, weights_only=False)
    return (checkpoint.get(STATE_KEY) or {}).get("logged_until")


class RunState(L.Callback):
    def __init__(self) -> None:
        self._rng_to_restore: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()  # flush: every point logged so far is on disk before the checkpoint is
        rng = _storable(_collect_rng_states())
        checkpoint[STATE_KEY] = {"rng": gather_objects(rng), "logged_until": time.time()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = (checkpoint.get(STATE_KEY) or {}).get("rng")
        if not states:
            return
        if len(states) != trainer.world_size:
            log.warning(
                "the checkpoint holds random states of %d processes but this run has %d: each rank "
                "continues from rank %% %d's state (the run is no longer an exact continuation)",
                len(states),
                trainer.world_size,
                len(states),
            )
        self._rng_to_restore = states[trainer.global_rank % len(states)]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng_to_restore is not None:
            _set_rng_states(_restorable(self._rng_to_restore))
            self._rng_to_restore = None


def _storable(states: dict[str, Any]) -> dict[str, Any]:
    """numpy's state as a tensor, so that the checkpoint loads with ``torch.load(weights_only=True)``."""
    if "numpy" in states:
        kind, keys, position, has_gauss, gauss = states["numpy"]
        states = {**states, "numpy": (kind, torch.from_numpy(keys.astype("int64")), position, has_gauss, gauss)}
    return states


def _restorable(states: dict[str, Any]) -> dict[str, Any]:
    if "numpy" in states:
        import numpy as np

        kind, keys, position, has_gauss, gauss = states["numpy"]
        states = {**states, "numpy": (kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss)}
    return states
