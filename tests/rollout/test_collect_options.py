"""collect_round's options for real models: token in / token out (SmolLM2's BPE tokenizer and chat
template), masking truncated completions, dynamic sampling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cipo.algorithms.config import AlgorithmConfig, CorrectionConfig, DynamicSamplingConfig
from cipo.data.prompts import PromptStyle
from cipo.rollout.collect import collect_round
from cipo.rollout.engine import SamplingSettings
from cipo.tasks.arithmetic import make_record
from cipo.types import Completion, Record, VerifierResult, VerifyStatus
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from fakes import ScriptedEngine, answer, problem_of

G = 2
SAMPLING = SamplingSettings(max_new_tokens=16)


def algorithm(**options) -> AlgorithmConfig:
    correction = CorrectionConfig(**{"num_anchors": 2, "samples_per_anchor": 2, **options.pop("correction", {})})
    return AlgorithmConfig(group_size=G, correction=correction, **options)


class BoxedVerifier:
    """Right iff the text holds \\boxed{<reference>}."""

    def __call__(self, completions, references):
        return [
            VerifierResult(ok, float(ok), VerifyStatus.OK if ok else VerifyStatus.WRONG)
            for ok in (f"\\boxed{{{ref}}}" in text for text, ref in zip(completions, references))
        ]


class IdEngine:
    """Replies with ids chosen by the test (not an encoding of any text); records what it was sent."""

    def __init__(self, tokenizer, reply) -> None:
        self.tokenizer, self.reply, self.calls = tokenizer, reply, []

    def generate(self, prompts, n, settings, seed):
        assert all(isinstance(p, list) for p in prompts), "collect_round sends token ids"
        self.calls.append([list(p) for p in prompts])
        return [[self._completion(*self.reply(p, j)) for j in range(n)] for p in prompts]

    def _completion(self, ids: list[int], finished: bool) -> Completion:
        ids = ids + ([self.tokenizer.eos_token_id] if finished else [])
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Completion(text, ids, [-0.5] * len(ids), finished)

    def sync_weights(self) -> None:
        pass


def _boxed_ids(tokenizer, value: str) -> list[int]:
    """'The answer is \\boxed{<value>}.' as sampled ids that no encoding of the text gives back."""
    ids = tokenizer.convert_tokens_to_ids(["The", "Ġans", "wer", "Ġis", "Ġ\\", "box", "ed", "{"])
    ids += tokenizer.convert_tokens_to_ids(list(value)) + tokenizer.convert_tokens_to_ids(["}", "."])
    assert tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] != ids
    return ids


def _row_ids(batch, row: int) -> list[int]:
    return batch.input_ids[row, : int(batch.attention_mask[row].sum())].tolist()


def test_trained_ids_are_the_sampled_ids_in_both_streams(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    formatter = PromptStyle(format="chat", instruction="Give only the final answer, as a number in \\boxed{}.").build(
        tokenizer
    )
    records = [Record(id=str(k), prompt=formatter.prompt(f"What is {k} plus 5?"), reference=str(k + 5)) for k in (3, 7)]
    # sample 0 of every group (attempts and revisions) says 10, sample 1 says 99
    engine = IdEngine(tokenizer, lambda prompt, j: (_boxed_ids(tokenizer, "10" if j == 0 else "99"), True))
    result = collect_round(
        engine, tokenizer, BoxedVerifier(), records, algorithm(), SAMPLING, formatter.correction_template, 0.5, 0, 0
    )
    batch, (main_prompts, correction_prompts) = result.batch, engine.calls
    assert main_prompts == [tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in records]
    sampled = _boxed_ids(tokenizer, "10") + [tokenizer.eos_token_id]
    main_rows = [_row_ids(batch, row) for row in range(len(records) * G)]
    assert main_rows[0] == main_prompts[0] + sampled  # prompt ids + the sampled ids, nothing re-encoded
    correction_rows = [_row_ids(batch, row) for row in range(len(records) * G, len(batch))]
    assert len(correction_rows) == 4 and batch.is_correction[len(records) * G :].all()
    for k, prompt in enumerate(correction_prompts):
        anchor_ids = next(p for p in main_prompts if prompt[: len(p)] == p)
        attempt = prompt[len(anchor_ids) : len(anchor_ids) + len(sampled) - 1]
        assert attempt in (_boxed_ids(tokenizer, "10"), _boxed_ids(tokenizer, "99"))  # the attempt, as sampled
        assert prompt[len(anchor_ids) + len(attempt)] == tokenizer.eos_token_id  # then the template's <|im_end|>
        assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
        wrong = _boxed_ids(tokenizer, "99") + [tokenizer.eos_token_id]
        assert correction_rows[2 * k] == prompt + sampled and correction_rows[2 * k + 1] == prompt + wrong
    # the loss sees exactly the sampled tokens of every row
    assert batch.loss_mask.sum(dim=1).tolist() == [len(sampled), len(wrong)] * (len(batch) // 2)


@pytest.mark.parametrize("masked", [False, True])
def test_mask_truncated_completions(built_tokenizer, masked):
    records = [make_record("4+3", "train"), make_record("9-2", "train")]

    def reply(prompt, j):  # sample 1 of every group is cut off at the token limit
        return built_tokenizer("Ans:7", add_special_tokens=False)["input_ids"], j == 0

    engine = IdEngine(built_tokenizer, reply)
    result = collect_round(
        engine,
        built_tokenizer,
        ExactIntegerVerifier(),
        records,
        algorithm(mask_truncated_completions=masked),
        SAMPLING,
        "{problem}{attempt}\nCheck:\nA:",
        0.5,
        seed=0,
        step=0,
    )
    batch = result.batch
    finished = torch.tensor([j == 0 for _ in range(len(batch) // G) for j in range(G)])
    trained = batch.loss_mask.sum(dim=1) > 0
    assert trained[finished].all()
    assert trained[~finished].any() != masked  # both streams: cut-off rows leave the loss iff masked
    if masked:
        assert not trained[~finished].any()


# --- dynamic sampling ----------------------------------------------------------------------
FIRST = [make_record(e, "train") for e in ("4+3", "9-2", "1+1", "8-5")]
MORE = [make_record(e, "train") for e in ("2+2", "6-1", "3+4", "5+5")]
# per prompt, which samples are right: FIRST has two informative groups (mixed), MORE three
PATTERN = dict(zip([r.prompt for r in FIRST + MORE], [[1, 0], [1, 1], [0, 0], [0, 1], [0, 0], [1, 0], [0, 1], [1, 0]]))


def _dynamic_round(max_extra_rounds: int, with_draw: bool = True, replay_ratio: float = 0.0):
    records = FIRST + MORE
    drawn = []

    def script(prompt, j, seed):
        record = problem_of(prompt, records)
        right = PATTERN[prompt][j] if prompt == record.prompt else True
        return answer(record.reference, bool(right))

    def more(count):
        drawn.append(count)
        return MORE[:count]

    from cipo.models.builtin import build_tokenizer

    tokenizer = build_tokenizer()
    engine = ScriptedEngine(tokenizer, script)
    options = dict(dynamic_sampling=DynamicSamplingConfig(enabled=True, max_extra_rounds=max_extra_rounds))
    result = collect_round(
        engine,
        tokenizer,
        ExactIntegerVerifier(),
        FIRST,
        algorithm(correction=dict(num_anchors=8), **options),
        SAMPLING,
        "{problem}{attempt}\nCheck:\nA:",
        replay_ratio,
        seed=0,
        step=0,
        draw=more if with_draw else None,
    )
    return result, engine, drawn


def test_dynamic_sampling_trains_a_full_batch_of_informative_groups():
    result, engine, drawn = _dynamic_round(max_extra_rounds=2)
    assert drawn == [4]  # 2 of 4 informative: twice the 2 missing groups
    main = ~result.batch.is_correction
    assert int(main.sum()) == 4 * G  # the batch size in groups, the surplus informative group dropped
    advantages = result.batch.advantages[main].view(-1, G)
    assert (advantages != 0).all(dim=1).all()  # no zero-variance group in the loss
    metrics = result.counts.metrics()
    assert metrics["rollout/dynamic_extra_rounds"] == 1 and metrics["rollout/dynamic_trained_groups"] == 4
    assert result.counts.groups == 8  # every generated group is counted (accuracy of what was sampled)
    # failed-only anchors come from every generated group: with 8 anchors past the 5 failed ones in
    # the band, the all-wrong groups (dropped from the GRPO loss) supply the rest
    revised = engine.calls[-1][0]
    assert any(p.startswith(FIRST[2].prompt) for p in revised)


def test_dynamic_sampling_without_extra_rounds_trains_what_it_has():
    result, _, drawn = _dynamic_round(max_extra_rounds=0)
    assert drawn == [] and int((~result.batch.is_correction).sum()) == 2 * G
    assert result.counts.metrics()["rollout/dynamic_extra_rounds"] == 0


def test_dynamic_sampling_needs_a_prompt_source():
    with pytest.raises(ValueError, match="dynamic_sampling.enabled needs draw"):
        _dynamic_round(max_extra_rounds=1, with_draw=False)


def test_round_counts_merge_dynamic_sampling_fields():
    from cipo.rollout.round_counts import RoundCounts

    a = dataclasses.replace(RoundCounts(), dynamic_sampling=True, extra_rounds=2, trained_groups=3)
    merged = RoundCounts.merge([a, dataclasses.replace(a, extra_rounds=1, trained_groups=4)])
    assert (merged.dynamic_sampling, merged.extra_rounds, merged.trained_groups) == (True, 2, 7)
