"""Held-out evaluation through any rollout engine: first attempts, pass@k, self-correction rounds.

One implementation for in-training validation (``val/*``, ``callbacks/rollout.py``), ``cipo-eval``
and the built-in policy's build script, in two halves:

    generate_results   engine + verifier -> one ``ProblemResult`` per problem (n sampled first
                       attempts; optionally a greedy answer; R revision rounds)
    summarize          ``ProblemResult`` list -> metrics, through the torchmetrics of
                       ``cipo.metrics`` (sum states: ranks that each evaluated a shard of the
                       problems get the metrics of all problems after ``compute()`` syncs)

Revision rounds: round 1 revises an *attempt* (the problem's first sample, or the one supplied
in ``record.meta["attempt"]``) with the correction template; round r revises round r-1's
answer. The model never sees a verdict. Each round is scored against the round before it
(fix rate, retention, break rate) and by its accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchmetrics import Metric

from cipo.algorithms.correction import build_correction_prompts
from cipo.metrics import CorrectionRates, PassAtK, Tally, chance_accuracy, default_ks
from cipo.rollout.engine import RolloutEngine, SamplingSettings
from cipo.types import Record, VerifyStatus
from cipo.verifiers import Verifier

ATTEMPT_SOURCES = ("own", "supplied")


@dataclass(frozen=True)
class Verdict:
    """One scored answer: the text and what the verifier said about it."""

    text: str
    success: bool
    status: str
    feedback: str = ""  # the verifier's, for correction templates with {feedback}


@dataclass
class ProblemResult:
    """Everything measured on one problem; ``samples`` are the n first attempts.

    ``attempt`` is the answer revised in round 1 and ``revisions[r - 1]`` round r's answer
    (both absent without a correction template); ``greedy`` the temperature-0 answer.
    """

    id: str
    level: int | None
    samples: list[Verdict]
    attempt: Verdict | None = None
    attempt_source: str | None = None
    revisions: list[Verdict] = field(default_factory=list)
    greedy: Verdict | None = None

    @property
    def num_correct(self) -> int:
        return sum(v.success for v in self.samples)


def _score(verify: Verifier, texts: list[str], references: list[str]) -> list[Verdict]:
    results = verify(texts, references) if texts else []
    return [Verdict(t, r.success, r.status.value, r.feedback) for t, r in zip(texts, results)]


def _supplied_attempts(records: list[Record]) -> list[str]:
    missing = [r.id for r in records if not isinstance(r.meta.get("attempt"), str)]
    if missing:
        raise ValueError(
            f"attempts=supplied needs record.meta['attempt'] (a string) on every problem; {len(missing)} lack it "
            f"(first: {missing[0]!r}). Use a data set that supplies attempts, or revise the model's own first "
            "attempt (attempts=own)"
        )
    return [r.meta["attempt"] for r in records]


def generate_results(
    engine: RolloutEngine,
    records: list[Record],
    verify: Verifier,
    settings: SamplingSettings,
    num_samples: int,
    seed: int,
    correction_template: str | None = None,
    rounds: int = 1,
    attempts: str = "own",
    greedy: bool = False,
) -> list[ProblemResult]:
    """Sample, verify and (with a correction template) revise ``rounds`` times.

    Engine calls, in order: the n first attempts (``seed``), the greedy answers (``seed``),
    then revision round r with ``seed + r`` and one sample per problem.
    """
    if num_samples < 1 or rounds < 0:
        raise ValueError(f"need num_samples >= 1 and rounds >= 0, got {num_samples}, {rounds}")
    if attempts not in ATTEMPT_SOURCES:
        raise ValueError(f"attempts must be one of {ATTEMPT_SOURCES}, got {attempts!r}")
    if not records:
        return []
    prompts, references = [r.prompt for r in records], [r.reference for r in records]
    supplied = _supplied_attempts(records) if correction_template is not None and attempts == "supplied" else None
    groups = engine.generate(prompts, num_samples, settings, seed=seed)
    verdicts = _score(
        verify, [c.text for g in groups for c in g], [ref for ref in references for _ in range(num_samples)]
    )
    results = [
        ProblemResult(
            id=r.id,
            level=int(r.meta["level"]) if "level" in r.meta else None,
            samples=verdicts[i * num_samples : (i + 1) * num_samples],
        )
        for i, r in enumerate(records)
    ]
    if greedy:
        greedy_settings = SamplingSettings(settings.max_new_tokens, 0.0, 1.0)
        answers = engine.generate(prompts, 1, greedy_settings, seed=seed)
        for result, verdict in zip(results, _score(verify, [g[0].text for g in answers], references)):
            result.greedy = verdict
    if correction_template is None:
        return results
    if supplied is None:
        previous = [result.samples[0] for result in results]
    else:
        previous = _score(verify, supplied, references)
    for result, verdict in zip(results, previous):
        result.attempt, result.attempt_source = verdict, attempts
    for round_index in range(1, rounds + 1):
        feedback = [v.feedback for v in previous] if "{feedback}" in correction_template else None
        round_prompts = build_correction_prompts(
            prompts, [v.text for v in previous], correction_template, feedback=feedback
        )
        revised = engine.generate(round_prompts, 1, settings, seed=seed + round_index)
        previous = _score(verify, [g[0].text for g in revised], references)
        for result, verdict in zip(results, previous):
            result.revisions.append(verdict)
    return results


def _on(metric: Metric, device: torch.device | str | None) -> Metric:
    return metric if device is None else metric.to(device)


def _levels(records: list[Record]) -> list[int]:
    return sorted({int(r.meta["level"]) for r in records if "level" in r.meta})


def summarize(
    results: list[ProblemResult],
    num_samples: int,
    ks: list[int] | None = None,
    levels: list[int] | None = None,
    references: list[str] | None = None,
    rounds: int = 0,
    greedy: bool = False,
    device: torch.device | str | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Metrics of ``results`` (``summarize`` on every rank, with the same arguments, under DDP).

    Args:
        results: this process's problems (all of them, or one rank's shard).
        num_samples: n of every problem; ks: pass@k's k values (default 1, 2, 4, ..., n).
        levels: the difficulty levels of *all* problems (so that every rank builds the same
            metrics); references: all problems' references, for ``chance_accuracy``.
        rounds: revision rounds in ``results`` (0: no correction); greedy: greedy answers present.
        device: where the metric states live (the process group's device under DDP).

    Returns:
        ``metrics``: accuracy, frac_mixed, pass@k, chance_accuracy, status_<name> shares,
        accuracy_level_<L>, greedy_accuracy, num_problems and samples_per_problem (for the
        evaluation's standard error); with rounds: round 1's fix_rate, retention, break_rate,
        first_attempt_accuracy and second_attempt_accuracy (of the revised attempts and their
        revisions: SCoRe's Acc@t1 and Acc@t2), its outcome counts num_fixed, num_kept,
        num_broken, num_unfixed (from which SCoRe's Delta i->c = fixed / problems and
        Delta c->i = broken / problems), and for rounds >= 2 accuracy_round_<r> (r = 0 is the
        revised attempts). ``per_round``: for r = 0..R a dict with accuracy and
        (r >= 1) the rates and counts of round r against round r - 1.
    """
    ks = ks or default_ks(num_samples)
    levels = levels if levels is not None else sorted({r.level for r in results if r.level is not None})
    status_names = [f"status_{s.value}" for s in VerifyStatus]
    level_names = [f"level_{lv}_{what}" for lv in levels for what in ("correct", "samples")]
    first, tally = PassAtK(ks), Tally(status_names + level_names + ["problems"])
    first.update(
        torch.tensor([[v.success for v in r.samples] for r in results], dtype=torch.bool).view(-1, num_samples)
    )
    counts: dict[str, float] = {"problems": len(results)}
    for result in results:
        for verdict in result.samples:
            counts[f"status_{verdict.status}"] = counts.get(f"status_{verdict.status}", 0) + 1
        if result.level is not None:
            counts[f"level_{result.level}_correct"] = (
                counts.get(f"level_{result.level}_correct", 0) + result.num_correct
            )
            counts[f"level_{result.level}_samples"] = counts.get(f"level_{result.level}_samples", 0) + num_samples
    tally.update(counts)
    metrics = {name: float(value) for name, value in _on(first, device).compute().items()}
    tallied = {name: float(value) for name, value in _on(tally, device).compute().items()}
    total = sum(tallied[name] for name in status_names)
    metrics["num_problems"], metrics["samples_per_problem"] = tallied["problems"], float(num_samples)
    if references is not None:
        metrics["chance_accuracy"] = chance_accuracy(references)
    metrics.update({name: tallied[name] / total for name in status_names if tallied[name] > 0})
    for level in levels:
        if tallied[f"level_{level}_samples"] > 0:
            metrics[f"accuracy_level_{level}"] = tallied[f"level_{level}_correct"] / tallied[f"level_{level}_samples"]
    if greedy:
        greedy_metric = _on(PassAtK([1]), device)
        greedy_metric.update(torch.tensor([[r.greedy.success] for r in results], dtype=torch.bool).view(-1, 1))
        metrics["greedy_accuracy"] = float(greedy_metric.compute()["accuracy"])
    per_round = _round_metrics(results, rounds, device) if rounds else []
    if per_round:
        first_round = per_round[1]
        metrics.update(
            {name: first_round[name] for name in ("fix_rate", "retention", "break_rate") if name in first_round}
        )
        metrics["first_attempt_accuracy"] = per_round[0]["accuracy"]
        metrics["second_attempt_accuracy"] = first_round["accuracy"]
        metrics.update({f"num_{name}": first_round[name] for name in ("fixed", "kept", "broken", "unfixed")})
        if rounds >= 2:
            metrics.update({f"accuracy_round_{r}": row["accuracy"] for r, row in enumerate(per_round)})
    return metrics, per_round


def _round_metrics(results: list[ProblemResult], rounds: int, device) -> list[dict[str, float]]:
    chains = [[r.attempt.success] + [v.success for v in r.revisions] for r in results]
    table = torch.tensor(chains, dtype=torch.bool).view(-1, rounds + 1)  # (P, R + 1)
    per_round: list[dict[str, float]] = []
    for r in range(1, rounds + 1):
        metric = _on(CorrectionRates(), device)
        metric.update(table[:, r - 1], table[:, r])
        values = {name: float(value) for name, value in metric.compute().items()}
        if r == 1:
            per_round.append({"round": 0, "accuracy": values.get("acc1", 0.0)})
        row = {"round": r, "accuracy": values.pop("acc2", 0.0), **values}
        row.pop("acc1", None)
        per_round.append(row)
    return per_round


def evaluate_records(
    engine: RolloutEngine,
    records: list[Record],
    verify: Verifier,
    settings: SamplingSettings,
    num_samples: int,
    seed: int,
    correction_template: str | None = None,
    greedy: bool = False,
    ks: list[int] | None = None,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Metrics over ``records`` with one revision round of each first sample (see ``summarize``).

    With ``world_size > 1`` this process evaluates ``records[rank::world_size]`` and the metrics
    reduce across ranks (every rank must call this with the same arguments but ``rank``).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
    shard = records[rank::world_size]
    rounds = 1 if correction_template is not None else 0
    results = generate_results(
        engine, shard, verify, settings, num_samples, seed, correction_template, rounds, "own", greedy
    )
    metrics, _ = summarize(
        results, num_samples, ks, _levels(records), [r.reference for r in records], rounds, greedy, device
    )
    return metrics
