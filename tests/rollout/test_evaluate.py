"""evaluate_records / generate_results / summarize with a scripted engine: every metric hand-computed."""

import dataclasses

import pytest

from cipo.rollout.engine import SamplingSettings
from cipo.rollout.evaluate import evaluate_records, generate_results, summarize
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
    assert m["num_problems"] == 3 and m["samples_per_problem"] == 4  # for the evaluation's standard error
    assert "first_attempt_accuracy" not in m and "num_fixed" not in m  # no revision round
    assert engine.calls == [([r.prompt for r in RECORDS], 4, SETTINGS, 11)]


def test_self_correction_metrics(built_tokenizer):
    m, engine = evaluate(built_tokenizer, correction_template=TEMPLATE)
    assert m["fix_rate"] == pytest.approx(1 / 2)  # r1 fixed, r2 not
    assert m["retention"] == pytest.approx(0.0)  # r0 broken
    assert m["break_rate"] == pytest.approx(1.0)
    assert m["second_attempt_accuracy"] == pytest.approx(1 / 3)
    # SCoRe's counts: r0 right -> wrong (c->i), r1 wrong -> right (i->c), r2 wrong -> wrong
    assert m["first_attempt_accuracy"] == pytest.approx(1 / 3)  # Acc@t1 of the revised first samples
    assert (m["num_fixed"], m["num_kept"], m["num_broken"], m["num_unfixed"]) == (1, 0, 1, 1)
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


# ------------------------------------------------------------------ revision rounds
# round r's revision of each problem (seed = 11 + r): r0 right -> wrong -> right,
# r1 (no answer) -> right -> right, r2 wrong -> wrong -> wrong
ROUND_REVISION = {"r0": [False, True], "r1": [True, True], "r2": [False, False]}


def round_script(prompt, j, seed):
    record = problem_of(prompt, RECORDS)
    if prompt == record.prompt:
        return script(prompt, j, seed)
    return answer(record.reference, ROUND_REVISION[record.id][seed - 12])


def test_two_revision_rounds_hand_computed(built_tokenizer):
    engine = ScriptedEngine(built_tokenizer, round_script)
    results = generate_results(
        engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 4, seed=11, correction_template=TEMPLATE, rounds=2
    )
    assert [call[3] for call in engine.calls] == [11, 12, 13]
    assert [r.attempt.success for r in results] == [True, False, False]  # each problem's first sample
    assert [[v.success for v in r.revisions] for r in results] == [[False, True], [True, True], [False, False]]
    round1_texts = [r.revisions[0].text for r in results]
    assert engine.calls[2][0] == [TEMPLATE.format(problem=r.prompt, attempt=t) for r, t in zip(RECORDS, round1_texts)]

    metrics, rounds = summarize(results, 4, rounds=2)
    assert [row["accuracy"] for row in rounds] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert rounds[1] == pytest.approx(
        dict(round=1, accuracy=1 / 3, fixed=1, kept=0, broken=1, unfixed=1, fix_rate=0.5, retention=0.0,
             break_rate=1.0, delta=0.0)
    )  # fmt: skip
    assert rounds[2]["fix_rate"] == pytest.approx(0.5) and rounds[2]["retention"] == 1.0
    assert rounds[2]["delta"] == pytest.approx(1 / 3)
    # round 1 keeps the single-round names; later rounds add accuracy_round_<r>
    assert metrics["fix_rate"] == 0.5 and metrics["second_attempt_accuracy"] == pytest.approx(1 / 3)
    assert metrics["accuracy_round_2"] == pytest.approx(2 / 3) and metrics["accuracy_round_0"] == pytest.approx(1 / 3)


SUPPLIED = [
    Record("r0", "Q:2+3\nA:", "5", {"level": 1, "attempt": "2+3=6\nAns:6"}),
    Record("r1", "Q:1+4\nA:", "5", {"level": 1, "attempt": "1+4=5\nAns:5"}),
    Record("r2", "Q:9-2\nA:", "7", {"level": 2, "attempt": "9-2=5\nAns:5"}),
]


def test_supplied_attempts_are_verified_and_revised(built_tokenizer):
    engine = ScriptedEngine(built_tokenizer, script)
    results = generate_results(
        engine, SUPPLIED, ExactIntegerVerifier(), SETTINGS, 4, 11, TEMPLATE, rounds=1, attempts="supplied"
    )
    assert [(r.attempt.success, r.attempt_source) for r in results] == [
        (False, "supplied"),
        (True, "supplied"),
        (False, "supplied"),
    ]
    assert engine.calls[1][0] == [TEMPLATE.format(problem=r.prompt, attempt=r.meta["attempt"]) for r in SUPPLIED]
    metrics, _ = summarize(results, 4, rounds=1)
    # revisions (REVISION): r0 wrong -> wrong, r1 right -> right, r2 wrong -> wrong
    assert metrics["fix_rate"] == 0.0 and metrics["retention"] == 1.0


def test_supplied_attempts_missing_names_the_record_and_the_fix(built_tokenizer):
    engine = ScriptedEngine(built_tokenizer, script)
    with pytest.raises(ValueError, match=r"record\.meta\['attempt'\].*first: 'r0'.*attempts=own"):
        generate_results(engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 4, 11, TEMPLATE, attempts="supplied")
    assert not engine.calls  # checked before any generation


def test_a_shard_evaluates_its_problems_with_the_whole_sets_levels(built_tokenizer):
    engine = ScriptedEngine(built_tokenizer, script)
    m = evaluate_records(engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 4, seed=11, rank=1, world_size=2)
    assert engine.calls[0][0] == [RECORDS[1].prompt]  # records[1::2]
    assert m["accuracy"] == 0.0 and "accuracy_level_2" not in m  # r2 is the other rank's
    assert m["chance_accuracy"] == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2)  # from all problems
    with pytest.raises(ValueError, match="rank"):
        evaluate_records(engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 4, seed=11, rank=2, world_size=2)


def _sharded_worker(rank: int, port: int, queue) -> None:
    import torch

    from cipo.models.builtin import build_tokenizer

    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, init_method=f"tcp://127.0.0.1:{port}")
    try:
        engine = ScriptedEngine(build_tokenizer(), script)
        metrics = evaluate_records(
            engine, RECORDS, ExactIntegerVerifier(), SETTINGS, 4, 11, TEMPLATE, rank=rank, world_size=2
        )
        queue.put((rank, metrics))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~10 s: two spawned interpreters
def test_sharded_evaluation_over_two_processes_equals_one_process(built_tokenizer):
    import socket

    import torch.multiprocessing as mp

    expected, _ = evaluate(built_tokenizer, correction_template=TEMPLATE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_sharded_worker, args=(port, queue), nprocs=2, start_method="spawn")
    results = dict(queue.get() for _ in range(2))
    assert results[0] == pytest.approx(expected) and results[1] == pytest.approx(expected)


class FeedbackVerifier(ExactIntegerVerifier):
    def __call__(self, completions, references):
        results = super().__call__(completions, references)
        return [dataclasses.replace(r, feedback=f"<{r.status.value}>") for r in results]


def test_self_correction_passes_the_first_samples_feedback(built_tokenizer):
    template = "{problem}{attempt}\n{feedback}\nCheck:\nA:"
    engine = ScriptedEngine(built_tokenizer, script)
    evaluate_records(engine, RECORDS, FeedbackVerifier(), SETTINGS, 4, seed=11, correction_template=template)
    revision_prompts = engine.calls[1][0]
    first = {"r0": "<ok>", "r1": "<no_answer>", "r2": "<wrong>"}  # each problem's sample 0
    for record, prompt in zip(RECORDS, revision_prompts):
        assert prompt.endswith(f"\n{first[record.id]}\nCheck:\nA:")
