"""Code references (JSON schema, validation), program extraction, output normalisation."""

import json

import pytest

from cipo.code_reference import (
    FunctionReference,
    StdioReference,
    extract_program,
    function_reference,
    normalize_output,
    parse_reference,
    stdio_reference,
    with_prompt,
)

TEST = "def check(candidate):\n    assert candidate(1) == 2\n"


def test_round_trip():
    ref = parse_reference(function_reference("def f(x):\n", TEST, "f"))
    assert ref == FunctionReference("def f(x):\n", TEST, "f")
    assert parse_reference(stdio_reference(["1\n"], ["2\n"])) == StdioReference(("1\n",), ("2\n",))


@pytest.mark.parametrize(
    "data, match",
    [
        ("not json", "not JSON"),
        ({"kind": "sql"}, '"kind"'),
        ({"kind": "function", "prompt": "", "test": TEST}, '"entry_point" must be a string'),
        ({"kind": "function", "prompt": "", "test": TEST, "entry_point": "a b"}, "is not a name"),
        ({"kind": "function", "prompt": "", "test": "assert True", "entry_point": "f"}, "check"),
        ({"kind": "stdio", "inputs": [], "outputs": []}, "non-empty"),
        ({"kind": "stdio", "inputs": ["1"], "outputs": ["1", "2"]}, '1 "inputs" but 2 "outputs"'),
        ({"kind": "stdio", "inputs": [1], "outputs": ["1"]}, "must be a string"),
    ],
)
def test_bad_references_say_what_is_wrong(data, match):
    with pytest.raises(ValueError, match=match):
        parse_reference(data if isinstance(data, str) else json.dumps(data))


@pytest.mark.parametrize(
    "completion, program",
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```Python3\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```python\nx = 1\n```\ntext\n```python\nx = 2\n```", "x = 2\n"),  # the last block
        ("```python\nx = 1\n```\n```python\nx = 2", "x = 1\n"),  # an unclosed last block is not a program
        ("```cpp\nint x;\n```", None),
        ("```js\nx\n```\ny = 1\n```", "y = 1\n"),  # another language's closing fence opens a bare block
        ("``` python \t\nx = 1```", "x = 1"),  # spaces around the word; a fence closing mid-line
        ("``````\nx = 1\n```", "x = 1\n"),
        ("```python" + " " * 50 + "\n```" * 3, None),
        ("```python\r\nx = 1\n```", None),  # the same as before: \r is not allowed after the word
        ("```python\n\n```", None),
        ("def f(): pass", None),
    ],
)
def test_extract_program(completion, program):
    assert extract_program(completion) == program


def test_prompt_goes_in_front_only_without_the_entry_point():
    ref = FunctionReference("def f(x):\n", TEST, "f")
    assert with_prompt("def f(x):\n    return 2 * x\n", ref).startswith("def f(x):\n    return")
    assert with_prompt("    return 2 * x\n", ref) == "def f(x):\n    return 2 * x\n"
    assert with_prompt("def ff(x):\n    return x\n", ref).startswith("def f(x):\ndef ff")


def test_normalize_output_ignores_only_trailing_whitespace():
    assert normalize_output("1 2  \n3\t\n\n\n") == "1 2\n3"
    assert normalize_output("1\r\n2") == "1\n2"
    assert normalize_output(" 1") != normalize_output("1")
