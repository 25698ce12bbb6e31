"""Held-out evaluation through any rollout engine: first attempts, pass@k and self-correction.

Used by in-training validation (``val/*``) and by the built-in policy's build script, so the
numbers in the warm-start report and in TensorBoard come from one implementation.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import torch

from cipo.algorithms.correction import build_correction_prompts, correction_outcomes
from cipo.metrics import chance_accuracy, default_ks, pass_at_k
from cipo.rollout.engine import RolloutEngine, SamplingSettings
from cipo.types import Record
from cipo.verifiers import Verifier


def evaluate_records(
    engine: RolloutEngine,
    records: list[Record],
    verify: Verifier,
    settings: SamplingSettings,
    num_samples: int,
    seed: int,
    correction_template: str | None = None,
    greedy: bool = False,
) -> dict[str, float]:
    """Metrics over ``records``, ``num_samples`` sampled first attempts each.

    Keys: accuracy (mean over all samples), pass@k for k = 1, 2, 4, ..., n, frac_mixed (share
    of problems with some but not all samples right), chance_accuracy, accuracy_level_<L>
    when records carry ``meta['level']``, status_<name> shares; with a correction template,
    one revision of each problem's first sample: fix_rate, retention, break_rate and
    second_attempt_accuracy; with ``greedy``, greedy_accuracy.
    """
    prompts = [record.prompt for record in records]
    samples = engine.generate(prompts, num_samples, settings, seed=seed)
    results = verify([c.text for g in samples for c in g], [r.reference for r in records for _ in range(num_samples)])
    success = [[res.success for res in results[i * num_samples : (i + 1) * num_samples]] for i in range(len(records))]
    statuses = Counter(res.status.value for res in results)
    total = len(records) * num_samples
    metrics: dict[str, float] = {
        "accuracy": sum(map(sum, success)) / max(1, total),
        "frac_mixed": sum(0 < sum(s) < num_samples for s in success) / max(1, len(records)),
        "chance_accuracy": chance_accuracy([r.reference for r in records]),
    }
    for k in default_ks(num_samples):
        metrics[f"pass@{k}"] = sum(pass_at_k(num_samples, sum(s), k) for s in success) / max(1, len(records))
    for status, count in statuses.items():
        metrics[f"status_{status}"] = count / max(1, total)
    by_level: dict[int, list[float]] = defaultdict(list)
    for record, row in zip(records, success):
        if "level" in record.meta:
            by_level[int(record.meta["level"])].append(sum(row) / num_samples)
    for level, values in sorted(by_level.items()):
        metrics[f"accuracy_level_{level}"] = sum(values) / len(values)
    if greedy:
        greedy_samples = engine.generate(prompts, 1, SamplingSettings(settings.max_new_tokens, 0.0, 1.0), seed=seed)
        greedy_results = verify([g[0].text for g in greedy_samples], [r.reference for r in records])
        metrics["greedy_accuracy"] = sum(res.success for res in greedy_results) / max(1, len(records))
    if correction_template is not None:
        metrics.update(_self_correction(engine, records, samples, success, verify, settings, seed, correction_template))
    return metrics


def _self_correction(engine, records, samples, success, verify, settings, seed, template) -> dict[str, float]:
    attempts = [group[0].text for group in samples]
    prompts = build_correction_prompts([r.prompt for r in records], attempts, template)
    revisions = engine.generate(prompts, 1, settings, seed=seed + 1)
    anchor_success = torch.tensor([row[0] for row in success], dtype=torch.float32)
    revised = verify([group[0].text for group in revisions], [r.reference for r in records])
    revised_success = torch.tensor([res.success for res in revised], dtype=torch.float32)
    outcomes = correction_outcomes(anchor_success, revised_success)
    result = {"second_attempt_accuracy": float(revised_success.mean()) if len(records) else 0.0}
    for name in ("fix_rate", "retention", "break_rate"):
        if outcomes[name] is not None:
            result[name] = float(outcomes[name])
    return result
