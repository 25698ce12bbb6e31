"""VerifyStatus skips and VerifierResult's optional score."""

from cipo.types import VerifierResult, VerifyStatus


def test_only_reference_faults_are_skips():
    assert {s for s in VerifyStatus if s.is_skip} == {VerifyStatus.SKIPPED, VerifyStatus.UNPARSEABLE_GOLD}


def test_status_values_are_metric_safe_names():
    # collect.py logs verify/status_<value>: values must be unique snake_case names
    values = [s.value for s in VerifyStatus]
    assert len(set(values)) == len(values)
    assert all(v.replace("_", "").isalpha() and v.islower() for v in values)


def test_score_is_optional_and_backwards_compatible():
    assert VerifierResult(True, 1.0, VerifyStatus.OK).score is None
    assert VerifierResult(False, 0.5, VerifyStatus.FAILED, "x", score=0.5).score == 0.5
