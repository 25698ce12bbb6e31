"""The judge: splitting check() into tests (asserts) and setup, and what a reference's tests may
do with the program's stand-ins (classes, generators, in-place changes, exceptions, big values)."""

import pytest

from cipo.code_reference import function_reference
from cipo.data.leetcode import PRELUDE
from cipo.data.references import code_tests
from cipo.types import VerifyStatus as S
from cipo.verifiers.code import CodeVerifier
from cipo.verifiers.isolated.judge import check_statements as _check_statements

TEST = """
import math

def check(candidate):
    import math
    assert candidate(1) == 2
    x = candidate(2)
    assert x == 4, "two"
    for i in range(3):
        assert candidate(i) == 2 * i
"""


def test_asserts_are_tests_and_the_rest_is_setup():
    arg, statements = _check_statements(TEST)
    assert arg == "candidate"
    assert [is_test for _, _, is_test in statements] == [False, True, False, True, True]
    assert statements[1][0] == "assert candidate(1) == 2"
    assert statements[4][0].startswith("for i in range(3):")


def test_check_without_asserts_is_not_split():
    assert _check_statements("def check(candidate):\n    helper(candidate)\n") is None
    assert _check_statements("def other(candidate):\n    assert candidate(1)\n") is None
    assert _check_statements("def check():\n    assert True\n") is None


# --- the judge running real samples ----------------------------------------------------------


@pytest.fixture(scope="module")
def verifier():
    verifier = CodeVerifier(num_workers=2, sample_timeout_s=10, test_timeout_s=2)
    yield verifier
    verifier.close()


def judge(verifier, code: str, test: str, entry: str = "f", prompt: str = ""):
    [result] = verifier([f"```python\n{code}\n```"], [function_reference(prompt, test, entry)])
    return result


def test_a_class_and_its_methods_leetcode_style(verifier):
    test = "def check(candidate):\n    assert candidate().twoSum(nums=[2, 7, 11], target=9) == [0, 1]\n"
    code = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        return [0, 1]"
    assert judge(verifier, code, test, "Solution", PRELUDE).status == S.PASSED


def test_generators_lists_and_changes_in_place(verifier):
    test = (
        "def check(candidate):\n    assert list(candidate(3)) == [0, 1, 2]\n"
        "    xs = [3, 1, 2]\n    candidate.sort_in_place(xs)\n    assert xs == [1, 2, 3]\n"
        "    d = {}\n    candidate.fill(d)\n    assert d == {'k': (1, 2)}\n"
    )
    code = (
        "def f(n):\n    yield from range(n)\n"
        "f.sort_in_place = lambda xs: xs.sort()\nf.fill = lambda d: d.update(k=(1, 2))"
    )
    result = judge(verifier, code, test)
    assert result.status == S.PASSED and result.score == 1.0, result


def test_the_programs_exceptions_keep_their_type(verifier):
    test = (
        "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError as error:\n"
        "        assert 'negative' in str(error)\n    else:\n        assert False\n"
    )
    assert judge(verifier, "def f(x):\n    if x < 0:\n        raise ValueError('negative')", test).status == S.PASSED
    # but a timeout or a dead process is never caught by a test's `except Exception`
    swallow = "def check(candidate):\n    try:\n        candidate(1)\n    except Exception:\n        pass\n"
    assert judge(verifier, "def f(x):\n    while True:\n        pass", swallow).status == S.TIMEOUT
    assert judge(verifier, "import os\ndef f(x):\n    os._exit(0)", swallow).status == S.RUNTIME_ERROR


def test_a_timed_out_test_does_not_stop_the_next_one(verifier):
    test = "def check(candidate):\n    assert candidate(0) == 0\n    assert candidate(1) == 1\n"
    result = judge(verifier, "def f(x):\n    while x == 0:\n        pass\n    return x", test)
    assert result.status == S.TIMEOUT and result.score == 0.5, result


def test_huge_integers_and_floats(verifier):
    test = "def check(candidate):\n    assert candidate(5000) == 7**5000\n    assert candidate(-1) != candidate(-1)\n"
    code = "import math\ndef f(n):\n    return 7**n if n > 0 else math.nan"
    assert judge(verifier, code, test).status == S.PASSED


def test_a_test_that_passes_a_function_is_a_verifier_limitation(verifier):
    test = "def check(candidate):\n    assert candidate(lambda y: y + 1) == 2\n"
    result = judge(verifier, "def f(g):\n    return g(1)", test)
    assert result.status == S.ERROR and "cannot run this test" in result.feedback


def test_assert_scripts_call_the_programs_functions_by_name(verifier):
    ref = code_tests({"test": ["assert add(1, 2) == 3", "assert twice(add(1, 1)) == 4"]})
    [result] = verifier(["```python\ndef add(a, b):\n    return a + b\ndef twice(x):\n    return 2 * x\n```"], [ref])
    assert result.status == S.PASSED, result


def test_printing_and_sys_exit_in_the_program(verifier):
    test = "def check(candidate):\n    assert candidate(1) == 2\n"
    assert judge(verifier, "print('hello' * 1000)\ndef f(x):\n    print(x)\n    return 2 * x", test).status == S.PASSED
    result = judge(verifier, "import sys\ndef f(x):\n    sys.exit(3)", test)
    assert result.status == S.RUNTIME_ERROR and "SystemExit(3)" in result.feedback
