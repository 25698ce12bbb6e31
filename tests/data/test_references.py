"""Reference builders: answers as strings, code references packed as the code verifier's JSON."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from cipo.data.errors import RowError
from cipo.data.references import MISSING, answer, code_function, code_stdio, code_tests, get_field


def test_get_field_walks_dotted_paths():
    row = {"a.b": 1, "rm": {"gt": "7"}, "answer": ["x", "y"], "prompt": [{"content": "hi"}]}
    assert get_field(row, "a.b") == 1  # a literal column name wins
    assert get_field(row, "rm.gt") == "7" and get_field(row, "answer.1") == "y" and get_field(row, "answer.-1") == "y"
    assert get_field(row, "prompt.0.content") == "hi"
    assert get_field(row, "rm.nope") is MISSING and get_field(row, "answer.2") is MISSING


@pytest.mark.parametrize(
    "value, expected",
    [("  42 ", "42"), (42, "42"), (27.0, "27"), (0.5, "0.5"), (["$\\frac{1}{2}$"], "$\\frac{1}{2}$"), ([3], "3")],
)
def test_answer_values_become_strings(value, expected):
    assert answer({"answer": value}) == expected


def test_answer_marker_and_lists():
    assert answer({"a": "He has 3+4=7 apples.\n#### 7"}, "a", marker="####") == "7"
    assert answer({"a": ["1", "2"]}, "a", list_join=", ") == "1, 2"
    with pytest.raises(RowError, match=r"field 'a' has no '####' marker; set reference.marker=null"):
        answer({"a": "7"}, "a", marker="####")
    with pytest.raises(RowError, match=r"field 'a' holds 2 answers; set reference.list_join"):
        answer({"a": ["1", "2"]}, "a")


@pytest.mark.parametrize(
    "row, match",
    [
        ({"q": "x"}, r"field 'answer' is missing \(the row has: q\); set reference.column"),
        ({"answer": None}, r"field 'answer' is null"),
        ({"answer": "  "}, r"field 'answer' is empty"),
        ({"answer": True}, r"field 'answer' is a boolean"),
        ({"answer": {"v": 1}}, r"field 'answer' is dict .*not an answer"),
        ({"answer": float("nan")}, r"field 'answer' is nan"),
    ],
)
def test_answer_errors_name_the_field(row, match):
    with pytest.raises(RowError, match=match):
        answer(row)


HUMANEVAL_ROW = {
    "prompt": "def add(a, b):\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "entry_point": "add",
}


def test_code_function_packs_the_verifier_json():
    reference = json.loads(code_function(HUMANEVAL_ROW))
    assert reference == {"kind": "function", **HUMANEVAL_ROW}
    with pytest.raises(RowError, match=r"field 'test' does not define check\(candidate\)"):
        code_function({**HUMANEVAL_ROW, "test": "assert add(1, 2) == 3"})
    with pytest.raises(RowError, match=r"field 'entry_point' 'my func' is not a Python name"):
        code_function({**HUMANEVAL_ROW, "entry_point": "my func"})
    with pytest.raises(RowError, match=r"field 'test' is int"):
        code_function({**HUMANEVAL_ROW, "test": 3})


def lcb_compress(value) -> str:
    """LiveCodeBench's private_test_cases encoding."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(value)))).decode()


def test_code_stdio_from_lists_json_strings_and_compressed_tests():
    public = json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}])
    private = lcb_compress([{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}])
    reference = json.loads(code_stdio({"pub": public, "priv": private}, tests=["pub", "priv"]))
    assert reference == {"kind": "stdio", "inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]}
    columns = {"ins": ["a", "b"], "outs": json.dumps(["A", "B"])}
    assert json.loads(code_stdio(columns, inputs="ins", outputs="outs"))["outputs"] == ["A", "B"]


@pytest.mark.parametrize(
    "row, kwargs, match",
    [
        ({"t": json.dumps([{"input": "", "output": "", "testtype": "functional"}])}, {"tests": "t"}, "'functional'"),
        ({"t": "[]"}, {"tests": "t"}, "holds no tests"),
        ({"t": "%%%"}, {"tests": "t"}, "neither JSON nor LiveCodeBench's compressed tests"),
        ({"t": json.dumps([{"output": "1"}])}, {"tests": "t"}, r"not \{input: str, output: str\}"),
        ({"i": ["1"], "o": ["1", "2"]}, {"inputs": "i", "outputs": "o"}, "has 2 entries but 'i' has 1"),
        ({"i": [1], "o": ["1"]}, {"inputs": "i", "outputs": "o"}, "must be a list of strings"),
        ({"i": ["1"]}, {"inputs": "i"}, "both reference.inputs and reference.outputs"),
    ],
)
def test_code_stdio_errors(row, kwargs, match):
    with pytest.raises(RowError, match=match):
        code_stdio(row, **kwargs)


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_compressed_tests_never_unpickle_objects(capsys):
    payload = base64.b64encode(zlib.compress(pickle.dumps(Boom()))).decode()
    with pytest.raises(RowError, match="refusing to load builtins.print"):
        code_stdio({"t": payload}, tests="t")
    assert "pwned" not in capsys.readouterr().out


def _run_function_reference(reference: str, program: str) -> None:
    """What a function-style verifier does: program, then the test, then check(entry_point)."""
    ref = json.loads(reference)
    namespace: dict = {}
    exec(program + "\n" + ref["test"] + f"\ncheck({ref['entry_point']})\n", namespace)


def test_code_tests_wraps_assert_scripts_and_keeps_check_scripts():
    mbpp = {"test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]}
    reference = code_tests(mbpp, test="test_list")
    assert json.loads(reference)["entry_point"] == "add"
    _run_function_reference(reference, "def add(a, b):\n    return a + b")
    with pytest.raises(AssertionError):
        _run_function_reference(reference, "def add(a, b):\n    return a - b")

    humaneval_like = {"answer": ["def check(candidate):\n    assert candidate(2) == 4\n\ncheck(double)\n"]}
    reference = code_tests(humaneval_like, test="answer.0")
    assert json.loads(reference)["entry_point"] == "double"
    _run_function_reference(reference, "def double(x):\n    return 2 * x")


@pytest.mark.parametrize(
    "script, match",
    [
        ("assert len([1]) == 1", "has no assert that calls a function"),
        ("def check(c):\n    pass\n", r"never calls check\(<function>\)"),
        ("assert f(1) ==", "is not valid Python"),
        ("", "must be a test script"),
    ],
)
def test_code_tests_errors(script, match):
    with pytest.raises(RowError, match=match):
        code_tests({"test": script})
    with pytest.raises(RowError, match="'a b' is not a Python name"):
        code_tests({"test": "assert f(1) == 1", "fn": "a b"}, entry_point="fn")
