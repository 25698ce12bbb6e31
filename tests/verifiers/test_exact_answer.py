"""Exact-integer verifier: statuses, last marker wins, signs, batch calls."""

import pytest

from cipo.types import VerifyStatus
from cipo.verifiers.exact_answer import ExactIntegerVerifier, extract_answer, verify_exact_integer


@pytest.mark.parametrize(
    "completion, reference, status, success",
    [
        ("4+3=7\nAns:7", "7", VerifyStatus.OK, True),
        ("4+3=8\nAns:8", "7", VerifyStatus.WRONG, False),
        ("4+3=7+1=8", "7", VerifyStatus.NO_ANSWER, False),  # cut off before the marker
        ("", "7", VerifyStatus.NO_ANSWER, False),
        ("4+3=7\nAns:seven", "7", VerifyStatus.MALFORMED, False),
        ("4+3=7\nAns:", "7", VerifyStatus.MALFORMED, False),
        ("4+3=7\nAns:7.0", "7", VerifyStatus.MALFORMED, False),
        ("4+3=7\nAns: 7 ", "7", VerifyStatus.OK, True),  # surrounding spaces are stripped
        ("Ans:07", "7", VerifyStatus.OK, True),  # integer comparison, not string
        ("x Ans:7", "7", VerifyStatus.NO_ANSWER, False),  # marker must start the line
    ],
)
def test_statuses(completion, reference, status, success):
    result = verify_exact_integer(completion, reference)
    assert result.status == status
    assert result.success is success
    assert result.reward == (1.0 if success else 0.0)


def test_last_answer_line_wins():
    assert verify_exact_integer("Ans:3\nno wait\nAns:5", "5").status == VerifyStatus.OK
    assert verify_exact_integer("Ans:5\nno wait\nAns:3", "5").status == VerifyStatus.WRONG
    assert extract_answer("Ans:1\nAns:2\nAns:x") == "x"
    assert extract_answer("nothing here") is None


@pytest.mark.parametrize("answer, reference, ok", [("-3", "-3", True), ("+3", "3", True), ("-3", "3", False)])
def test_signed_integers(answer, reference, ok):
    result = verify_exact_integer(f"Ans:{answer}", reference)
    assert result.success is ok
    assert result.status == (VerifyStatus.OK if ok else VerifyStatus.WRONG)


def test_feedback_names_the_problem():
    feedback = verify_exact_integer("Ans:8", "7").feedback
    assert "answer 8 is not equal" in feedback and "7" not in feedback  # never leaks the gold answer
    assert "'Ans:'" in verify_exact_integer("nope", "7").feedback


def test_custom_marker():
    verifier = ExactIntegerVerifier(marker="#### ")
    assert verifier(["work\n#### 12"], ["12"])[0].success
    assert verifier(["work\nAns:12"], ["12"])[0].status == VerifyStatus.NO_ANSWER
    with pytest.raises(ValueError, match="marker"):
        ExactIntegerVerifier(marker="")


def test_batch_call_aligned_and_strict():
    verifier = ExactIntegerVerifier()
    results = verifier(["Ans:1", "Ans:2", "oops", "Ans:?"], ["1", "3", "1", "1"])
    assert [r.status for r in results] == [
        VerifyStatus.OK,
        VerifyStatus.WRONG,
        VerifyStatus.NO_ANSWER,
        VerifyStatus.MALFORMED,
    ]
    assert verifier([], []) == []
    with pytest.raises(ValueError):
        verifier(["Ans:1", "Ans:2"], ["1"])
