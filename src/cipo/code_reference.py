"""The reference string of a code problem (JSON) and the program inside a completion.

Two kinds of reference, one JSON object each (data loaders build them with the helpers here,
which also validate; ``parse_reference`` is what the verifier reads):

  function style (HumanEval):
    {"kind": "function", "prompt": "<code prefix: imports + signature + docstring>",
     "test": "<code defining check(candidate)>", "entry_point": "<function name>"}
  stdin/stdout style (LiveCodeBench):
    {"kind": "stdio", "inputs": ["<stdin of test 1>", ...], "outputs": ["<expected stdout 1>", ...]}

Stdio outputs are compared after ``normalize_output``: trailing whitespace of every line and
trailing blank lines are ignored, nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

FENCE = "```"
PYTHON_INFO = ("", "python", "python3", "py")  # what may follow an opening fence (any case)


@dataclass(frozen=True)
class FunctionReference:
    prompt: str
    test: str
    entry_point: str


@dataclass(frozen=True)
class StdioReference:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


Reference = FunctionReference | StdioReference


def function_reference(prompt: str, test: str, entry_point: str) -> str:
    """The JSON reference of a HumanEval-style problem (validated)."""
    text = json.dumps({"kind": "function", "prompt": prompt, "test": test, "entry_point": entry_point})
    parse_reference(text)
    return text


def stdio_reference(inputs: list[str], outputs: list[str]) -> str:
    """The JSON reference of a stdin/stdout problem (validated)."""
    text = json.dumps({"kind": "stdio", "inputs": list(inputs), "outputs": list(outputs)})
    parse_reference(text)
    return text


def parse_reference(text: str) -> Reference:
    """Parse and check a reference; ``ValueError`` says which field is wrong and how to fix it."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(
            f"code reference is not JSON ({error}); build it with function_reference/stdio_reference"
        ) from None
    if not isinstance(data, dict) or data.get("kind") not in ("function", "stdio"):
        raise ValueError(f'code reference needs "kind": "function" or "stdio", got {str(data)[:80]!r}')
    if data["kind"] == "function":
        for key in ("prompt", "test", "entry_point"):
            if not isinstance(data.get(key), str):
                raise ValueError(f'function-style code reference: "{key}" must be a string')
        if not data["entry_point"].isidentifier():
            raise ValueError(f'function-style code reference: "entry_point" {data["entry_point"]!r} is not a name')
        if "def check(" not in data["test"]:
            raise ValueError('function-style code reference: "test" must define check(candidate)')
        return FunctionReference(data["prompt"], data["test"], data["entry_point"])
    inputs, outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or not inputs:
        raise ValueError('stdio code reference: "inputs" and "outputs" must be non-empty lists')
    if len(inputs) != len(outputs):
        raise ValueError(f'stdio code reference: {len(inputs)} "inputs" but {len(outputs)} "outputs"')
    if not all(isinstance(x, str) for x in inputs + outputs):
        raise ValueError('stdio code reference: every entry of "inputs" and "outputs" must be a string')
    return StdioReference(tuple(inputs), tuple(outputs))


def extract_program(completion: str) -> str | None:
    """The last complete fenced code block (```python, ```py or bare ```); None if there is none.

    A scan in time linear in the text: every fence is looked at once and every line end found
    once (a regular expression with two ``[ \t]*`` around an optional word took quadratic time
    on a fence followed by a run of spaces, a common degenerate output)."""
    last, position, line_end = None, 0, -1
    while (start := completion.find(FENCE, position)) >= 0:
        if line_end < start + len(FENCE):
            line_end = completion.find("\n", start + len(FENCE))
            if line_end < 0:
                break  # no line after this fence: no block can open here or later
        info = completion[start + len(FENCE) : line_end].strip(" \t")
        if info.lower() not in PYTHON_INFO:
            position = start + len(FENCE)  # not an opening fence (it may close another language's block)
            continue
        close = completion.find(FENCE, line_end + 1)
        if close < 0:
            break  # an unclosed block (cut off) is not a program
        last = completion[line_end + 1 : close]
        position = close + len(FENCE)
    return last if last is not None and last.strip() else None


def with_prompt(program: str, reference: FunctionReference) -> str:
    """The program, prefixed by the prompt when it does not define the entry point itself
    (a completion-style model writes only the body)."""
    if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(reference.entry_point)}\s*\(", program, re.MULTILINE):
        return program
    return reference.prompt + program


def normalize_output(text: str) -> str:
    """Stdout as compared: no trailing whitespace on any line, no trailing blank lines."""
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")
