"""RolloutCallback: generation, verification and correction episodes around every RL step.

    on_train_start        sync the engine and check it, validate the initial policy (val/* at 0)
    on_train_epoch_start  prompts -> collect_round -> pl_module.rollout_batch; the round's counts
                          (merged over ranks) -> log rollout/*;
                          let the engine sleep (free GPU memory) while the trainer runs
    on_train_epoch_end    hand weights to the engine and check the sync, update the replay
                          ratio from the counts' retention evidence, validate every ``validation.every``
                          epochs (and after the last one)

The sync check: an engine with its own copy of the weights returns a ``SyncReport`` (max
per-token logprob difference between engine and trainer on a fixed probe); it is logged as
``rollout/sync_logprob_diff`` and a value above ``rollout.sync_tolerance`` stops the run.

The callback owns the engine and the replay controller state; both the state and the
sampler position are saved in checkpoints. Its metrics go straight to the loggers at x = RL
step (not through Lightning's epoch-end logging), so they are on disk before the step's
checkpoint is written and an exact resume can cut the logs at that checkpoint.

Compute axes: ``compute/generated_tokens``, ``compute/processed_tokens`` (the real tokens the
module ran through the training forward with gradient, over all of a step's updates: each row's
prompt + completion, but a prompt shared by rows of one micro-batch counts once, as it runs once;
models/prefix_sharing.py) and ``compute/step_s`` (RL step time, validation excluded) are running
totals logged at every step; they are saved in checkpoints, so a resumed run continues them exactly.

Several processes: each rank collects its contiguous share of the step's prompts and anchors
with its own seeds; the per-rank ``RoundCounts`` are summed (``rollout/round_counts.py``), so the
logged values and the retention that drives the replay controller are the whole step's,
identical on every rank.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy

from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.correction import continuation_suffix, training_correction_template
from cipo.algorithms.replay import ReplayState, initial_replay_state, update_replay_ratio
from cipo.parallel import GatheredEngine, gather_objects, shard
from cipo.rollout.collect import collect_round
from cipo.rollout.engine import RolloutEngine, SamplingSettings, SyncReport, spread_seed
from cipo.rollout.evaluate import evaluate_records
from cipo.rollout.health import sample_warnings
from cipo.rollout.round_counts import RoundCounts
from cipo.settings import ValidationSettings
from cipo.verifiers import Verifier

EngineFactory = Callable[..., RolloutEngine]
COMPUTE_AXES = ("generated_tokens", "processed_tokens", "step_s")  # logged as compute/<axis>, running totals
log = logging.getLogger(__name__)


class RolloutCallback(L.Callback):
    def __init__(
        self,
        engine: EngineFactory,
        verifier: Verifier,
        algorithm: AlgorithmConfig,
        sampling: SamplingSettings,
        validation: ValidationSettings,
        seed: int,
    ) -> None:
        self.engine_factory, self.engine = engine, None
        self.verifier, self.algorithm, self.sampling = verifier, algorithm, sampling
        self.validation, self.seed = validation, seed
        self.replay = initial_replay_state(algorithm.correction.replay)
        self.round_counts: RoundCounts | None = None  # this step's (all ranks), from epoch start to end
        self.compute_totals = dict.fromkeys(COMPUTE_AXES, 0.0)
        self.last_validation: dict[str, float] = {}
        self._epoch_started = 0.0
        self.rank, self.world_size, self.rank_algorithm = 0, 1, algorithm
        self._warned: set[str] = set()

    # --- hooks ----------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.rank, self.world_size = trainer.global_rank, trainer.world_size
        if self.world_size > 1:  # the epoch metrics logged here are merged by hand, equal on all ranks
            warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting")
        self.rank_algorithm = per_rank_algorithm(self.algorithm, self.world_size)
        if self.engine is None:
            self.engine = self.engine_factory(model=pl_module.policy, tokenizer=pl_module.tokenizer)
            if isinstance(trainer.strategy, FSDPStrategy):  # sharded weights: gather them for every call
                self.engine = GatheredEngine(self.engine, trainer.strategy)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After a checkpoint restore the trainer's weights are not the ones the engine started
        # from; checked (a failure is logged and stops the run) but not logged when it passes.
        datamodule = trainer.datamodule  # a {feedback} template that would reveal the verdict fails before any step
        training_correction_template(
            datamodule.correction_template, datamodule.verdict_template, self.algorithm.correction.reveal_verdict
        )
        self._sync(trainer)
        if self.validation.every and trainer.current_epoch == 0:
            self._validate(trainer, pl_module, completed_steps=0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = time.perf_counter()
        datamodule = trainer.datamodule
        template = training_correction_template(
            datamodule.correction_template, datamodule.verdict_template, self.algorithm.correction.reveal_verdict
        )
        # Every rank draws the whole step's prompts (the sampler stays identical everywhere) and
        # keeps its own contiguous share: whole groups, so advantages never need another rank.
        prompts = shard(datamodule.next_prompts(), self.rank, self.world_size)
        result = collect_round(
            self.engine,
            pl_module.tokenizer,
            self.verifier,
            prompts,
            self.rank_algorithm,
            self.sampling,
            template,
            self.replay.ratio,
            seed=self._seed(trainer.current_epoch),
            step=trainer.current_epoch,
            draw=datamodule.next_prompts,  # dynamic sampling's refills (one process: see setup)
            transplant_inline=self._transplant_inline(datamodule, template),
        )
        pl_module.rollout_batch = result.batch
        counts = dataclasses.replace(result.counts, rollout_s=time.perf_counter() - self._epoch_started)
        # The step's counts (every rank's shard summed): the logged values and the retention that
        # drives the replay controller are the whole step's, identical on every rank.
        self.round_counts = RoundCounts.merge(gather_objects(counts))
        metrics = {**self.round_counts.metrics(), "correction/replay_ratio": self.replay.ratio}
        self._warn_once(trainer, metrics, len(prompts) * self.world_size * self.rank_algorithm.group_size)
        # Straight to the loggers, at x = RL step: on disk before this step's checkpoint is written.
        self._log_to_loggers(trainer, metrics, step=trainer.current_epoch)
        # Also in callback_metrics (progress line, train()'s return): already equal on every rank.
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, logger=False)
        self._log_samples(trainer, result.samples, trainer.current_epoch)
        sleep = getattr(self.engine, "sleep", None)
        if sleep is not None:
            sleep()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train_started = time.perf_counter()
        counts = self.round_counts
        metrics = self._sync(trainer)
        if self.algorithm.correction.enabled:  # the controller reads the step's counts
            evidence = counts.retention_counts() if counts is not None else None
            self.replay = update_replay_ratio(self.replay, evidence, self.algorithm.correction.replay)
        epoch = trainer.current_epoch
        last = epoch + 1 >= (trainer.max_epochs or 0)
        processed, pl_module.processed_tokens = pl_module.processed_tokens, 0  # this step's updates'
        self._add_compute(processed, counts, time.perf_counter() - self._epoch_started)  # not validation
        every = self.validation.every
        if every and ((epoch + 1) % every == 0 or last):
            self._validate(trainer, pl_module, completed_steps=epoch + 1)
        metrics["time/step_s"] = time.perf_counter() - self._epoch_started
        metrics["time/train_s"] = train_started - self._epoch_started - (counts.rollout_s if counts else 0)
        if self.world_size > 1:
            metrics = {name: max(values) for name, values in _by_name(gather_objects(metrics)).items()}
        metrics.update({f"compute/{axis}": total for axis, total in self.compute_totals.items()})
        self._log_to_loggers(trainer, metrics, step=epoch)
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, logger=False)
        pl_module.rollout_batch = None  # release the tensors; a stale batch must never be reused
        self.round_counts = None

    def state_dict(self) -> dict[str, Any]:
        return {"replay": self.replay.as_dict(), "compute": dict(self.compute_totals)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.replay = ReplayState.from_dict(state_dict["replay"])
        self.compute_totals.update(state_dict.get("compute", {}))  # checkpoints before the totals: from 0

    def _add_compute(self, processed_tokens: int, counts: RoundCounts | None, step_s: float) -> None:
        """Add this step's costs to the totals: tokens summed over ranks, time the slowest rank's."""
        processed = float(processed_tokens)
        generated = float(counts.generated_tokens) if counts is not None else 0.0  # already all ranks'
        if self.world_size > 1:
            per_rank = gather_objects((processed, step_s))
            processed, step_s = sum(p for p, _ in per_rank), max(s for _, s in per_rank)
        for axis, cost in zip(COMPUTE_AXES, (generated, processed, step_s)):
            self.compute_totals[axis] += cost

    # --- pieces ---------------------------------------------------------------------

    def _sync(self, trainer: L.Trainer) -> dict[str, float]:
        """Push the weights; log and enforce the engine's ``SyncReport`` when it gives one."""
        started = time.perf_counter()
        report: SyncReport | None = self.engine.sync_weights()
        metrics = {"time/sync_s": time.perf_counter() - started}
        if report is None:
            return metrics
        metrics["rollout/sync_logprob_diff"] = report.logprob_diff
        if not report.ok:
            self._log_to_loggers(trainer, metrics, step=trainer.current_epoch)
            for logger in trainer.loggers:
                logger.save()
            raise RuntimeError(
                f"weight sync check failed at epoch {trainer.current_epoch}: the engine's and the trainer's "
                f"log-probabilities of the probe differ by up to {report.logprob_diff:.3g} > "
                f"rollout.sync_tolerance={report.tolerance:g}. The engine is not sampling from the "
                "trained weights (a failed or partial sync), or its kernels differ more than the tolerance "
                "allows (bf16 typically needs 0.1-0.25: raise rollout.sync_tolerance)"
            )
        return metrics

    def _warn_once(self, trainer: L.Trainer, metrics: dict[str, float], num_samples: int) -> None:
        for kind, message in sample_warnings(metrics, num_samples, trainer.current_epoch).items():
            if kind not in self._warned and trainer.is_global_zero:
                log.warning(message)
            self._warned.add(kind)

    @staticmethod
    def _log_to_loggers(trainer: L.Trainer, metrics: dict[str, float], step: int) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    @staticmethod
    def _transplant_inline(datamodule, template: str) -> bool:
        """data.transplant_as=inline_check; the template in use must add a fixed text after the
        attempt (no verdict, no feedback: that text becomes part of the trained row)."""
        if getattr(datamodule, "transplant_as", "answer") != "inline_check":
            return False
        continuation_suffix(template)
        return True

    def _seed(self, epoch: int) -> int:
        """Different on every rank and step (rank 0's seeds are those of a single-process run),
        hashed so that no two steps reseed from nearby seeds (``spread_seed``)."""
        return spread_seed(self.seed * 1_000_003 + epoch * 7 + 1 + self.rank * 7_919_111)

    def _validate(self, trainer: L.Trainer, pl_module: L.LightningModule, completed_steps: int) -> None:
        """Held-out metrics of the current policy, logged at x = RL steps completed so far.

        Logged straight to the loggers (not through ``self.log``) so that the curve starts
        at x = 0 with the initial policy and each point sits at the step it measures. Under
        DDP each rank evaluates every world_size-th problem and the metrics sum across ranks.
        """
        datamodule = trainer.datamodule
        records = datamodule.heldout_records[: self.validation.max_problems]
        if not records:
            return
        started = time.perf_counter()
        results = evaluate_records(
            self.engine,
            records,
            self.verifier,
            self.sampling,
            num_samples=self.validation.samples,
            seed=self.seed * 1_000_003 - 1,  # the same samples' randomness at every validation
            correction_template=datamodule.correction_template if self.validation.correction else None,
            ks=list(self.validation.ks) if self.validation.ks else None,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            device=pl_module.device,
        )
        metrics = {f"val/{name}": value for name, value in results.items()}
        metrics["time/val_s"] = time.perf_counter() - started
        self.last_validation = metrics
        self._log_to_loggers(trainer, metrics, step=completed_steps)
        # the progress line reports it (also the initial policy's, from on_train_start)
        pl_module.log("val/accuracy", metrics["val/accuracy"], on_step=False, on_epoch=True, logger=False)

    def _log_samples(self, trainer: L.Trainer, samples: list[dict[str, str]], step: int) -> None:
        """A few (prompt, attempt, correction, verdict) rows as a Markdown table in TensorBoard."""
        if not samples:
            return
        columns = list(samples[0])
        escape = lambda text: text.replace("|", "\\|").replace("\n", "⏎")  # noqa: E731
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(escape(str(row.get(c, ""))) for c in columns) + " |" for row in samples]
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("samples/rollouts", "\n".join(lines), global_step=step)


def per_rank_algorithm(algorithm: AlgorithmConfig, world_size: int) -> AlgorithmConfig:
    """Each of ``world_size`` ranks revises its share of the step's ``correction.num_anchors``."""
    anchors = algorithm.correction.num_anchors
    if world_size > 1 and algorithm.dynamic_sampling.enabled:
        # each rank would refill from the shared prompt sampler by its own count: they would drift apart
        raise ValueError(
            f"algorithm.dynamic_sampling.enabled=true runs in one process only (this run has {world_size}); "
            "turn it off or train with one process"
        )
    if world_size == 1 or not algorithm.correction.enabled:
        return algorithm
    if anchors % world_size:
        raise ValueError(
            f"algorithm.correction.num_anchors={anchors} is not divisible by the {world_size} training "
            f"processes; set it to a multiple of {world_size} (each process revises an equal share)"
        )
    correction = dataclasses.replace(algorithm.correction, num_anchors=anchors // world_size)
    return dataclasses.replace(algorithm, correction=correction)


def _by_name(per_rank: list[dict[str, float]]) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for metrics in per_rank:
        for name, value in metrics.items():
            merged.setdefault(name, []).append(value)
    return merged
