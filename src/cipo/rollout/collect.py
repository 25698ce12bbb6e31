"""One rollout round of CIPO (method sheet steps 1-8): everything before the gradient.

    collect_round:
      main      = generate(B prompts, G each)                          engine
                  verify(main)                                         verifier
                  score: group advantages (a group with a skip dropped)  algorithms/advantages.py
      anchors   = select_anchors(difficulty preference, replay share rho)  algorithms/correction.py
      corrections = generate(correction prompts T(q, anchor), M each)
                  verify(corrections)
                  score: correction_advantages (group advantages per     algorithms/advantages.py
                         anchor, risk-averse shaping, progress bonus) or SFT rows
      transplant (option): a fixed revision also answers its original prompt; the main
                  groups that receive one are re-scored with it (group_advantages_with_extra)
      pack_round -> RolloutBatch (main rows, transplanted rows, then kept correction rows)  rollout/packing.py
      -> RoundResult(batch, counts, samples)                           rollout/round_summary.py

Token in, token out: prompts go to the engine as ids and the batch packs exactly those ids and
the sampled ones; a correction prompt joins the problem's ids, the attempt's sampled ids and the
template's suffix (``rollout/correction_prompts.py``), never re-encoding the attempt's text.
Options: ``algorithm.mask_truncated_completions`` keeps completions cut off at max_new_tokens out
of the loss (both streams); ``algorithm.dynamic_sampling`` trains the main stream only on groups
with unequal rewards, refilled by extra rounds (``rollout/dynamic_rounds.py``), and chooses anchors
from every generated group (all-wrong groups are where failed attempts come from).

With ``algorithm.correction.enabled: false`` this is exactly GRPO's rollout. With
``objective: sft`` the successful revisions are kept as supervised targets instead
(the rejection-sampling baseline) and the failed ones are dropped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cipo.algorithms.advantages import correction_advantages, group_advantages
from cipo.algorithms.anchors import select_anchors
from cipo.algorithms.config import AlgorithmConfig
from cipo.rollout import correction_prompts as token_prompts
from cipo.rollout.dynamic_rounds import fill_informative_groups
from cipo.rollout.engine import RolloutEngine
from cipo.rollout.packing import pack_round
from cipo.rollout.round_counts import RoundCounts
from cipo.rollout.round_summary import correction_counts, correction_samples, main_counts, main_samples
from cipo.rollout.streams import Stream
from cipo.rollout.transplant import transplant
from cipo.types import Record, RolloutBatch, SamplingSettings
from cipo.verifiers import Verifier

SAMPLES_LOGGED = 4  # rows of a step's sample table (TensorBoard text)


@dataclass
class RoundResult:
    """What one round hands on: the batch to train on, its counts, a few rows to show."""

    batch: RolloutBatch
    counts: RoundCounts
    samples: list[dict[str, str]]


class _Clock:
    """Seconds spent generating and verifying (summed over both streams)."""

    def __init__(self) -> None:
        self.generate_s = self.verify_s = 0.0


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
    num_samples_logged: int = SAMPLES_LOGGED,
    draw: Callable[[int], list[Record]] | None = None,
    transplant_inline: bool = False,
) -> RoundResult:
    """Generate, verify and score one step's main and correction episodes, and pack them.

    ``draw(count)``: ``count`` more train records, for dynamic sampling's extra rounds (required
    when ``algorithm.dynamic_sampling.enabled``). ``transplant_inline``: a transplanted revision
    continues its attempt as an inline check instead of answering the bare prompt
    (``rollout/transplant.py``; the template must be ``{problem}{attempt}<fixed text>``)."""
    group_size, corr, clock = algorithm.group_size, algorithm.correction, _Clock()

    def sample(records: list[Record], seed: int) -> Stream:
        ids = tokenizer([r.prompt for r in records], add_special_tokens=False)["input_ids"] if records else []
        stream = generate(engine, [r.prompt for r in records], ids, [r.reference for r in records], group_size,
                          sampling, seed, clock)  # fmt: skip
        verify_stream(stream, verify, group_size, clock)
        return stream

    main, extra_rounds, trained_groups = sample(records, seed), 0, None
    if algorithm.dynamic_sampling.enabled and records:
        if draw is None:
            raise ValueError("algorithm.dynamic_sampling.enabled needs draw (more train records) in collect_round")
        filled = fill_informative_groups(
            main,
            lambda count, round_index: sample(draw(count), seed + 104_729 * round_index),
            group_size,
            len(records),
            algorithm.dynamic_sampling.max_extra_rounds,
        )
        main, extra_rounds, trained_groups = filled.generated, filled.extra_rounds, filled.trained_groups
    score_main(main, group_size, algorithm.advantage)
    counts = main_counts(main, group_size)
    if trained_groups is not None:
        counts = dataclasses.replace(
            counts, dynamic_sampling=True, extra_rounds=extra_rounds, trained_groups=int(trained_groups.sum())
        )

    correction, transplanted, samples = Stream(), Stream(), []
    if corr.enabled and corr.num_anchors > 0 and len(records) > 0:
        anchors, anchor_counts = choose_anchors(main, group_size, algorithm, replay_ratio, seed)
        texts, ids = correction_prompts(tokenizer, main, anchors, correction_template)
        references = [main.references[i] for i in anchors]
        correction = generate(engine, texts, ids, references, corr.samples_per_anchor, sampling, seed + 1, clock)
        verify_stream(correction, verify, corr.samples_per_anchor, clock)
        score_corrections(correction, main, anchors, algorithm)
        if corr.transplant and corr.objective == "rl":
            transplanted = transplant(main, correction, anchors, group_size, algorithm, transplant_inline, tokenizer)
        counts = correction_counts(counts, anchor_counts, main, anchors, correction, group_size, transplanted)
        samples = correction_samples(main, anchors, correction, corr.samples_per_anchor, num_samples_logged)
    samples = samples or main_samples(main, group_size, num_samples_logged)
    generated_rows = main.completions + correction.completions
    if trained_groups is not None:  # the GRPO loss sees only the informative groups
        main = main.rows(trained_groups.repeat_interleave(group_size).nonzero().flatten().tolist())

    batch = pack_round(tokenizer, main, correction, step, algorithm.mask_truncated_completions, transplanted)
    generated = sum(len(c.token_ids) for c in generated_rows)
    counts = dataclasses.replace(
        counts, generated_tokens=generated, generate_s=clock.generate_s, verify_s=clock.verify_s
    )
    return RoundResult(batch=batch, counts=counts, samples=samples)


# --- generate -> verify -> score ---------------------------------------------------------


def generate(engine, prompts, prompt_ids, references, n, sampling, seed, clock: _Clock) -> Stream:
    """``n`` samples of each prompt (sent as its ids), laid out group by group."""
    started = time.perf_counter()
    groups = engine.generate(prompt_ids, n, sampling, seed=seed)
    clock.generate_s += time.perf_counter() - started
    return Stream(
        prompts=[p for p in prompts for _ in range(n)],
        prompt_ids=[ids for ids in prompt_ids for _ in range(n)],
        references=[r for r in references for _ in range(n)],
        completions=[c for group in groups for c in group],
    )


def verify_stream(stream: Stream, verify: Verifier, group_size: int, clock: _Clock) -> None:
    """Verdicts and rewards; ``keep`` drops a whole group with any skipped row (e.g. unparseable
    gold): never a reward, never a penalty."""
    started = time.perf_counter()
    stream.results = verify([c.text for c in stream.completions], stream.references)
    clock.verify_s += time.perf_counter() - started
    stream.rewards = torch.tensor([r.reward for r in stream.results], dtype=torch.float32)
    if not stream.results:
        stream.keep = torch.zeros(0, dtype=torch.bool)
        return
    skipped = torch.tensor([r.status.is_skip for r in stream.results], dtype=torch.bool)
    stream.keep = ~skipped.view(-1, group_size).any(dim=1).repeat_interleave(group_size)


def score_main(main: Stream, group_size: int, method: str) -> None:
    main.advantages = group_advantages(main.rewards, group_size, method) * main.keep
    main.sft = torch.zeros_like(main.keep)


def score_corrections(correction: Stream, main: Stream, anchors: list[int], algorithm: AlgorithmConfig) -> None:
    """RL: group advantages per anchor with the breakage penalty and progress bonus
    (``correction_advantages``). SFT: keep the successful revisions as supervised targets
    (advantage unused), drop the rest."""
    corr, revised = algorithm.correction, correction.success
    m = corr.samples_per_anchor
    correction.rewards, advantages = correction_advantages(
        main.success[anchors].repeat_interleave(m),
        main.rewards[anchors].repeat_interleave(m),
        revised,
        correction.rewards,
        m,
        method=algorithm.advantage,
        penalty=corr.penalty,
        progress_bonus=corr.progress_bonus,
        shaping=corr.shaping,
        std_scope=corr.std_scope,
        valid=correction.keep,
    )
    if corr.objective == "sft":
        correction.keep = correction.keep & revised
        correction.sft = correction.keep.clone()
        correction.advantages = torch.zeros(revised.numel())
    else:
        correction.sft = torch.zeros_like(correction.keep)
        correction.advantages = advantages


# --- anchors and correction prompts ------------------------------------------------------


def choose_anchors(main: Stream, group_size: int, algorithm: AlgorithmConfig, replay_ratio: float, seed: int):
    """Rows of ``main`` to revise (an attempt whose gold was unusable never is: the K anchors come
    from the other groups) and ``select_anchors``'s counts."""
    corr = algorithm.correction
    generator = torch.Generator().manual_seed(seed)
    anchors, anchor_counts = select_anchors(
        main.success,
        group_size,
        corr.num_anchors,
        replay_ratio,
        corr.acc_low,
        corr.acc_high,
        preference=corr.anchor_preference,
        all_wrong_share=corr.all_wrong_share,
        eligible=main.keep,
        generator=generator,
    )
    return anchors.tolist(), anchor_counts


def correction_prompts(tokenizer, main: Stream, anchors: list[int], template: str):
    """T(q, anchor) per anchor, as (texts, ids): the problem, the attempt and (if the template asks)
    the verdict or the verifier's feedback; the attempt's sampled ids go in as they are."""
    success = main.success
    verdicts = [bool(success[i]) for i in anchors] if "{verdict}" in template else None
    feedback = [main.results[i].feedback for i in anchors] if "{feedback}" in template else None
    prompts = token_prompts.correction_prompts(
        tokenizer,
        [main.prompts[i] for i in anchors],
        [main.prompt_ids[i] for i in anchors],
        [main.completions[i] for i in anchors],
        template,
        verdicts,
        feedback,
    )
    texts = [p if isinstance(p, str) else tokenizer.decode(p) for p in prompts]
    ids = [p if not isinstance(p, str) else tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return texts, ids
