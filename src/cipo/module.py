"""CIPOModule: the policy, the combined loss and the optimizer; no rollout, no vLLM.

One Lightning epoch is one RL step. ``RolloutCallback`` hands the step's ``RolloutBatch`` over
in ``on_train_epoch_start`` (``self.rollout_batch``); the train dataloader yields only update
indices (``ppo_epochs * num_mini_batches`` per epoch), and each ``training_step`` makes one
optimizer step over one mini-batch, accumulating gradients over micro-batches:

    loss = L_pg(main) + alpha * (L_pg(corrections) or NLL(successful corrections)) + beta * KL

Each stream is reduced separately (``aggregate_loss``) and normalised by its count over the
whole mini-batch, so the micro-batch size changes memory, never the gradient.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator

import lightning as L
import torch

from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.logprobs import token_entropy, token_logprobs
from cipo.algorithms.losses import (
    aggregate_loss,
    clipped_surrogate,
    kl_penalty,
    loss_denominator,
    sft_nll,
    truncated_is_weights,
)
from cipo.algorithms.micro_batches import plan_micro_batches
from cipo.parallel import sum_across_ranks, world_size
from cipo.types import RolloutBatch

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class CIPOModule(L.LightningModule):
    def __init__(
        self,
        policy: torch.nn.Module,
        tokenizer,
        algorithm: AlgorithmConfig,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        micro_batch_size: int = 32,
        max_grad_norm: float = 1.0,
        temperature: float = 1.0,
        max_new_tokens: int = 64,
        max_consecutive_skips: int = 5,
    ) -> None:
        super().__init__()
        if micro_batch_size < 1:
            raise ValueError(f"module.micro_batch_size must be >= 1, got {micro_batch_size}")
        self.automatic_optimization = False
        self.policy = policy
        self.tokenizer = tokenizer
        self.algorithm = algorithm
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.micro_batch_size, self.max_grad_norm = micro_batch_size, max_grad_norm
        self.temperature = temperature if temperature > 0 else 1.0
        self.max_new_tokens = max_new_tokens
        self.max_consecutive_skips = max_consecutive_skips
        self.rollout_batch: RolloutBatch | None = None
        self.skipped_steps = 0
        self._consecutive_skips = 0
        # The frozen reference is a copy of the initial policy, held in a plain list so that
        # nn.Module does not register it: checkpoints do not store it twice, and resuming with
        # another kl_coef still loads. on_fit_start moves it to the device by hand.
        self._reference: list[torch.nn.Module] = []
        self.policy.train()

    @property
    def reference_model(self) -> torch.nn.Module | None:
        """The frozen initial policy for the KL term (None when ``kl_coef`` is 0)."""
        return self._reference[0] if self._reference else None

    def setup(self, stage: str) -> None:
        if self.algorithm.kl_coef > 0 and not self._reference:
            self._reference.append(copy.deepcopy(self.policy).eval().requires_grad_(False))

    def on_fit_start(self) -> None:
        for reference in self._reference:
            reference.to(self.device)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.policy.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def training_step(self, update_index: torch.Tensor, batch_idx: int) -> None:
        batch = self._current_batch()
        # Phase timers (time/*_s): plain perf_counter, no device sync; exact on CPU, where every op
        # is synchronous, and approximate on CUDA (the stats' .item() calls sync once per micro-batch).
        timings = {"time/forward_s": 0.0, "time/backward_s": 0.0}
        if batch.old_logprobs is None and self.algorithm.updates_per_step > 1:
            started = time.perf_counter()
            batch.old_logprobs = self._policy_logprobs(batch)
            timings["time/old_logprobs_s"] = time.perf_counter() - started
        update = int(update_index)
        rows = self._mini_batch_rows(len(batch), update)
        mini = batch.select(rows)
        # Several processes: normalise by the counts of the whole step (all ranks), and scale by
        # the world size because DDP *averages* gradients: the result is the single-process loss.
        denominators = sum_across_ranks(self._denominators(mini))
        scale = world_size()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        micro_batches = [micro for _, micro in self._micro_batches(mini)]
        for index, micro in enumerate(micro_batches):
            started = time.perf_counter()
            loss, stats = self._micro_batch_loss(micro, denominators)
            forward_done = time.perf_counter()
            with self._gradient_sync(index == len(micro_batches) - 1):
                self.manual_backward(loss * scale if scale > 1 else loss)
            timings["time/forward_s"] += forward_done - started
            timings["time/backward_s"] += time.perf_counter() - forward_done
            for name, value in stats.items():
                totals[name] = totals.get(name, 0.0) + value
        totals = sum_across_ranks(totals)  # per-rank shares of global sums -> the step's values
        started = time.perf_counter()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses, before the scheduler moves it
        self._optimizer_step(optimizer, grad_norm, totals["loss"])
        timings["time/optimizer_s"] = time.perf_counter() - started
        metrics = {**self._finish_metrics(totals, denominators, float(grad_norm), lr), **timings}
        self.log_dict(metrics, on_step=True, on_epoch=False)
        self.log("loss", metrics["train/loss"], on_step=True, prog_bar=True, logger=False)

    # --- pieces -------------------------------------------------------------------------

    def _current_batch(self) -> RolloutBatch:
        batch = self.rollout_batch
        if batch is None or batch.step != self.current_epoch:
            have = None if batch is None else batch.step
            raise RuntimeError(
                f"no rollout batch for epoch {self.current_epoch} (have one for {have}): the "
                "RolloutCallback must be in trainer.callbacks; it generates at every epoch start"
            )
        return batch

    def _mini_batch_rows(self, num_rows: int, update: int) -> torch.Tensor:
        """Rows of mini-batch ``update % num_mini_batches``, reshuffled every PPO epoch."""
        num_mini = self.algorithm.num_mini_batches
        if num_mini == 1:
            return torch.arange(num_rows)
        generator = torch.Generator().manual_seed(self.current_epoch * 1000 + update // num_mini)
        order = torch.randperm(num_rows, generator=generator)
        return order.chunk(num_mini)[update % num_mini]

    def _stream_masks(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        corr, sft = batch.is_correction[:, None], batch.sft_mask[:, None]
        return {
            "main": batch.loss_mask * ~corr,
            "correction": batch.loss_mask * (corr & ~sft),
            "sft": batch.loss_mask * sft,
        }

    def _denominators(self, batch: RolloutBatch) -> dict[str, float]:
        masks = self._stream_masks(batch)
        mode = self.algorithm.loss_agg
        found = {name: loss_denominator(mask, mode) for name, mask in masks.items() if name != "sft"}
        found["sft"] = float(masks["sft"].sum())
        found["all"] = loss_denominator(batch.loss_mask, mode)
        found["tokens"] = float(batch.loss_mask.sum())
        return found

    def _micro_batches(self, batch: RolloutBatch) -> Iterator[tuple[torch.Tensor, RolloutBatch]]:
        """``(rows, micro-batch)`` pairs from ``plan_micro_batches``: length-sorted, padding cut."""
        for rows, width in plan_micro_batches(batch.attention_mask, self.micro_batch_size):
            yield rows, batch.select(rows, width=width)

    def _forward_logits(self, module: torch.nn.Module, batch: RolloutBatch) -> torch.Tensor:
        mask = batch.attention_mask
        # Right padding + causal attention: no real token can attend to a pad, so the mask changes
        # nothing the loss reads (pad positions are masked out of it); without it SDPA takes its
        # causal kernel instead of building an (N, 1, T, T) mask. Any other padding keeps the mask.
        right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all())
        attention_mask = None if right_padded else mask.to(self.device)
        return module(input_ids=batch.input_ids.to(self.device), attention_mask=attention_mask).logits

    @torch.no_grad()
    def _policy_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        logprobs = torch.zeros(batch.input_ids.shape)
        for rows, micro in self._micro_batches(batch):
            logits = self._forward_logits(self.policy, micro)
            micro_logprobs = token_logprobs(logits, micro.input_ids.to(self.device), self.temperature).cpu()
            logprobs[rows, : micro_logprobs.shape[1]] = micro_logprobs
        return logprobs

    def _micro_batch_loss(self, micro: RolloutBatch, denominators: dict[str, float]):
        algo, device = self.algorithm, self.device
        logits = self._forward_logits(self.policy, micro)
        logprobs = token_logprobs(logits, micro.input_ids.to(device), self.temperature)
        old = logprobs.detach() if micro.old_logprobs is None else micro.old_logprobs.to(device)
        masks = {name: mask.to(device) for name, mask in self._stream_masks(micro).items()}
        rl_mask = masks["main"] + masks["correction"]
        engine_logprobs = micro.engine_logprobs.to(device)
        is_weights = None
        if algo.is_weights_cap is not None:
            is_weights = truncated_is_weights(old, engine_logprobs, algo.is_weights_cap)
        per_token, clip_stats = clipped_surrogate(
            logprobs, old, micro.advantages.to(device), rl_mask, algo.clip_low, algo.clip_high, is_weights
        )
        agg = dict(mode=algo.loss_agg, max_len=self.max_new_tokens)
        pg_main = aggregate_loss(per_token, masks["main"], denominator=denominators["main"] or None, **agg)
        pg_corr = aggregate_loss(per_token, masks["correction"], denominator=denominators["correction"] or None, **agg)
        sft = sft_nll(logprobs, masks["sft"], denominator=denominators["sft"] or None)
        loss = pg_main + algo.correction.coef * (pg_corr + sft)
        loss_mask = micro.loss_mask.to(device)
        stats = {
            "pg_loss": float(pg_main.detach()),
            "correction_loss": float((pg_corr + sft).detach()),
            "entropy_sum": float((token_entropy(logits, self.temperature) * loss_mask).sum()),
            "logprob_diff_sum": float(((logprobs.detach() - engine_logprobs).abs() * loss_mask).sum()),
            **{f"{name}_sum": value * float(rl_mask.sum()) for name, value in clip_stats.items()},
            "rl_tokens": float(rl_mask.sum()),
        }
        if is_weights is not None:
            stats["is_weight_sum"] = float((is_weights * rl_mask).sum())
        if algo.kl_coef > 0:
            with torch.no_grad():
                ref_logprobs = token_logprobs(
                    self._forward_logits(self.reference_model, micro), micro.input_ids.to(device), self.temperature
                )
            kl = aggregate_loss(
                kl_penalty(logprobs, ref_logprobs, algo.kl_estimator),
                loss_mask,
                denominator=denominators["all"] or None,
                **agg,
            )
            loss = loss + algo.kl_coef * kl
            stats["kl"] = float(kl.detach())
        stats["loss"] = float(loss.detach())
        return loss, stats

    def _optimizer_step(self, optimizer, grad_norm: torch.Tensor, loss: float = 0.0) -> None:
        """Step, or skip a non-finite loss or gradient (counted; K in a row stop the run)."""
        if math.isfinite(float(grad_norm)) and math.isfinite(loss):
            self._consecutive_skips = 0
            optimizer.step()
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()
            return
        optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        self._consecutive_skips += 1
        where = f"RL step {self.current_epoch}"
        if self._consecutive_skips >= self.max_consecutive_skips:
            raise RuntimeError(
                f"{where}: {self._consecutive_skips} optimizer steps in a row had a non-finite loss or gradient "
                f"(loss={loss}, grad_norm={float(grad_norm)}), so the run stops (module.max_consecutive_skips="
                f"{self.max_consecutive_skips}). Lower optimizer.lr, set model.dtype=float32 or "
                "trainer.precision=32-true, or check the rewards/data; resume from the last checkpoint with "
                "`cipo-train resume=<run folder>` after changing the setting"
            )
        if self._trainer is None or self.trainer.is_global_zero:
            log.warning(
                "%s: non-finite loss or gradient (loss=%s, grad_norm=%s): update skipped, %d in a row "
                "(train/skipped_steps; the run stops at module.max_consecutive_skips=%d)",
                where,
                loss,
                float(grad_norm),
                self._consecutive_skips,
                self.max_consecutive_skips,
            )

    def _gradient_sync(self, last_micro_batch: bool):
        """DDP all-reduces on every backward unless told not to: only the last micro-batch syncs,
        so every rank makes exactly one gradient exchange per update whatever its row count."""
        model = self._trainer.strategy.model if self._trainer is not None else None
        no_sync = getattr(model, "no_sync", None)
        return contextlib.nullcontext() if last_micro_batch or no_sync is None else no_sync()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cipo_skips"] = {"skipped_steps": self.skipped_steps, "consecutive": self._consecutive_skips}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("cipo_skips") or {}
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._consecutive_skips = int(state.get("consecutive", 0))

    def _finish_metrics(self, totals, denominators, grad_norm: float, lr: float) -> dict[str, float]:
        tokens, rl_tokens = max(denominators["tokens"], 1.0), max(totals.get("rl_tokens", 0.0), 1.0)
        metrics = {
            "train/loss": totals["loss"],
            "train/pg_loss": totals["pg_loss"],
            "train/correction_loss": totals["correction_loss"],
            "train/grad_norm": grad_norm,
            "train/lr": lr,
            "train/entropy": totals["entropy_sum"] / tokens,
            "train/skipped_steps": float(self.skipped_steps),
            "rollout/logprob_diff_mean": totals["logprob_diff_sum"] / tokens,
            "train/tokens": denominators["tokens"],
        }
        for name in ("clipfrac", "clipfrac_low", "clipfrac_high", "ratio_mean", "approx_kl"):
            metrics[f"train/{name}"] = totals.get(f"{name}_sum", 0.0) / rl_tokens
        if "kl" in totals:
            metrics["train/kl"] = totals["kl"]
        if "is_weight_sum" in totals:
            metrics["train/is_weight_mean"] = totals["is_weight_sum"] / rl_tokens
        return metrics
