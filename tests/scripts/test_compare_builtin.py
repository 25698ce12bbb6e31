"""scripts/compare_builtin.sh: the README's one-command comparison, at a toy size (~20 s)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_command_runs_the_sweeps_and_writes_the_comparison(tmp_path):
    sweep = tmp_path / "sweep"
    env = {
        **os.environ,
        "SWEEP": str(sweep),
        "SEEDS": "1",
        "ALGORITHMS": "grpo,cipo",
        "CIPO_BIN": str(Path(sys.executable).parent),
    }
    toy = ["trainer.max_epochs=2", "validation.every=1", "data.batch_size=4", "data.heldout.num_records=16"]
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "compare_builtin.sh"), *toy, f"paths.log_dir={tmp_path / 'logs'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "comparison")
    assert len(runs) == 2 and any("algorithm=grpo" in r for r in runs) and any("algorithm=cipo" in r for r in runs)
    assert all("experiment=builtin" in r for r in runs)
    table = (sweep / "comparison" / "comparison.md").read_text()
    rows = [line for line in table.splitlines() if "experiment=builtin" in line]
    assert any("algorithm=grpo" in r for r in rows) and any("algorithm=cipo" in r for r in rows), table
    assert (sweep / "comparison" / "val_accuracy_vs_tokens.png").stat().st_size > 0
