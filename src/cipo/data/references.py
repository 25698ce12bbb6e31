"""Reference builders: a row's columns -> the string a verifier checks completions against.

Code references are written by ``cipo.code_reference`` (the format's one definition,
read back by the code verifier); the builders here find, decode and check the columns first,
so a bad row fails with its field name.

Chosen in config by ``reference.kind``; the other ``reference.*`` keys are the builder's
parameters (column names, mostly):

* ``answer`` (math): the gold answer as a string. Numbers become strings (``27.0`` -> ``"27"``,
  as AMC sets store integers as floats); a one-element list becomes its element (OlympiadBench
  stores ``["$\\frac{1}{2}$"]``); ``marker`` keeps the text after the last marker (GSM8K's
  ``"... #### 72"``).
* ``code_function`` (HumanEval style): JSON ``{"kind": "function", "prompt", "test", "entry_point"}``;
  ``test`` must define ``check(candidate)``.
* ``code_stdio`` (LiveCodeBench style): JSON ``{"kind": "stdio", "inputs": [...], "outputs": [...]}``
  from ``inputs``/``outputs`` columns or from ``tests`` columns holding ``[{"input", "output"}, ...]``,
  as a list, a JSON string, or LiveCodeBench's compressed string (base64 of zlib of a pickled
  JSON string; unpickled with every class lookup refused, so only plain data can come out).
* ``code_tests`` (MBPP / CriticBench style): a test script that runs after the program, packed
  as function style. A script of asserts runs inside ``check(candidate)`` and ``entry_point``
  is the first function the asserts call; a script that defines ``check`` itself (HumanEval's,
  ending in ``check(<function>)``) is kept as it is. ``reference.entry_point`` names a column
  instead.
* ``leetcode_examples`` (DebugBench): see ``cipo.data.leetcode``.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import math
import pickle
import zlib
from collections.abc import Callable
from typing import Any

from cipo.code_reference import function_reference, stdio_reference
from cipo.data.errors import RowError

MISSING = object()


def get_field(data: dict[str, Any], path: str) -> Any:
    """``data[path]``, else a dotted walk (``reward_model.ground_truth``, ``answer.0``); MISSING if absent."""
    if path in data:
        return data[path]
    value: Any = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def require(data: dict[str, Any], path: str, key: str) -> Any:
    """The value at ``path`` or a RowError naming it, the row's columns and the config key to fix."""
    value = get_field(data, path)
    if value is MISSING:
        columns = ", ".join(sorted(map(str, data))) or "no columns"
        raise RowError(path, f"is missing (the row has: {columns})", f"set {key} to the right column")
    if value is None:
        raise RowError(path, "is null", f"set {key} to a column that holds a value in every row")
    return value


def text(data: dict[str, Any], path: str, key: str, allow_empty: bool = False) -> str:
    value = require(data, path, key)
    if not isinstance(value, str):
        raise RowError(path, f"is {type(value).__name__} {_short(value)}, expected text", f"set {key} to a text column")
    if not allow_empty and not value.strip():
        raise RowError(path, "is empty", f"set {key} to a column that holds text in every row")
    return value


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def answer_text(value: Any, path: str, list_join: str | None = None) -> str:
    """A gold answer (str, int, float, or a list of them) as a non-empty string."""
    if isinstance(value, bool):
        raise RowError(path, f"is a boolean ({value}), not an answer", "set reference.column to the answer column")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RowError(path, f"is {value}", "fix the row")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return answer_text(value[0], path, list_join)
        if list_join is not None and value:
            return list_join.join(answer_text(item, path) for item in value)
        raise RowError(
            path,
            f"holds {len(value)} answers",
            "set reference.list_join (e.g. ', ') to accept them joined",
        )
    if not isinstance(value, str):
        kind = type(value).__name__
        raise RowError(path, f"is {kind} {_short(value)}, not an answer", "point reference.column at it")
    if not value.strip():
        raise RowError(path, "is empty", "fix the row")
    return value.strip()


def answer(
    data: dict[str, Any], column: str = "answer", marker: str | None = None, list_join: str | None = None
) -> str:
    value = require(data, column, "reference.column")
    if marker is not None:
        raw = text(data, column, "reference.column")
        if marker not in raw:
            raise RowError(column, f"has no {marker!r} marker", "set reference.marker=null or fix the row")
        value = raw.rsplit(marker, 1)[1]
    return answer_text(value, column, list_join)


def code_function(
    data: dict[str, Any], prompt: str | None = "prompt", test: str = "test", entry_point: str = "entry_point"
) -> str:
    prefix = text(data, prompt, "reference.prompt", allow_empty=True) if prompt else ""
    test_code = text(data, test, "reference.test")
    if "def check(" not in test_code:
        raise RowError(test, "does not define check(candidate)", "use reference.kind=code_tests for plain asserts")
    name = text(data, entry_point, "reference.entry_point").strip()
    if not name.isidentifier():
        raise RowError(entry_point, f"{name!r} is not a Python name", "point reference.entry_point at the function")
    return function_reference(prefix, test_code, name)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # any object beyond plain data is refused
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _decode_tests(value: Any, path: str) -> Any:
    """A list as stored: as is, from a JSON string, or from LiveCodeBench's compressed string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        unpacked = _PlainUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(value)))).load()
        return json.loads(unpacked) if isinstance(unpacked, str) else unpacked
    except Exception as err:  # base64, zlib, pickle and json each raise their own types
        raise RowError(path, f"is neither JSON nor LiveCodeBench's compressed tests ({err})") from err


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RowError(path, f"must be a list of strings, got {_short(value)}", "point it at the test inputs/outputs")
    return value


def code_stdio(
    data: dict[str, Any],
    tests: str | list[str] | None = None,
    inputs: str | None = None,
    outputs: str | None = None,
) -> str:
    ins: list[str] = []
    outs: list[str] = []
    if inputs or outputs:
        if not (inputs and outputs) or tests:
            raise RowError(None, "set either reference.tests or both reference.inputs and reference.outputs")
        ins = _strings(_decode_tests(require(data, inputs, "reference.inputs"), inputs), inputs)
        outs = _strings(_decode_tests(require(data, outputs, "reference.outputs"), outputs), outputs)
        if len(ins) != len(outs):
            raise RowError(outputs, f"has {len(outs)} entries but {inputs!r} has {len(ins)}")
    for column in [tests] if isinstance(tests, str) else list(tests or []):
        cases = _decode_tests(require(data, column, "reference.tests"), column)
        if not isinstance(cases, list):
            raise RowError(column, f"must be a list of {{input, output}} objects, got {_short(cases)}")
        for case in cases:
            if not isinstance(case, dict) or not isinstance(case.get("input"), str):
                raise RowError(column, f"has a test that is not {{input: str, output: str}}: {_short(case)}")
            if case.get("testtype", "stdin") != "stdin":
                raise RowError(column, f"has a {case['testtype']!r} test; only stdin/stdout tests can be run")
            ins.append(case["input"])
            outs.append(str(case.get("output", "")))
    if not ins:
        column = tests if isinstance(tests, str) else inputs
        raise RowError(column, "holds no tests", "fix the row")
    return stdio_reference(ins, outs)


def _parse(script: str, path: str) -> ast.Module:
    try:
        return ast.parse(script)
    except SyntaxError as err:
        raise RowError(path, f"is not valid Python ({err.msg}, line {err.lineno})") from err


def _first_called_function(tree: ast.Module, path: str) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            for call in ast.walk(node):
                named = isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                if named and not hasattr(builtins, call.func.id) and call.func.id != "candidate":
                    return call.func.id
    raise RowError(path, "has no assert that calls a function", "set reference.entry_point to its column")


def _checked_function(tree: ast.Module, path: str) -> str:
    """NAME of a top-level ``check(NAME)`` call (HumanEval-derived scripts end with one)."""
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "check":
            if call.args and isinstance(call.args[0], ast.Name):
                return call.args[0].id
    raise RowError(path, "defines check() but never calls check(<function>)", "set reference.entry_point")


def code_tests(data: dict[str, Any], test: str = "test", entry_point: str | None = None) -> str:
    """A test script (or a list of assert lines, as MBPP's ``test_list``) packed as function style."""
    value = require(data, test, "reference.test")
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "\n".join(value)
    if not isinstance(value, str) or not value.strip():
        raise RowError(test, f"must be a test script, got {_short(value)}", "point reference.test at it")
    tree = _parse(value, test)
    name = text(data, entry_point, "reference.entry_point").strip() if entry_point else None
    if name is not None and not name.isidentifier():
        raise RowError(entry_point, f"{name!r} is not a Python name", "point reference.entry_point at the function")
    if any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in tree.body):
        return function_reference("", value, name or _checked_function(tree, test))
    name = name or _first_called_function(tree, test)
    # The script runs inside check() via exec, so its lines are kept byte for byte (no re-indenting).
    wrapped = f"_TESTS = {value!r}\n\n\ndef check(candidate):\n    exec(compile(_TESTS, 'tests', 'exec'), globals())\n"
    return function_reference("", wrapped, name)


BUILDERS: dict[str, Callable[..., str]] = {
    "answer": answer,
    "code_function": code_function,
    "code_stdio": code_stdio,
    "code_tests": code_tests,
}
