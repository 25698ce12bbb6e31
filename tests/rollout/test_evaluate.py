"""evaluate_records with a scripted engine: every metric hand-computed."""

import pytest

from cipo.rollout.engine import SamplingSettings
from cipo.rollout.evaluate import evaluate_records
from cipo.types import Record
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from fakes import ScriptedEngine, answer, problem_of

TEMPLATE = "{problem}{attempt}\nCheck:\nA:"
RECORDS = [
    Record("r0", "Q:2+3\nA:", "5", {"level": 1}),
    Record("r1", "Q:1+4\nA:", "5", {"level": 1}),
    Record("r2", "Q:9-2\nA:", "7", {"level": 2}),
]
# samples per problem (n = 4): 1 right, 0 wrong answer, None no answer at all
PATTERN = {"r0": [1, 1, 0, 0], "r1": [None, None, None, None], "r2": [0, 1, 1, 1]}
# the one revision of each problem's first sample: r0 right->wrong, r1 wrong->right, r2 wrong->wrong
REVISION = {"r0": False, "r1": True, "r2": False}
SETTINGS = SamplingSettings(max_new_tokens=12, temperature=0.8)


def script(prompt, j, seed):
    record = problem_of(prompt, RECORDS)
    if prompt == record.prompt:
        outcome = PATTERN[record.id][j]
        return "no marker here" if outcome is None else answer(record.reference, bool(outcome))
    assert prompt.startswith(record.prompt) and prompt.endswith("\nCheck:\nA:")
    return answer(record.reference, REVISION[record.id])


def evaluate(tokenizer, **kwargs):
    engine = ScriptedEngine(tokenizer, script)
    metrics = evaluate_records(engine, RECORDS, ExactIntegerVerifier(), SETTINGS, num_samples=4, seed=11, **kwargs)
    return metrics, engine


def test_first_attempt_metrics(built_tokenizer):
    m, engine = evaluate(built_tokenizer)
    assert m["accuracy"] == pytest.approx(5 / 12)
    assert m["frac_mixed"] == pytest.approx(2 / 3)  # r0 and r2
    assert m["pass@1"] == pytest.approx((2 / 4 + 0 + 3 / 4) / 3)
    assert m["pass@2"] == pytest.approx((1 - 1 / 6 + 0 + 1) / 3)  # r0: 1 - C(2,2)/C(4,2)
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert "pass@3" not in m
    assert m["chance_accuracy"] == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2)  # references 5, 5, 7
    assert m["status_ok"] == pytest.approx(5 / 12)
    assert m["status_wrong"] == pytest.approx(3 / 12)
    assert m["status_no_answer"] == pytest.approx(4 / 12)
    assert m["accuracy_level_1"] == pytest.approx(0.25) and m["accuracy_level_2"] == pytest.approx(0.75)
    assert "fix_rate" not in m and "greedy_accuracy" not in m
    assert engine.calls == [([r.prompt for r in RECORDS], 4, SETTINGS, 11)]


def test_self_correction_metrics(built_tokenizer):
    m, engine = evaluate(built_tokenizer, correction_template=TEMPLATE)
    assert m["fix_rate"] == pytest.approx(1 / 2)  # r1 fixed, r2 not
    assert m["retention"] == pytest.approx(0.0)  # r0 broken
    assert m["break_rate"] == pytest.approx(1.0)
    assert m["second_attempt_accuracy"] == pytest.approx(1 / 3)
    prompts, n, settings, seed = engine.calls[1]
    assert n == 1 and settings == SETTINGS and seed == 12
    expected = [
        TEMPLATE.format(problem=r.prompt, attempt=script(r.prompt, 0, 11)) for r in RECORDS
    ]  # the first sample of each problem is revised
    assert prompts == expected


def test_greedy_accuracy(built_tokenizer):
    m, engine = evaluate(built_tokenizer, greedy=True)
    assert m["greedy_accuracy"] == pytest.approx(1 / 3)  # j = 0 of each: only r0 right
    prompts, n, settings, _ = engine.calls[1]
    assert n == 1 and settings.temperature == 0.0 and settings.max_new_tokens == SETTINGS.max_new_tokens


def test_rates_without_denominator_are_absent(built_tokenizer):
    engine = ScriptedEngine(built_tokenizer, lambda p, j, s: answer(problem_of(p, RECORDS).reference, True))
    m = evaluate_records(engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 2, seed=0, correction_template=TEMPLATE)
    assert m["accuracy"] == 1.0 and m["pass@1"] == 1.0 and m["frac_mixed"] == 0.0
    assert m["retention"] == 1.0 and m["break_rate"] == 0.0
    assert "fix_rate" not in m  # no wrong first attempt to fix
    assert m["second_attempt_accuracy"] == 1.0
