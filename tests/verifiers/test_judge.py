"""The judge's splitting of check() into tests (asserts) and setup."""

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
