"""Final-answer extraction: last complete box wins, nested braces, fallbacks in order, config errors."""

import pytest

from cipo.verifiers.math_answer import compile_fallbacks, extract_answer, last_boxed, strip_math_delimiters

ALL = compile_fallbacks(["gsm8k", "answer_is", "last_number"])


@pytest.mark.parametrize(
    "text, answer",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"first \boxed{1}, no wait: \boxed{2}", "2"),  # the last box wins
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are not grouping
        (r"\fbox{7}", "7"),
        (r"\boxed 5 is it", "5"),
        (r"\boxed{3} then \boxed{4", None),  # cut off inside the last box: no answer
        (r"\boxed{}", None),
        (r"\boxedfoo{3}", None),
        ("no box here", None),
    ],
)
def test_last_boxed(text, answer):
    assert last_boxed(text) == answer


@pytest.mark.parametrize(
    "text, answer",
    [
        ("work\n#### 1,234", "1,234"),
        ("####   12  \n\n", "12"),
        ("The answer is:\n\n  42.\n", "42"),  # on the next non-empty line
        ("The answer is 3.5", "3.5"),
        ("ANSWER: 7\nanswer is", "7"),
        ("#### 1\nmore\n#### 2\n", "2"),
        ("So the answer is 17.", "17"),
        ("Answer: $\\frac{3}{4}$", "$\\frac{3}{4}$"),
        ("we get 3 apples, then 5 more\nTotal 8", "8"),
        ("ratio is 3/4", "3/4"),
        (r"#### 5 but \boxed{6}", "6"),  # boxed beats every fallback
        ("nothing numeric", None),
        ("", None),
    ],
)
def test_fallbacks_in_order(text, answer):
    assert extract_answer(text, ALL) == answer


def test_fallback_order_matters_and_none_means_boxed_only():
    text = "The answer is 3\n#### 4"
    assert extract_answer(text, compile_fallbacks(["gsm8k", "answer_is"])) == "4"
    assert extract_answer(text, compile_fallbacks(["answer_is", "gsm8k"])) == "3"
    assert extract_answer(text, []) is None


def test_regex_fallback():
    fallbacks = compile_fallbacks([r"re:Final:\s*(\S+)"])
    assert extract_answer("Final: 1\nFinal: 9", fallbacks) == "9"
    assert extract_answer("nothing", fallbacks) is None


@pytest.mark.parametrize(
    "names, match",
    [
        (["gsm9k"], r"verifier\.fallbacks: unknown fallback 'gsm9k'"),
        (["re:(a)(b)"], "exactly one capture group"),
        (["re:("], "bad regular expression"),
        ([3], "must be strings"),
    ],
)
def test_bad_fallbacks_name_the_key(names, match):
    with pytest.raises(ValueError, match=match):
        compile_fallbacks(names)


@pytest.mark.parametrize(
    "raw, clean",
    [("$x$", "x"), ("\\(x+1\\)", "x+1"), ("$$3$$", "3"), ("\\boxed{5}", "5"), ("$1,000", "1,000"), ("7.", "7")],
)
def test_strip_math_delimiters(raw, clean):
    assert strip_math_delimiters(raw) == clean
