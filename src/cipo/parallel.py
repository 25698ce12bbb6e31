"""The few cross-process operations a multi-process run needs (identity in one process).

Ranks exchange *sums and counts*, never averages of averages: the trainer's loss normalisers
and metrics, the rollout metrics and the replay controller's inputs are all rebuilt from
global totals, so every rank computes the same numbers a single process would have computed
on the whole step.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def sum_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """``{name: sum over ranks of values[name]}``; every rank must pass the same keys."""
    if not is_distributed() or not values:
        return dict(values)
    names = sorted(values)
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(names, tensor.cpu().tolist()))


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order (``[value]`` in one process)."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def shard(items: list, index: int, count: int, what: str = "data.batch_size") -> list:
    """Contiguous part ``index`` of ``count`` equal parts of ``items`` (a group never spans ranks)."""
    if count == 1:
        return list(items)
    if len(items) % count:
        raise ValueError(
            f"{what}={len(items)} is not divisible by the {count} training processes; "
            f"set it to a multiple of {count} (each process takes an equal share)"
        )
    size = len(items) // count
    return list(items[index * size : (index + 1) * size])


def full_weights(model: torch.nn.Module | None):
    """A context in which the policy's parameters are whole on every rank (rollout, sync, export).

    Under FSDP (``trainer=fsdp``) each rank holds a shard outside the training step; the rollout
    engines read whole weights, so they run inside ``summon_full_params`` (read-only: nothing they
    do is written back). The LightningModule must be one FSDP unit (no ``auto_wrap_policy``):
    FSDP forbids running a wrapped submodule's forward inside ``summon_full_params``. Any other
    strategy: nothing to do. Every rank must enter it (it gathers).
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    if not isinstance(model, FullyShardedDataParallel):
        return contextlib.nullcontext()
    if any(isinstance(m, FullyShardedDataParallel) for m in model.module.modules()):
        raise ValueError(
            "trainer.strategy.auto_wrap_policy must be null with cipo's rollout engines: they generate with "
            "the gathered weights between steps, which FSDP does not allow for separately wrapped layers"
        )
    return FullyShardedDataParallel.summon_full_params(model, writeback=False)


class GatheredEngine:
    """A rollout engine whose calls run inside ``full_weights(strategy.model)`` (for ``trainer=fsdp``)."""

    def __init__(self, engine: Any, strategy: Any) -> None:
        self.engine, self.strategy = engine, strategy

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with full_weights(self.strategy.model):
            return self.engine.generate(*args, **kwargs)

    def sync_weights(self) -> Any:
        with full_weights(self.strategy.model):
            return self.engine.sync_weights()

    def __getattr__(self, name: str) -> Any:  # sleep(), close(), ... of the wrapped engine
        return getattr(self.engine, name)
