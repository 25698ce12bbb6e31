"""``reference.kind: leetcode_examples``: tests for LeetCode-style problems from their worked examples.

DebugBench (and other LeetCode-derived sets) ship no test suite: the benchmark is judged by
LeetCode's online judge, which we cannot call. The problem statements do carry examples,

    Input: nums = [2,7,11,15], target = 9
    Output: [0,1]

which are nearly Python: ``name = value`` arguments of the ``Solution`` method and a value.
This builder turns them into a function-style reference whose ``check(candidate)`` asserts
``candidate().<method>(nums = [2,7,11,15], target = 9) == [0,1]`` (``candidate`` is the
``Solution`` class; ``true``/``false``/``null`` are defined as Python's). The method is the
one of the reference solution's ``Solution`` class whose parameters are the example's names.

A weaker check than the online judge (a few examples, exact ``==``, so answers "in any order"
count as wrong), said so in the data configs. A row is refused (a RowError, so ``on_error:
skip`` counts it) when an example does not parse, no method matches, or the method takes
LeetCode's linked-list / tree classes, which an example's plain lists cannot build.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from cipo.code_reference import function_reference
from cipo.data.errors import RowError
from cipo.data.references import require, text

EXAMPLE = re.compile(r"Input:\s*(?P<input>.*?)\s*Output:\s*(?P<output>.*?)\s*(?:Explanation:.*)?$", re.DOTALL)
STRUCTURES = ("ListNode", "TreeNode", "Node")
# LeetCode runs solutions with these already imported; a reference "prompt" the verifier puts first.
PRELUDE = "from typing import *\nimport bisect, collections, functools, heapq, itertools, math, string\n"
PRELUDE += "from collections import *\nfrom functools import *\nfrom heapq import *\nfrom itertools import *\n"


def _methods(solution: str, path: str) -> dict[str, ast.FunctionDef]:
    try:
        tree = ast.parse(solution)
    except SyntaxError as err:
        raise RowError(path, f"is not valid Python ({err.msg}, line {err.lineno})", "use the Python rows") from err
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Solution":
            return {f.name: f for f in node.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("__")}
    raise RowError(path, "has no class Solution", "this builder is for LeetCode-style Python solutions")


def _parse_example(example: str, path: str, number: int) -> tuple[str, list[str], str]:
    match = EXAMPLE.search(example)
    if match is None:
        raise RowError(path, f"example {number} has no 'Input: ... Output: ...'")
    arguments, output = match.group("input").strip(), match.group("output").strip()
    try:
        call = ast.parse(f"f({arguments})", mode="eval").body
        ast.parse(output, mode="eval")
    except SyntaxError as err:
        raise RowError(path, f"example {number} is not Python-like ({err.msg})") from err
    if not isinstance(call, ast.Call) or call.args or not call.keywords or any(k.arg is None for k in call.keywords):
        raise RowError(path, f"example {number}'s input is not 'name = value, ...'")
    return arguments, [k.arg for k in call.keywords], output


def leetcode_examples(data: dict[str, Any], examples: str = "examples", solution: str = "solution") -> str:
    raw = require(data, examples, "reference.examples")
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.lstrip().startswith("[") else [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        raise RowError(examples, "must be a non-empty list of 'Input: ... Output: ...' strings")
    methods = _methods(text(data, solution, "reference.solution"), solution)
    parsed = [_parse_example(example, examples, number) for number, example in enumerate(raw, start=1)]
    names = sorted(parsed[0][1])
    chosen = [m for m in methods.values() if sorted(a.arg for a in m.args.args[1:]) == names]
    if not chosen:
        raise RowError(solution, f"has no Solution method taking {names}")
    method = chosen[0]
    if any(s in ast.unparse(method.args) for s in STRUCTURES):
        raise RowError(solution, f"{method.name} takes {'/'.join(STRUCTURES)} objects")
    asserts = [f"    assert candidate().{method.name}({arguments}) == ({output})" for arguments, _, output in parsed]
    test = "true, false, null = True, False, None\n\n\ndef check(candidate):\n" + "\n".join(asserts) + "\n"
    return function_reference(PRELUDE, test, "Solution")
