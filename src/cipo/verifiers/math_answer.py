"""Find the final answer in a math completion (pure string work, runs in the parent process).

Order: the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces, ``\\boxed 5``), then
the configured fallbacks in order. A fallback is a built-in name or ``"re:<pattern>"``, a
regular expression with exactly one capture group whose *last* match is the answer:

  ``gsm8k``        the last line ``#### <answer>`` (GSM8K's reference format)
  ``answer_is``    the last "... answer is <x>" / "Answer: <x>" (up to the end of that line)
  ``last_number``  the last number (``-1,234.5``, ``3/4``) on the last non-empty line

Fallbacks are looser than ``\\boxed``: a model trained with ``last_number`` can be rewarded
for a number that merely ends its text. Keep only the ones the prompt format asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_ANSWER_IS = re.compile(r"(?i)\banswer[ \t]*(?:is|:)[ \t]*:?[ \t]*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_MATH_DELIMITERS = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")]


def _braced(text: str, start: int) -> str | None:
    """The content of the brace group opening at ``text[start] == '{'``; None if unclosed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{..}``/``\\fbox{..}`` (or ``\\boxed 5``); None if none.

    An unclosed last box (a generation cut off inside it) is not an answer, and neither is an
    earlier box: the model had not finished saying what it meant.
    """
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    end = matches[-1].end()
    rest = text[end:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        content = _braced(text, end + len(rest) - len(stripped))
        return content.strip() if content is not None and content.strip() else None
    if rest[:1] == " ":  # \boxed 5 (TeX allows an unbraced single token)
        token = stripped.split(maxsplit=1)[0].rstrip(".$") if stripped else ""
        return token or None
    return None


def _lines_from_the_end(text: str):
    """The lines of ``text``, last first, each found once (no regular expression over the whole
    text: a ``^\\s*`` at every line start made 128k newlines take quadratic time)."""
    end = len(text)
    while end >= 0:
        start = text.rfind("\n", 0, end) + 1
        yield text[start:end]
        end = start - 1


def _gsm8k(text: str) -> str | None:
    for line in _lines_from_the_end(text):
        stripped = line.strip()
        if stripped.startswith("####") and stripped[4:].strip():
            return stripped[4:].strip()
    return None


def _answer_is(text: str) -> str | None:
    """What follows the first "answer is" / "answer:" of the last line that has one, or the next
    non-empty line when nothing follows on that line (a trailing full stop dropped)."""
    below = None  # the nearest non-empty line after the current one
    for line in _lines_from_the_end(text):
        found = _ANSWER_IS.search(line)
        if found:
            answer = line[found.end() :].strip() or below
            if answer:
                return answer[:-1].rstrip() if len(answer) > 1 and answer.endswith(".") else answer
        if line.strip():
            below = line.strip()
    return None


def _last_number(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    found = _NUMBER.findall(lines[-1])
    return found[-1].strip() if found else None


FALLBACKS: dict[str, Callable[[str], str | None]] = {
    "gsm8k": _gsm8k,
    "answer_is": _answer_is,
    "last_number": _last_number,
}


def compile_fallbacks(names: Sequence[str], key: str = "verifier.fallbacks") -> list[Callable[[str], str | None]]:
    """Fallback extractors from their names; a clear error names ``key`` and the choices."""
    extractors = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{key}: entries must be strings, got {name!r}")
        if name in FALLBACKS:
            extractors.append(FALLBACKS[name])
        elif name.startswith("re:"):
            try:
                pattern = re.compile(name[3:], re.MULTILINE)
            except re.error as error:
                raise ValueError(f"{key}: bad regular expression {name[3:]!r}: {error}") from error
            if pattern.groups != 1:
                raise ValueError(f"{key}: {name!r} must have exactly one capture group, has {pattern.groups}")
            extractors.append(lambda text, p=pattern: (p.findall(text) or [None])[-1])
        else:
            raise ValueError(f"{key}: unknown fallback {name!r}; choose from {sorted(FALLBACKS)} or 're:<regex>'")
    return extractors


def extract_answer(text: str, fallbacks: Sequence[Callable[[str], str | None]] = ()) -> str | None:
    """The final answer string of ``text`` (boxed first, then ``fallbacks`` in order), or None."""
    answer = last_boxed(text)
    for fallback in fallbacks:
        if answer:
            break
        answer = fallback(text)
    answer = answer.strip() if answer else None
    return answer or None


def strip_math_delimiters(answer: str) -> str:
    """``$x$``, ``\\(x\\)``, ``\\[x\\]`` -> ``x``; a trailing full stop and a boxed wrapper go too."""
    answer = answer.strip().rstrip(".").strip()
    boxed = last_boxed(answer)
    if boxed is not None and answer.lstrip().startswith(("\\boxed", "\\fbox")):
        answer = boxed
    for left, right in _MATH_DELIMITERS:
        if len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            answer = answer[len(left) : -len(right)].strip()
            break
    # A bare '$' left now is a currency sign ("$1,000"), not math mode.
    return re.sub(r"(?<!\\)\$", "", answer).strip()
