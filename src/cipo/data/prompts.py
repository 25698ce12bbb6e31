"""What the policy sees: the first-attempt prompt and the correction templates (``data.prompt``).

``format``: ``chat`` renders the model's chat template
(``apply_chat_template(messages, add_generation_prompt=True, tokenize=False)``), ``plain``
joins the turns with blank lines (for base models and tokenizers without a template), ``auto``
picks ``chat`` when the tokenizer has a template. The first user turn is the problem followed
by the domain ``instruction``; an optional ``system`` turn comes first.

Correction templates stay ``str.format`` templates with ``{problem}`` and ``{attempt}`` (plus
``{verdict}`` / ``{feedback}``), so the rollout code fills them without knowing about chat
formats. They are derived once, at setup, by rendering a conversation of sentinels
    [system], user: <problem>, assistant: <attempt>, user: <check instruction>, + generation prompt
and keeping everything after the attempt sentinel. The template is then
``{problem}{attempt}<that suffix>``, where ``{problem}`` is filled with the record's rendered
first prompt. So a correction prompt is exactly the prompt the attempt was sampled from, the
attempt, and the template's end-of-turn, check turn and generation prompt. Our choice: where a
template renders earlier assistant turns differently from the generation prompt (Qwen3 with
``enable_thinking: false`` adds an empty think block only to the generation prompt, and drops
reasoning from earlier turns), the correction prompt continues what the policy actually saw
and keeps its whole attempt, rather than re-rendering the attempt as history.
Braces in the rendered text (``\\boxed{}``) are escaped, so only the placeholders are fields.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cipo.types import Record

FORMATS = ("auto", "chat", "plain")
# Letters only: no chat template escapes, trims or splits them.
PROBLEM, ATTEMPT, VERDICT, FEEDBACK = "CIPOPROBLEMSENTINEL", "CIPOATTEMPTSENTINEL", "CIPOVERDICTSENTINEL", "CIPOFB"
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class PromptStyle:
    """``data.prompt`` in config. Texts are literal (no ``str.format``), except the named placeholders.

    Args:
        format: auto | chat | plain.
        system: an optional system turn.
        instruction: appended to the problem in the first user turn (domain-specific).
        check: the correction turn: asks to check the previous attempt and answer again.
        verdict: the reveal-verdict ablation's correction turn; must contain ``{verdict}``.
        feedback: put before the correction turn when ``show_feedback``; must contain ``{feedback}``
            (the verifier's feedback on the attempt, e.g. the first lines of a failing test).
        show_feedback: include ``feedback`` in both correction turns.
        chat_template_kwargs: extra arguments of ``apply_chat_template`` (e.g. ``enable_thinking``).
    """

    format: str = "auto"
    system: str | None = None
    instruction: str = ""
    check: str = "Check your previous answer. If it is wrong, correct it; otherwise keep it."
    verdict: str = "Your previous answer is {verdict}. Check it, and correct it if needed."
    feedback: str = "Feedback on your previous answer:\n{feedback}"
    show_feedback: bool = False
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"data.prompt.format={self.format!r}: choose one of {list(FORMATS)}")
        if not self.check.strip():
            raise ValueError("data.prompt.check is empty: the correction turn needs an instruction")
        for key, text in (("check", self.check), ("instruction", self.instruction), ("system", self.system or "")):
            if "{verdict}" in text or "{feedback}" in text:
                raise ValueError(f"data.prompt.{key} may not contain {{verdict}} or {{feedback}}: use verdict/feedback")
        if "{verdict}" not in self.verdict:
            raise ValueError("data.prompt.verdict must contain {verdict} (filled with 'correct' or 'incorrect')")
        if self.show_feedback and "{feedback}" not in self.feedback:
            raise ValueError("data.prompt.feedback must contain {feedback} when data.prompt.show_feedback is true")
        object.__setattr__(self, "chat_template_kwargs", dict(self.chat_template_kwargs or {}))

    def build(self, tokenizer=None) -> PromptFormatter:
        """The formatter for ``tokenizer`` (needed for ``chat`` and ``auto``; ``plain`` works without)."""
        has_template = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
        if self.format == "chat" and not has_template:
            raise ValueError(
                "data.prompt.format=chat but the tokenizer has no chat template"
                + (" (no tokenizer was attached)" if tokenizer is None else "")
                + ": use data.prompt.format=plain (or auto)"
            )
        if self.format == "auto" and tokenizer is None:
            raise ValueError(
                "data.prompt.format=auto needs the policy's tokenizer: call datamodule.attach_tokenizer(tokenizer) "
                "before setup (cipo-train does), or set data.prompt.format=plain"
            )
        if self.format == "plain" or not has_template:
            return PromptFormatter(self, render_plain, "plain")
        kwargs = dict(self.chat_template_kwargs)

        def render_chat(messages: Messages) -> str:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **kwargs)

        return PromptFormatter(self, render_chat, "chat")


def render_plain(messages: Messages) -> str:
    """Turns separated by blank lines, ending where the model continues: our plain-text format."""
    return "".join(message["content"] + "\n\n" for message in messages)


class PromptFormatter:
    """Renders first prompts and holds the derived correction templates (see the module docstring)."""

    def __init__(self, style: PromptStyle, render: Callable[[Messages], str], kind: str) -> None:
        self.style, self.render, self.kind = style, render, kind
        feedback = style.feedback.replace("{feedback}", FEEDBACK) + "\n\n" if style.show_feedback else ""
        self.correction_template = self._derive(feedback + style.check)
        self.verdict_template = self._derive(feedback + style.verdict.replace("{verdict}", VERDICT))

    def _first_turns(self, problem: str) -> Messages:
        content = f"{problem}\n\n{self.style.instruction}" if self.style.instruction else problem
        system = [{"role": "system", "content": self.style.system}] if self.style.system else []
        return [*system, {"role": "user", "content": content}]

    def prompt(self, problem: str) -> str:
        """The first-attempt prompt for one problem text."""
        return self.render(self._first_turns(problem))

    def _derive(self, turn: str) -> str:
        conversation = [
            *self._first_turns(PROBLEM),
            {"role": "assistant", "content": ATTEMPT},
            {"role": "user", "content": turn},
        ]
        rendered = self.render(conversation)
        if rendered.count(ATTEMPT) != 1 or rendered.count(PROBLEM) != 1:
            raise ValueError(
                f"data.prompt: the {self.kind} template does not render a [user, assistant, user] conversation "
                "with each turn's text once, so no correction template can be derived from it; use "
                "data.prompt.format=plain or a tokenizer whose chat template renders assistant turns"
            )
        suffix = rendered.split(ATTEMPT, 1)[1]
        pieces = [piece.strip() for piece in re.split(f"({VERDICT}|{FEEDBACK})", turn) if piece.strip()]
        lost = [piece for piece in pieces if piece not in suffix]
        if lost:
            raise ValueError(f"data.prompt: the {self.kind} template drops part of the correction turn: {lost[0]!r}")
        escaped = suffix.replace("{", "{{").replace("}", "}}")
        escaped = escaped.replace(VERDICT, "{verdict}").replace(FEEDBACK, "{feedback}")
        return "{problem}{attempt}" + escaped

    def format_record(self, record: Record) -> Record:
        """The record with its prompt rendered; the raw problem text stays in ``meta['problem_text']``."""
        meta = {**record.meta, "problem_text": record.prompt}
        return dataclasses.replace(record, prompt=self.prompt(record.prompt), meta=meta)

    def format_records(self, records: list[Record]) -> list[Record]:
        return [self.format_record(record) for record in records]
