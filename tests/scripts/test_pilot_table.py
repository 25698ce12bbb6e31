"""scripts/pilot_table.py on a fake multirun: one CSV row per finished run, mean / spread per config."""

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reporting"))
from fake_runs import make_multirun  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pilot_table.py"


@pytest.fixture(scope="module")
def pilot_table():
    spec = importlib.util.spec_from_file_location("pilot_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_and_summary(pilot_table, tmp_path):
    sweep = tmp_path / "sweep"
    make_multirun(sweep)
    out = tmp_path / "out" / "t.csv"
    rows = pilot_table.main([str(sweep), "--csv", str(out), "--summary", str(tmp_path / "t.md")])
    assert [(row["config"], row["seed"]) for row in rows] == [("cipo", 1), ("cipo", 2), ("grpo", 1), ("grpo", 2)]
    written = list(csv.DictReader(out.open()))
    assert len(written) == 4 and float(written[2]["first_attempt_accuracy"]) == 0.5
    assert float(written[3]["accuracy_last3"]) == pytest.approx((0.3 + 0.3 + 0.7) / 3)
    assert written[2]["train_replay_ratio"] == "" and float(written[0]["train_replay_ratio"]) == pytest.approx(0.3)
    summary = (tmp_path / "t.md").read_text()
    assert "| grpo | 2 | 0.600 ± 0.141 (0.500..0.700)" in summary  # mean ± sample std (min..max)
    assert "skipped:" in summary  # the crashed and the empty run are named, not dropped silently
