"""The shipped built-in policies are starting points RL can learn from: each one's held-out report
(written by scripts/build_builtin_policy.py) shows first attempts that are neither hopeless nor
solved, mostly mixed groups (GRPO's signal), and revisions that fix clearly more than chance."""

import json

import pytest

from cipo.models.builtin import BUILTIN_POLICIES, builtin_policy_dir
from cipo.models.load import resolve_model_path


@pytest.mark.parametrize("name", sorted(BUILTIN_POLICIES))
def test_shipped_policy_report_meets_the_warm_start_bar(name):
    folder = builtin_policy_dir(name)
    assert resolve_model_path(name) == str(folder)  # shipped, so it resolves without a build
    report = json.loads((folder / "warm_start_report.json").read_text())
    assert 0.2 <= report["accuracy"] <= 0.6  # sampled first attempts at T = 1
    assert report["frac_mixed"] >= 0.6
    assert report["fix_rate"] >= 2 * report["chance_accuracy"]
    assert report["status_no_answer"] + report["status_malformed"] < 0.05
