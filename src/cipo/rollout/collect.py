"""One rollout round of CIPO (method sheet steps 1-8): everything before the gradient.

    B prompts --engine--> B*G attempts --verify--> rewards --> group advantages
      \\--> anchors (difficulty band, replay share) --> correction prompts
             --engine--> K*M revisions --verify--> risk-averse shaping --> group advantages
    --> one RolloutBatch (main rows first, then correction rows)

With ``algorithm.correction.enabled: false`` this is exactly GRPO's rollout. With
``objective: sft`` the successful revisions are kept as supervised targets instead
(the rejection-sampling baseline) and the failed ones are dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from cipo.algorithms.advantages import frac_zero_std_groups, group_advantages, group_outcome_fractions
from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.correction import (
    build_correction_prompts,
    correction_outcomes,
    select_anchors,
    shape_correction_rewards,
)
from cipo.rollout.engine import RolloutEngine, SamplingSettings
from cipo.rollout.packing import pack_sequences
from cipo.types import Completion, Record, RolloutBatch, VerifierResult, VerifyStatus
from cipo.verifiers import Verifier


@dataclass
class _Stream:
    """Flat rows of one stream before packing."""

    prompts: list[str] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    advantages: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    keep: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    sft: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))


def _status_metrics(results: list[VerifierResult], prefix: str) -> dict[str, float]:
    counts = {status.value: 0 for status in VerifyStatus}
    for result in results:
        counts[result.status.value] += 1
    return {f"{prefix}status_{name}": float(count) for name, count in counts.items() if count}


def _length_metrics(completions: list[Completion], prefix: str) -> dict[str, float]:
    lengths = torch.tensor([len(c.token_ids) for c in completions], dtype=torch.float32)
    if lengths.numel() == 0:
        return {}
    return {
        f"{prefix}completion_len_mean": float(lengths.mean()),
        f"{prefix}completion_len_min": float(lengths.min()),
        f"{prefix}completion_len_max": float(lengths.max()),
        f"{prefix}frac_truncated": sum(not c.finished for c in completions) / len(completions),
        f"{prefix}num_empty": float(sum(not c.text.strip() for c in completions)),  # no text at all: reward 0
    }


def _valid_rows(results: list[VerifierResult], group_size: int) -> torch.Tensor:
    """A group with any skipped row (e.g. unparseable gold) is dropped whole: never reward, never penalty."""
    skipped = torch.tensor([r.status.is_skip for r in results], dtype=torch.bool)
    return ~skipped.view(-1, group_size).any(dim=1).repeat_interleave(group_size)


def collect_round(
    engine: RolloutEngine,
    tokenizer,
    verify: Verifier,
    records: list[Record],
    algorithm: AlgorithmConfig,
    sampling: SamplingSettings,
    correction_template: str,
    replay_ratio: float,
    seed: int,
    step: int,
    num_samples_logged: int = 4,
) -> RolloutBatch:
    """Generate, verify and score one step's main and correction episodes."""
    group_size, corr = algorithm.group_size, algorithm.correction
    metrics: dict[str, float] = {}
    timer = time.perf_counter()
    groups = engine.generate([r.prompt for r in records], group_size, sampling, seed=seed)
    generate_s = time.perf_counter() - timer
    main = _Stream(
        prompts=[r.prompt for r in records for _ in range(group_size)],
        completions=[c for group in groups for c in group],
    )
    timer = time.perf_counter()
    results = verify([c.text for c in main.completions], [r.reference for r in records for _ in range(group_size)])
    verify_s = time.perf_counter() - timer
    success = torch.tensor([r.success for r in results], dtype=torch.bool)
    rewards = torch.tensor([r.reward for r in results], dtype=torch.float32)
    main.keep = _valid_rows(results, group_size)
    main.advantages = group_advantages(rewards, group_size, algorithm.advantage) * main.keep
    main.sft = torch.zeros_like(main.keep)
    metrics.update(
        {
            "rollout/reward_mean": float(rewards.mean()),
            "rollout/reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "rollout/accuracy": float(success.float().mean()),
            "rollout/frac_zero_std": frac_zero_std_groups(rewards, group_size),
            **{f"rollout/{k}": v for k, v in group_outcome_fractions(success, group_size).items()},
            **_length_metrics(main.completions, "rollout/"),
            **_status_metrics(results, "verify/"),
        }
    )

    correction = _Stream()
    samples: list[dict[str, str]] = []
    if corr.enabled and corr.num_anchors > 0 and len(records) > 0:
        generator = torch.Generator().manual_seed(seed)
        anchors, anchor_metrics = select_anchors(
            success,
            group_size,
            corr.num_anchors,
            replay_ratio,
            corr.acc_low,
            corr.acc_high,
            corr.prefer_band,
            generator,
        )
        anchors = anchors[main.keep[anchors]]  # never revise an attempt whose gold was unusable
        metrics.update({f"correction/{k}": float(v) for k, v in anchor_metrics.items()})
        anchor_list = anchors.tolist()
        anchor_records = [records[i // group_size] for i in anchor_list]
        attempts = [main.completions[i].text for i in anchor_list]
        verdicts = [bool(success[i]) for i in anchor_list] if "{verdict}" in correction_template else None
        feedback = [results[i].feedback for i in anchor_list] if "{feedback}" in correction_template else None
        correction_prompts = build_correction_prompts(
            [r.prompt for r in anchor_records], attempts, correction_template, verdicts, feedback=feedback
        )
        timer = time.perf_counter()
        revision_groups = engine.generate(correction_prompts, corr.samples_per_anchor, sampling, seed=seed + 1)
        generate_s += time.perf_counter() - timer
        m = corr.samples_per_anchor
        correction.prompts = [p for p in correction_prompts for _ in range(m)]
        correction.completions = [c for group in revision_groups for c in group]
        timer = time.perf_counter()
        revision_results = verify(
            [c.text for c in correction.completions], [r.reference for r in anchor_records for _ in range(m)]
        )
        verify_s += time.perf_counter() - timer
        revised = torch.tensor([r.success for r in revision_results], dtype=torch.bool)
        anchor_success = success[anchors].repeat_interleave(m)
        shaped = shape_correction_rewards(anchor_success.float(), revised.float(), corr.penalty)
        correction.keep = _valid_rows(revision_results, m) if revised.numel() else revised
        if corr.objective == "sft":
            correction.keep = correction.keep & revised
            correction.sft = correction.keep.clone()
            correction.advantages = torch.zeros(revised.numel())
        else:
            correction.sft = torch.zeros_like(correction.keep)
            correction.advantages = (
                group_advantages(shaped, m, algorithm.advantage, std_scope=corr.std_scope) * correction.keep
            )
        outcomes = correction_outcomes(anchor_success, revised)
        metrics.update({f"correction/{k}": float(v) for k, v in outcomes.items() if v is not None})
        if revised.numel():
            metrics["correction/accuracy"] = float(revised.float().mean())
            metrics["correction/reward_mean"] = float(shaped.mean())
            metrics.update(_length_metrics(correction.completions, "correction/"))
        samples = [
            {
                "prompt": anchor_records[k].prompt,
                "attempt": attempts[k],
                "attempt_verdict": results[anchor_list[k]].status.value,
                "correction": correction.completions[k * m].text,
                "correction_verdict": revision_results[k * m].status.value,
            }
            for k in range(min(num_samples_logged, len(anchor_list)))
        ]
    metrics["correction/num_anchors"] = metrics.get("correction/num_anchors", 0.0)
    if not samples:
        samples = [
            {"prompt": main.prompts[i], "attempt": main.completions[i].text, "attempt_verdict": results[i].status.value}
            for i in range(0, min(len(main.prompts), num_samples_logged * group_size), group_size)
        ]

    batch = _pack(tokenizer, main, correction, step)
    generated = sum(len(c.token_ids) for c in main.completions + correction.completions)
    metrics.update(
        {
            "time/generate_s": generate_s,
            "time/verify_s": verify_s,
            "rollout/generated_tokens": float(generated),
            "throughput/tokens_per_s": generated / max(generate_s, 1e-9),
        }
    )
    batch.metrics, batch.samples = metrics, samples
    return batch


def _pack(tokenizer, main: _Stream, correction: _Stream, step: int) -> RolloutBatch:
    """Main rows then kept correction rows, as one padded RolloutBatch."""
    kept = correction.keep.nonzero().flatten().tolist() if correction.keep.numel() else []
    prompts = main.prompts + [correction.prompts[i] for i in kept]
    completions = main.completions + [correction.completions[i] for i in kept]
    unique_prompts = list(dict.fromkeys(prompts))
    encoded = tokenizer(unique_prompts, add_special_tokens=False)["input_ids"]
    ids_of = dict(zip(unique_prompts, encoded))
    tensors = pack_sequences([ids_of[p] for p in prompts], completions, tokenizer.pad_token_id)
    loss_mask = tensors["loss_mask"] * torch.cat([main.keep, torch.ones(len(kept), dtype=torch.bool)])[:, None]
    return RolloutBatch(
        input_ids=tensors["input_ids"],
        attention_mask=tensors["attention_mask"],
        loss_mask=loss_mask,
        advantages=torch.cat([main.advantages, correction.advantages[kept] if kept else torch.zeros(0)]).float(),
        is_correction=torch.cat(
            [torch.zeros(len(main.prompts), dtype=torch.bool), torch.ones(len(kept), dtype=torch.bool)]
        ),
        sft_mask=torch.cat([main.sft, correction.sft[kept] if kept else torch.zeros(0, dtype=torch.bool)]),
        engine_logprobs=tensors["engine_logprobs"],
        step=step,
    )
