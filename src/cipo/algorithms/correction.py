"""CIPO correction stream (method sheet steps 5-10), around the anchors of ``anchors.py``.

Step 5, prompts (``build_correction_prompts``): c = T(q, anchor), a ``str.format`` template
with fields {problem}, {attempt}, for the reveal-verdict ablation only {verdict}, and
optionally {feedback} (the verifier's feedback on the anchor, e.g. a failing test's output);
``training_correction_template`` refuses {feedback} in a hidden-verdict run (it reveals the verdict).
Step 7, the published risk-averse reward (``shape_correction_rewards``):
    r_c = s_c - lambda * s_a * (1 - s_c)
(the default applies the penalty after normalisation instead: ``advantages.correction_advantages``).
Correction ability (``CorrectionCounts``): fix rate, retention, break rate, from outcome counts.
Transplant (``transplant_rows``): which revisions are also trained as answers to the original prompt.
Step 10, the adaptive replay ratio that feeds ``select_anchors``, lives in ``replay.py``.

lambda's default (1.0) lives in config (``algorithm.correction.penalty``).
"""

from __future__ import annotations

import string
from dataclasses import astuple, dataclass

import torch
from torch import Tensor

PROMPT_FIELDS: tuple[str, ...] = ("problem", "attempt", "verdict", "feedback")


def as_bool(x: Tensor, name: str) -> Tensor:
    """Validate a (N,) bool or 0/1 tensor; return it as detached bool."""
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(x.shape)}")
    if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{name} must be bool or 0/1, got values {x.unique().tolist()}")
    return x.detach().bool()


def _template_fields(template: str) -> set[str]:
    """Top-level field names in a ``str.format`` template (nested specs included)."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template is not a valid str.format template: {err}") from err
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        # "problem.attr" / "problem[0]" still refer to the field "problem".
        names.add(name.split(".", 1)[0].split("[", 1)[0])
        if spec:
            names |= _template_fields(spec)
    return names


def build_correction_prompts(
    problems: list[str],
    attempts: list[str],
    template: str,
    verdicts: list[bool] | None = None,
    verdict_words: tuple[str, str] = ("correct", "incorrect"),
    feedback: list[str] | None = None,
) -> list[str]:
    """Fill the correction template once per anchor.

    Args:
        problems, attempts: one per anchor (same length K).
        template: ``str.format`` template using {problem}, {attempt} and optionally
            {verdict}; write literal braces as ``{{`` / ``}}``.
        verdicts: anchor correctness, required iff the template uses {verdict} (passing
            them to a template without {verdict} is an error: it would silently turn the
            reveal-verdict ablation off).
        verdict_words: the words for True / False.
        feedback: one text per anchor, required iff the template uses {feedback} (same rule
            as ``verdicts``).

    Returns:
        K prompt strings. Braces inside problems and attempts are kept verbatim.
    """
    used = _template_fields(template)
    unknown = sorted(used - set(PROMPT_FIELDS))
    if unknown:
        raise ValueError(f"template uses unknown field(s) {unknown}; allowed fields are {list(PROMPT_FIELDS)}")
    if "verdict" in used and verdicts is None:
        raise ValueError("template uses {verdict} but verdicts is None")
    if "verdict" not in used and verdicts is not None:
        raise ValueError("verdicts were given but template has no {verdict} field")
    if len(problems) != len(attempts):
        raise ValueError(f"problems and attempts must have the same length, got {len(problems)} and {len(attempts)}")
    if verdicts is not None and len(verdicts) != len(problems):
        raise ValueError(f"verdicts must have one entry per problem ({len(problems)}), got {len(verdicts)}")
    if "feedback" in used and feedback is None:
        raise ValueError("template uses {feedback} but feedback is None")
    if "feedback" not in used and feedback is not None:
        raise ValueError("feedback was given but template has no {feedback} field")
    if feedback is not None and len(feedback) != len(problems):
        raise ValueError(f"feedback must have one entry per problem ({len(problems)}), got {len(feedback)}")
    if len(verdict_words) != 2:
        raise ValueError(f"verdict_words must be a pair (true_word, false_word), got {verdict_words!r}")
    out = []
    for i, (problem, attempt) in enumerate(zip(problems, attempts)):
        values = {"problem": problem, "attempt": attempt}
        if verdicts is not None:
            values["verdict"] = verdict_words[0] if verdicts[i] else verdict_words[1]
        if feedback is not None:
            values["feedback"] = feedback[i]
        out.append(template.format(**values))
    return out


def training_correction_template(correction_template: str, verdict_template: str, reveal_verdict: bool) -> str:
    """The template the correction stream trains with; a hidden-verdict template must not use {feedback}.

    The verifier's feedback is empty on a pass and describes the failure otherwise, so a
    {feedback} field tells the model whether its attempt was right: that is the reveal-verdict
    ablation, and it must be asked for as one.
    """
    if reveal_verdict:
        return verdict_template
    if "feedback" in _template_fields(correction_template):
        raise ValueError(
            "the correction template uses {feedback}, which reveals the verdict (the feedback is empty on a "
            "pass). Set algorithm.correction.reveal_verdict=true to train with it as the reveal-verdict "
            "ablation, or remove {feedback} (data.prompt.show_feedback=false, or data.correction_template)"
        )
    return correction_template


def continuation_suffix(template: str) -> str:
    """The text a continuation-style correction template adds after the attempt ("{problem}{attempt}\\nCheck:"
    -> "\\nCheck:"): a revision after it continues the first attempt itself (an inline check)."""
    head = "{problem}{attempt}"
    suffix = template[len(head) :]
    if not template.startswith(head) or _template_fields(suffix):
        raise ValueError(
            f"data.transplant_as=inline_check needs a correction template that starts with {head!r} and has no "
            f"field after it, got {template!r}"
        )
    return suffix.replace("{{", "{").replace("}}", "}")


def _paired(anchor_success: Tensor, correction_success: Tensor) -> tuple[Tensor, Tensor]:
    s_a = as_bool(anchor_success, "anchor_success")
    s_c = as_bool(correction_success, "correction_success")
    if s_a.shape != s_c.shape:
        raise ValueError(f"anchor_success {tuple(s_a.shape)} and correction_success {tuple(s_c.shape)} differ in shape")
    return s_a, s_c


def shape_correction_rewards(anchor_success: Tensor, correction_success: Tensor, penalty: float) -> Tensor:
    """Risk-averse correction reward r = s_c - penalty * s_a * (1 - s_c).

    Args:
        anchor_success: (K*M,) bool, the anchor's success repeated for each of its revisions.
        correction_success: (K*M,) bool, each revision's success.
        penalty: lambda >= 0; breaking a correct anchor costs lambda (0 turns shaping off).

    Returns:
        (K*M,) float32 rewards.
    """
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty!r}")
    s_a, s_c = _paired(anchor_success, correction_success)
    s_a, s_c = s_a.float(), s_c.float()
    return s_c - penalty * s_a * (1.0 - s_c)


@dataclass(frozen=True)
class CorrectionCounts:
    """Outcomes of (attempt, revision) pairs: the one home of fix rate, retention and break rate.

    fixed: wrong -> right, unfixed: wrong -> wrong, kept: right -> right, broken: right -> wrong.
    Counts add up across steps, shards and ranks (``+``); rates are derived from the sums, never
    averaged. Used for the training rollouts (``correction/*``), validation (``val/*``) and cipo-eval.
    """

    fixed: float = 0.0
    unfixed: float = 0.0
    kept: float = 0.0
    broken: float = 0.0

    @classmethod
    def of(cls, anchor_success: Tensor, correction_success: Tensor) -> CorrectionCounts:
        """Counts over (K*M,) paired anchor / revision successes (bool or 0/1)."""
        s_a, s_c = _paired(anchor_success, correction_success)
        return cls(
            fixed=float((~s_a & s_c).sum()),
            unfixed=float((~s_a & ~s_c).sum()),
            kept=float((s_a & s_c).sum()),
            broken=float((s_a & ~s_c).sum()),
        )

    def __add__(self, other: CorrectionCounts) -> CorrectionCounts:
        return CorrectionCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))

    @property
    def from_wrong(self) -> float:
        return self.fixed + self.unfixed

    @property
    def from_right(self) -> float:
        return self.kept + self.broken

    @property
    def total(self) -> float:
        return self.from_wrong + self.from_right

    def rates(self) -> dict[str, float]:
        """``fix_rate`` (per wrong attempt), ``retention`` and ``break_rate`` (per right attempt),
        ``acc1`` / ``acc2`` (accuracy of the attempts / of the revisions) and ``delta`` = (fixed -
        broken) / total (= acc2 - acc1, computed exactly from the counts). A rate whose denominator
        is 0 is absent: "no wrong attempt to fix" is not "fixed none"."""
        rates: dict[str, float] = {}
        if self.from_wrong:
            rates["fix_rate"] = self.fixed / self.from_wrong
        if self.from_right:
            rates["retention"] = self.kept / self.from_right
            rates["break_rate"] = self.broken / self.from_right
        if self.total:
            rates["acc1"] = self.from_right / self.total
            rates["acc2"] = (self.fixed + self.kept) / self.total
            rates["delta"] = (self.fixed - self.broken) / self.total
        return rates


def transplant_rows(
    anchor_success: Tensor, revision_success: Tensor, samples_per_anchor: int, valid: Tensor | None = None
) -> Tensor:
    """Revisions to transplant: the first successful revision of each failed anchor (our choice: one
    per anchor, like the one off-policy trace per group of LUFFY), from the rows in ``valid``.

    Args:
        anchor_success: (K,) bool, one per anchor.
        revision_success: (K*M,) bool, anchor by anchor.
        valid: (K*M,) bool, revisions that may be used (default: all).

    Returns:
        (T,) long, rows into the K*M revisions, ascending; T <= number of failed anchors.
    """
    s_a = as_bool(anchor_success, "anchor_success")
    s_c = as_bool(revision_success, "revision_success")
    if s_c.numel() != s_a.numel() * samples_per_anchor:
        raise ValueError(f"revision_success has {s_c.numel()} rows, expected K*M = {s_a.numel()}*{samples_per_anchor}")
    ok = s_c if valid is None else s_c & as_bool(valid, "valid")
    fixed = (ok.view(-1, samples_per_anchor) & ~s_a.unsqueeze(1)).float()  # (K, M)
    has_fix = fixed.any(dim=1)
    first = fixed.argmax(dim=1)  # the first 1 in each row (argmax returns the first maximum)
    anchors = has_fix.nonzero(as_tuple=True)[0]
    return anchors * samples_per_anchor + first[anchors]
