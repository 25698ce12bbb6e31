"""CIPO correction stream: prompts, the hidden-verdict template rule, shaping, outcomes, transplant rows."""

import pytest
import torch

from cipo.algorithms.correction import (
    CorrectionCounts,
    build_correction_prompts,
    shape_correction_rewards,
)


def _b(*xs):
    return torch.tensor(xs, dtype=torch.bool)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# groups of 4: acc 0.25 (in band), 1.0, 0.0, 0.5 (in band)
# ----------------------------------------------------------------------- prompts
TEMPLATE = "Problem: {problem}\nPrevious attempt: {attempt}\nCheck it {{carefully}}."


def test_build_prompts_keeps_braces_in_values():
    out = build_correction_prompts(["1+1 in {x}?"], ["I think {x} = 2}"], TEMPLATE)
    assert out == ["Problem: 1+1 in {x}?\nPrevious attempt: I think {x} = 2}\nCheck it {carefully}."]


def test_build_prompts_with_verdict():
    t = "{problem} | {attempt} | This attempt is {verdict}."
    out = build_correction_prompts(["p", "q"], ["a", "b"], t, verdicts=[True, False])
    assert out == ["p | a | This attempt is correct.", "q | b | This attempt is incorrect."]
    out = build_correction_prompts(["p"], ["a"], t, [False], verdict_words=("right", "wrong"))
    assert out == ["p | a | This attempt is wrong."]


def test_build_prompts_with_feedback():
    t = "{problem} | {attempt} | Tests said: {feedback}"
    out = build_correction_prompts(["p", "q"], ["a", "b"], t, feedback=["", "NameError: x {y}"])
    assert out == ["p | a | Tests said: ", "q | b | Tests said: NameError: x {y}"]
    both = build_correction_prompts(["p"], ["a"], "{problem}{attempt} {verdict}: {feedback}", [False], feedback=["f"])
    assert both == ["pa incorrect: f"]
    assert build_correction_prompts(["p"], ["a"], TEMPLATE) == build_correction_prompts(["p"], ["a"], TEMPLATE, None)


def test_build_prompts_errors():
    with pytest.raises(ValueError, match=r"\['answer'\].*'problem', 'attempt', 'verdict', 'feedback'"):
        build_correction_prompts(["p"], ["a"], "{problem} {answer}")
    with pytest.raises(ValueError, match=r"unknown field"):
        build_correction_prompts(["p"], ["a"], "{problem} {}")
    with pytest.raises(ValueError, match="verdicts is None"):
        build_correction_prompts(["p"], ["a"], "{problem} {attempt} {verdict}")
    with pytest.raises(ValueError, match="no \\{verdict\\} field"):
        build_correction_prompts(["p"], ["a"], TEMPLATE, verdicts=[True])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        build_correction_prompts(["p", "q"], ["a"], TEMPLATE)
    with pytest.raises(ValueError, match="verdicts must have one entry"):
        build_correction_prompts(["p"], ["a"], "{verdict}", verdicts=[True, False])
    with pytest.raises(ValueError, match="not a valid str.format template"):
        build_correction_prompts(["p"], ["a"], "{problem")
    with pytest.raises(ValueError, match="uses {feedback} but feedback is None"):
        build_correction_prompts(["p"], ["a"], "{problem} {attempt} {feedback}")
    with pytest.raises(ValueError, match="template has no {feedback} field"):
        build_correction_prompts(["p"], ["a"], TEMPLATE, feedback=["f"])
    with pytest.raises(ValueError, match="feedback must have one entry per problem"):
        build_correction_prompts(["p"], ["a"], "{feedback}", feedback=["f", "g"])


# ----------------------------------------------------------------- shaping, outcomes
def test_shape_correction_rewards():
    a, c = _b(1, 1, 0, 0), _b(1, 0, 1, 0)
    want = {1.0: [1.0, -1.0, 1.0, 0.0], 0.5: [1.0, -0.5, 1.0, 0.0]}
    for penalty, rewards in want.items():
        torch.testing.assert_close(shape_correction_rewards(a, c, penalty), torch.tensor(rewards))
    torch.testing.assert_close(shape_correction_rewards(a, c, 0.0), c.float())
    with pytest.raises(ValueError, match="penalty.*-1"):
        shape_correction_rewards(a, c, -1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        shape_correction_rewards(a, c[:3], 1.0)


def test_correction_counts():
    out = CorrectionCounts.of(_b(1, 1, 1, 0, 0), _b(1, 0, 1, 1, 0))
    assert out == CorrectionCounts(fixed=1.0, unfixed=1.0, kept=2.0, broken=1.0)
    assert (out.from_wrong, out.from_right, out.total) == (2.0, 3.0, 5.0)
    assert out.rates() == {
        "fix_rate": 0.5,
        "retention": 2 / 3,
        "break_rate": 1 / 3,
        "acc1": 3 / 5,
        "acc2": 3 / 5,
        "delta": 0.0,
    }
    only_wrong = CorrectionCounts.of(_b(0, 0), _b(1, 1)).rates()
    assert "retention" not in only_wrong and "break_rate" not in only_wrong
    assert only_wrong["fix_rate"] == 1.0 and only_wrong["delta"] == 1.0
    assert "fix_rate" not in CorrectionCounts.of(_b(1), _b(1)).rates()
    empty = CorrectionCounts.of(_b(), _b())
    assert empty.rates() == {} and empty.from_right == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        CorrectionCounts.of(_b(1, 0), _b(1))


def test_correction_counts_add_up_and_rates_come_from_the_sums():
    a = CorrectionCounts.of(_b(1, 1, 1, 0), _b(1, 1, 0, 1))  # retention 2/3
    b = CorrectionCounts.of(_b(1, 0), _b(0, 0))  # retention 0/1
    whole = CorrectionCounts.of(_b(1, 1, 1, 0, 1, 0), _b(1, 1, 0, 1, 0, 0))
    assert a + b == whole
    assert whole.rates()["retention"] == 2 / 4  # pooled over right attempts, not the mean of 2/3 and 0


def test_transplant_rows_pick_the_first_fix_of_each_failed_anchor():
    from cipo.algorithms.correction import transplant_rows

    anchors = _b(0, 1, 0, 0)
    revisions = _b(0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1)  # M = 3
    assert transplant_rows(anchors, revisions, 3).tolist() == [1, 11]  # a kept right answer is no transplant
    valid = torch.ones(12, dtype=torch.bool)
    valid[9:] = False
    assert transplant_rows(anchors, revisions, 3, valid).tolist() == [1]
    assert transplant_rows(_b(), _b(), 3).numel() == 0
    with pytest.raises(ValueError, match=r"expected K\*M = 4\*2"):
        transplant_rows(anchors, revisions, 2)


def test_a_hidden_verdict_run_refuses_a_feedback_template():
    from cipo.algorithms.correction import training_correction_template

    hidden, verdict = "{problem}{attempt}\nCheck:", "{problem}{attempt}\nThat is {verdict}. {feedback}"
    assert training_correction_template(hidden, verdict, False) == hidden
    assert training_correction_template(hidden, verdict, True) == verdict  # revealed anyway: feedback allowed
    with pytest.raises(ValueError, match=r"uses \{feedback\}, which reveals the verdict.*reveal_verdict=true"):
        training_correction_template("{problem}{attempt}\n{feedback}\nCheck:", verdict, False)


def test_continuation_suffix():
    from cipo.algorithms.correction import continuation_suffix

    assert continuation_suffix("{problem}{attempt}\nCheck:") == "\nCheck:"
    assert continuation_suffix("{problem}{attempt}\n{{Check}}") == "\n{Check}"
    for bad in ("Problem: {problem}{attempt}", "{problem}{attempt} {verdict}"):
        with pytest.raises(ValueError, match="transplant_as=inline_check needs a correction template"):
            continuation_suffix(bad)
