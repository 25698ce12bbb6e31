"""CIPOModule: the policy's forward passes and the optimisation loop; no rollout, no vLLM.

One Lightning epoch is one RL step. ``RolloutCallback`` hands the step's ``RolloutBatch`` over in
``on_train_epoch_start`` (``self.rollout_batch``); the train dataloader yields only update indices
(``ppo_epochs * num_mini_batches`` per epoch). Each ``training_step`` is one optimizer step:

    rows = mini_batch_rows(...); denominators = objective_denominators(...) summed over ranks
    for each micro-batch of plan_micro_batches(...):
        logprobs = token_logprobs(policy(input_ids)); loss = cipo_objective(logprobs, ...); backward
    clip the gradient norm; step (SkipGuard skips a non-finite update); log objective_metrics(...)

The objective itself (streams, clipping, KL, importance weights, SFT rows) is
``algorithms/objective.py``; the micro-batch plan ``algorithms/micro_batches.py``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable, Iterator

import lightning as L
import torch

from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.logprobs import token_entropy, token_logprobs
from cipo.algorithms.micro_batches import mini_batch_rows, plan_micro_batches
from cipo.algorithms.objective import (
    Denominators,
    cipo_objective,
    objective_denominators,
    objective_metrics,
    stream_masks,
)
from cipo.models.prefix_plan import row_hosts
from cipo.models.prefix_sharing import PrefixPlan, PrefixSharing, prefix_shared_logits
from cipo.parallel import sum_across_ranks, world_size
from cipo.settings import ModuleSettings
from cipo.skip_guard import SkipGuard
from cipo.types import RolloutBatch, SamplingSettings

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class CIPOModule(L.LightningModule):
    def __init__(
        self,
        policy: torch.nn.Module,
        tokenizer,
        algorithm: AlgorithmConfig,
        settings: ModuleSettings,
        sampling: SamplingSettings,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.policy = policy
        self.tokenizer = tokenizer
        self.algorithm, self.settings = algorithm, settings
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # logprobs at the sampling temperature (greedy sampling, T = 0, is scored at T = 1)
        self.temperature = sampling.temperature if sampling.temperature > 0 else 1.0
        self.objective_options = algorithm.objective_options(max_len=sampling.max_new_tokens)
        self.rollout_batch: RolloutBatch | None = None
        self.skips = SkipGuard(settings.max_consecutive_skips)
        self.prefix_sharing = PrefixSharing()  # each shared prompt runs once per micro-batch
        # Real tokens run through the forward with gradient (a shared prompt once per micro-batch)
        # since the RolloutCallback last took them (compute/processed_tokens).
        self.processed_tokens = 0
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
        # time/train_cpu_s: the process's CPU seconds of forward + backward (steady on a shared machine).
        timings = {"time/forward_s": 0.0, "time/backward_s": 0.0, "time/train_cpu_s": 0.0}
        if batch.old_logprobs is None and self.algorithm.updates_per_step > 1:
            started = time.perf_counter()
            batch.old_logprobs = self._policy_logprobs(batch)
            timings["time/old_logprobs_s"] = time.perf_counter() - started
        rows = mini_batch_rows(len(batch), int(update_index), self.algorithm.num_mini_batches, self.current_epoch)
        mini = batch.select(rows)
        # Several processes: normalise by the counts of the whole step (all ranks), and scale by
        # the world size because DDP *averages* gradients: the result is the single-process loss.
        denominators = Denominators.from_dict(sum_across_ranks(self._denominators(mini).as_dict()))
        scale = world_size()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        micro_batches = [micro for _, micro in self._micro_batches(mini)]
        for index, micro in enumerate(micro_batches):
            started, cpu_started = time.perf_counter(), time.process_time()
            loss, stats = self._micro_batch_loss(micro, denominators)
            forward_done = time.perf_counter()
            with self._gradient_sync(index == len(micro_batches) - 1):
                self.manual_backward(loss * scale if scale > 1 else loss)
            timings["time/forward_s"] += forward_done - started
            timings["time/backward_s"] += time.perf_counter() - forward_done
            timings["time/train_cpu_s"] += time.process_time() - cpu_started
            for name, value in stats.items():
                totals[name] = totals.get(name, 0.0) + value
        totals = sum_across_ranks(totals)  # per-rank shares of global sums -> the step's values
        started = time.perf_counter()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.settings.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses, before the scheduler moves it
        self._optimizer_step(optimizer, grad_norm, totals["loss"])
        timings["time/optimizer_s"] = time.perf_counter() - started
        metrics = {
            **objective_metrics(totals, denominators),
            "train/grad_norm": float(grad_norm),
            "train/lr": lr,
            "train/skipped_steps": float(self.skips.skipped_steps),
            **timings,
        }
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

    def _denominators(self, batch: RolloutBatch) -> Denominators:
        masks = stream_masks(batch.loss_mask, batch.is_correction, batch.sft_mask, batch.is_transplant)
        return objective_denominators(masks, batch.loss_mask, self.algorithm.loss_agg)

    def _micro_batches(self, batch: RolloutBatch) -> Iterator[tuple[torch.Tensor, RolloutBatch]]:
        """``(rows, micro-batch)`` pairs from ``plan_micro_batches``: length-sorted, padding cut
        (by prompt, then continuation length, when shared prompts run once; rows that can reside in
        another micro-batch's prompt, such as the correction stream's anchors, join it)."""
        prompts = batch.prompt_lengths if self.prefix_sharing.active(self.policy) else None
        for rows, width in plan_micro_batches(
            batch.attention_mask,
            self.settings.micro_batch_size,
            prompt_lengths=prompts,
            hosts=None if prompts is None else row_hosts(batch.input_ids, batch.attention_mask, prompts),
        ):
            yield rows, batch.select(rows, width=width)

    def _shared_prefixes(self, batch: RolloutBatch) -> PrefixPlan | None:
        return self.prefix_sharing.plan(self.policy, batch.input_ids, batch.attention_mask, batch.prompt_lengths)

    def _forward_logits(self, module: torch.nn.Module, batch: RolloutBatch, plan: PrefixPlan | None = None):
        """(N, T, V) logits of ``batch``; with a plan, (N, C, V) of ``batch.take_columns(plan...)``."""
        if plan is not None:
            return prefix_shared_logits(module, plan, batch.input_ids.to(self.device))
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
            plan = self._shared_prefixes(micro)
            logits = self._forward_logits(self.policy, micro, plan)
            scored = micro if plan is None else micro.take_columns(plan.columns, plan.valid)
            micro_logprobs = token_logprobs(logits, scored.input_ids.to(self.device), self.temperature).cpu()
            if plan is not None:
                micro_logprobs = plan.put(micro_logprobs, micro.input_ids.shape[1])
            logprobs[rows, : micro_logprobs.shape[1]] = micro_logprobs
        return logprobs

    def _micro_batch_loss(self, batch: RolloutBatch, denominators: Denominators) -> tuple[torch.Tensor, dict]:
        """``cipo_objective`` on one micro-batch (+ the entropy of the policy, a diagnostic).

        With shared prompts (models/prefix_sharing.py) the logits score each row's continuation,
        so the objective reads ``micro``: the batch's tensors at those columns."""
        device = self.device
        plan = self._shared_prefixes(batch)
        logits = self._forward_logits(self.policy, batch, plan)
        self.processed_tokens += plan.processed_tokens if plan is not None else int(batch.attention_mask.sum())
        micro = batch if plan is None else batch.take_columns(plan.columns, plan.valid)
        input_ids = micro.input_ids.to(device)
        logprobs = token_logprobs(logits, input_ids, self.temperature)
        ref_logprobs = None
        if self.algorithm.kl_coef > 0:
            with torch.no_grad():
                ref_logits = self._forward_logits(self.reference_model, batch, plan)
                ref_logprobs = token_logprobs(ref_logits, input_ids, self.temperature)
        loss_mask = micro.loss_mask.to(device)
        masks = stream_masks(
            loss_mask, micro.is_correction.to(device), micro.sft_mask.to(device), micro.is_transplant.to(device)
        )
        loss, stats = cipo_objective(
            logprobs,
            logprobs.detach() if micro.old_logprobs is None else micro.old_logprobs.to(device),
            micro.engine_logprobs.to(device),
            micro.advantages.to(device),
            masks,
            loss_mask,
            denominators,
            ref_logprobs=ref_logprobs,
            **self.objective_options,
        )
        stats["entropy_sum"] = float((token_entropy(logits, self.temperature) * loss_mask).sum())
        return loss, stats

    def _optimizer_step(self, optimizer, grad_norm: torch.Tensor, loss: float) -> None:
        """Step, or skip a non-finite update (``SkipGuard``: counted; K in a row stop the run)."""
        warn = self._trainer is None or self.trainer.is_global_zero
        if self.skips.allows_step(loss, float(grad_norm), f"RL step {self.current_epoch}", warn):
            optimizer.step()
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()
        else:
            optimizer.zero_grad(set_to_none=True)

    def _gradient_sync(self, last_micro_batch: bool):
        """DDP all-reduces on every backward unless told not to: only the last micro-batch syncs,
        so every rank makes exactly one gradient exchange per update whatever its row count."""
        model = self._trainer.strategy.model if self._trainer is not None else None
        no_sync = getattr(model, "no_sync", None)
        return contextlib.nullcontext() if last_micro_batch or no_sync is None else no_sync()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cipo_skips"] = self.skips.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.skips.load_state_dict(checkpoint.get("cipo_skips") or {})
