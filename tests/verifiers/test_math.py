"""MathVerifier: statuses, math-verify equivalence (gold first), unparseable gold is a skip,
pathological input times out within the deadline, a crashing worker costs one item."""

from __future__ import annotations

import os
import pickle
import time

import pytest

from cipo.types import VerifyStatus
from cipo.verifiers.math import MathVerifier, check_job

S = VerifyStatus


@pytest.fixture(scope="module")
def verifier():
    verifier = MathVerifier(num_workers=2, fallbacks=["gsm8k", "answer_is"])
    yield verifier
    verifier.close()


@pytest.mark.parametrize(
    "completion, gold, status",
    [
        (r"\boxed{\frac{1}{2}}", "0.5", S.OK),  # fraction vs decimal
        (r"\boxed{0.5}", r"\frac12", S.OK),
        (r"\boxed{\dfrac{6}{8}}", "3/4", S.OK),
        (r"\boxed{1000}", "1,000", S.OK),
        (r"\boxed{2\sqrt{3}}", r"\sqrt{12}", S.OK),
        (r"\boxed{\{2, 1\}}", r"\{1,2\}", S.OK),  # sets are unordered
        (r"\boxed{(1, 2]}", r"(1,2]", S.OK),  # intervals
        (r"\boxed{[1, 2]}", r"(1,2]", S.WRONG),  # ... and their ends matter
        (r"\boxed{x=3}", "3", S.OK),
        (r"\boxed{3}", r"$\boxed{3}$", S.OK),  # gold given boxed and in $
        (r"\boxed{3}", r"\(3\)", S.OK),
        (r"\boxed{4}", "3", S.WRONG),
        (r"\boxed{\frac{1}{3}}", "0.33", S.WRONG),
        ("The answer is 12.", "12", S.OK),  # fallback
        ("#### 7", "7", S.OK),
        ("I think it's 7", "7", S.NO_ANSWER),  # last_number is not configured here
        (r"\boxed{\frac{1}{", "1", S.NO_ANSWER),  # cut off inside the box
        (r"\boxed{5}", "", S.UNPARSEABLE_GOLD),
        (r"\boxed{5}", r"\frac{1}{", S.UNPARSEABLE_GOLD),
        ("no answer at all", r"\frac{1}{", S.UNPARSEABLE_GOLD),  # a bad gold is a skip, whatever the answer
    ],
)
def test_statuses(verifier, completion, gold, status):
    [result] = verifier([completion], [gold])
    assert result.status == status, result.feedback
    assert result.success is (status == S.OK)
    assert result.reward == (1.0 if status == S.OK else 0.0)


@pytest.mark.parametrize(
    "completion, gold, status",
    [
        # units are not dropped: the same number in another unit is wrong; one side without a unit is fine
        (r"\boxed{10 \text{ m}}", r"10 \text{ cm}", S.WRONG),
        (r"\boxed{10 m}", "10 cm", S.WRONG),
        (r"\boxed{10\,\mathrm{kg}}", r"10\text{ g}", S.WRONG),
        (r"\boxed{10 \text{ cm}}", r"10\text{cm}", S.OK),
        (r"\boxed{10 centimeters}", "10 cm", S.OK),
        (r"\boxed{10}", r"10 \text{ cm}", S.OK),
        (r"\boxed{5 \text{ cm}^2}", r"5\text{ cm}^2", S.OK),
        (r"\boxed{90^\circ}", "90", S.OK),
        # a finite decimal is right only when it is the gold exactly
        (r"\boxed{1.41421356}", r"\sqrt{2}", S.WRONG),
        (r"\boxed{3.14159265}", r"\pi", S.WRONG),
        (r"\boxed{0.333333333}", r"\frac{1}{3}", S.WRONG),
        (r"\boxed{0.25}", r"\frac{1}{4}", S.OK),
        (r"\boxed{2.50}", "2.5", S.OK),
        (r"\boxed{\sqrt{2}}", r"\sqrt{2}", S.OK),
        # notations a careful grader reads
        (r"\boxed{1e3}", "1000", S.OK),
        (r"\boxed{2.5E-2}", r"\frac{1}{40}", S.OK),
        (r"\boxed{0.\overline{3}}", r"\frac{1}{3}", S.OK),
        (r"\boxed{1.2\overline{34}}", r"\frac{611}{495}", S.OK),
        (r"\boxed{0.\overline{3}}", "0.3", S.WRONG),
        ("The answer is ½.", r"\frac{1}{2}", S.OK),
        (r"\boxed{2¾}", r"\frac{11}{4}", S.OK),
        (r"\boxed{１２３}", "123", S.OK),
        (r"\boxed{−５}", "-5", S.OK),
        (r"\boxed{" + "9" * 5000 + "}", "9" * 5000, S.OK),
        (r"\boxed{" + "9" * 5000 + "}", "9" * 4999 + "8", S.WRONG),
        (r"\boxed{" + "1" + "0" * 5000 + "}", "10^{5000}", S.OK),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else str(value),
)
def test_careful_grading(verifier, completion, gold, status):
    [result] = verifier([completion], [gold])
    assert result.status == status, result.feedback


def test_unparseable_gold_is_a_skip_never_a_reward(verifier):
    results = verifier([r"\boxed{5}", "nothing"], ["", ""])
    assert all(r.status.is_skip and r.reward == 0.0 and not r.success for r in results)
    assert "gold answer" in results[0].feedback


def test_gold_goes_first(verifier):
    # math-verify is not symmetric: a relation gold accepts an interval answer, not the reverse
    assert verifier([r"\boxed{(1,2)}"], ["1 < x < 2"])[0].status == S.OK
    assert verifier([r"\boxed{1 < x < 2}"], ["(1,2)"])[0].status == S.WRONG


def test_batch_is_aligned(verifier):
    results = verifier([r"\boxed{1}", r"\boxed{2}", "x", r"\boxed{4}"], ["1", "3", "1", "4"])
    assert [r.status for r in results] == [S.OK, S.WRONG, S.NO_ANSWER, S.OK]
    assert verifier([], []) == []
    with pytest.raises(ValueError, match="2 completions but 1 references"):
        verifier(["a", "b"], ["1"])


def test_pathological_expression_times_out_within_the_deadline(verifier):
    # sympy would compare 10^(10^10) with 5 for minutes; math-verify's alarm stops it
    started = time.monotonic()
    results = verifier([r"\boxed{10^{10^{10}}}", r"\boxed{5}"], ["5", "5"])
    assert results[0].status == S.TIMEOUT and "timed out" in results[0].feedback
    assert results[1].status == S.OK
    assert time.monotonic() - started < verifier.pool.deadline_s


def test_hard_deadline_when_the_worker_does_not_answer(monkeypatch):
    verifier = MathVerifier(num_workers=1, deadline_s=4, parsing_timeout_s=1, compare_timeout_s=1)
    verifier.check = _sleep_past_deadline
    try:
        started = time.monotonic()
        [result] = verifier([r"\boxed{1}"], ["1"])
        assert result.status == S.TIMEOUT and "deadline" in result.feedback
        assert time.monotonic() - started < 4 + 10
        verifier.check = check_job
        assert verifier([r"\boxed{1}"], ["1"])[0].status == S.OK  # a fresh worker took over
    finally:
        verifier.close()


def test_crashing_worker_gives_error_and_the_pool_goes_on(verifier, monkeypatch):
    monkeypatch.setattr(verifier, "check", _crash_on_gold_13)
    results = verifier([r"\boxed{1}", r"\boxed{13}", r"\boxed{2}"], ["1", "13", "3"])
    assert [r.status for r in results] == [S.OK, S.ERROR, S.WRONG]
    assert "exit code 7" in results[1].feedback
    monkeypatch.undo()
    assert verifier([r"\boxed{13}"], ["13"])[0].status == S.OK  # next call works


def test_pickles_and_works_after(verifier):
    verifier([r"\boxed{1}"], ["1"])
    clone = pickle.loads(pickle.dumps(verifier))
    try:
        assert clone([r"\boxed{1}"], ["1"])[0].success
    finally:
        clone.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fallbacks": ["nope"]}, r"verifier\.fallbacks"),
        ({"parsing_timeout_s": 0.5}, r"verifier\.parsing_timeout_s"),
        ({"deadline_s": 3}, r"verifier\.deadline_s=3"),
        ({"worker_memory_mb": 10}, r"verifier\.worker_memory_mb"),
        ({"num_workers": 0}, "num_workers"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MathVerifier(**kwargs)


# Module-level so the worker processes can unpickle them.
def _sleep_past_deadline(job):
    time.sleep(60)


def _crash_on_gold_13(job):
    if job.gold == "13":
        os._exit(7)
    return check_job(job)


def test_worker_memory_cap_turns_a_blow_up_into_error():
    verifier = MathVerifier(num_workers=1, worker_memory_mb=256)
    verifier.check = _allocate_a_gigabyte
    try:
        [result] = verifier([r"\boxed{1}"], ["1"])
        assert result.status == S.ERROR and "MemoryError" in result.feedback
        verifier.check = check_job
        assert verifier([r"\boxed{1}"], ["1"])[0].status == S.OK  # the cap leaves room for real work
    finally:
        verifier.close()


def _allocate_a_gigabyte(job):
    return len(bytearray(2**30))
