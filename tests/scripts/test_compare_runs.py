"""scripts/compare_runs.py on event files written by the test: plots, table, skipped runs."""

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reporting"))
from fake_runs import make_multirun  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_runs.py"
PLOTS = [
    "val_accuracy_vs_step.png",
    "val_accuracy_vs_tokens.png",
    "val_accuracy_vs_time.png",
    "pass_at_k.png",
    "correction_rates.png",
    "reward_mean.png",
]


@pytest.fixture(scope="module")
def compare_runs():
    spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writes_plots_and_table_into_the_multirun_folder(compare_runs, tmp_path, capsys):
    root = make_multirun(tmp_path / "multirun")
    assert compare_runs.main([str(root)]) == 0
    out = root / "comparison"
    for name in PLOTS:
        assert (out / name).stat().st_size > 1000, name
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "comparison.md").read_text()
    row_a = "| experiment=a | 2 | 0.600 ± 0.141 | 0.800 ± 0.141 | 0.250 | 0.800 | 0.200 | 600 ± 424 | 2.00 ± 1.41 |"
    assert row_a in report
    assert "| experiment=b | 2 | 0.400 |" in report
    assert "## Skipped" in report and "4_experiment=b,seed=3: incomplete" in report
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "| experiment=a |" in captured.out


def test_several_inputs_need_out_and_nothing_to_compare_fails(compare_runs, tmp_path):
    root = make_multirun(tmp_path / "multirun")
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    with pytest.raises(SystemExit):
        compare_runs.main([str(runs[0]), str(runs[1])])
    assert compare_runs.main([str(runs[0]), str(runs[2]), "--out", str(tmp_path / "cmp"), "--band", "std"]) == 0
    assert (tmp_path / "cmp" / "val_accuracy_vs_step.png").is_file()
    assert compare_runs.main([str(runs[5])]) == 1  # only a run without events


def test_paired_differences_against_a_baseline(compare_runs, tmp_path):
    root = make_multirun(tmp_path / "multirun")
    assert compare_runs.main([str(root), "--baseline", "experiment=b"]) == 0
    report = (root / "comparison" / "comparison.md").read_text()
    assert "## Seed spread and evaluation error" in report and "## Compute up to the last validation" in report
    assert "### experiment=a vs experiment=b" in report
    # seeds 1, 2: a - b = (+0.1, +0.3), mean 0.2, standard error 0.1; with 1 degree of freedom t is
    # Cauchy: quantile tan(0.475 pi) = 12.706, p = 1 - 2 atan(2) / pi = 0.295
    row = "| held-out accuracy, final | - | 0.400 | 0.600 | +0.200 [-1.071, +1.471] | 0.295 | 2 |  |"
    assert row in report
    with pytest.raises(SystemExit):
        compare_runs.main([str(root), "--baseline", "experiment="])  # matches both groups
