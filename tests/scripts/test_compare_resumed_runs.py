"""A resumed run keeps the overrides it was launched with, so compare_runs still groups it with its
own configuration. Each run is resumed through Hydra itself (a small Hydra app that expands
``resume=`` as ``cipo-train`` does), which is what used to overwrite ``.hydra/overrides.yaml``
with the resume's own command line: a resumed GRPO run and a resumed CIPO run then had the same
overrides and were pooled as one configuration."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import cipo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reporting"))
from fake_runs import write_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = """
import json, sys
import hydra
from hydra.core.global_hydra import GlobalHydra
from cipo.checkpointing.resume import resume_arguments


@hydra.main(version_base="1.3", config_path=None)
def resume(cfg):
    pass


for command in json.loads(sys.argv[1]):  # one interpreter, several `cipo-train resume=...` command lines
    sys.argv = ["cipo-train", *resume_arguments(command)]
    GlobalHydra.instance().clear()
    resume()
"""


def _resume(app: Path, commands: list[list[str]]) -> None:
    env = {"PYTHONPATH": str(Path(cipo.__file__).parents[1]), "PATH": "/usr/bin:/bin", "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run([sys.executable, str(app), json.dumps(commands)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow  # a Hydra process: ~5 s alone, 20 s on a busy machine
def test_resumed_runs_stay_in_their_groups(tmp_path):
    root = tmp_path / "multirun"
    for index, (experiment, seed) in enumerate([("a", 1), ("a", 2), ("b", 1), ("b", 2)]):
        run = root / f"{index}_experiment={experiment},seed={seed}"
        write_run(run, experiment, seed)
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        config.ckpt_path = None  # as in a real run's saved config
        OmegaConf.save(config, run / ".hydra" / "config.yaml")
    app = tmp_path / "app.py"
    app.write_text(APP)
    resumed = [root / "0_experiment=a,seed=1", root / "2_experiment=b,seed=1"]
    # each run resumed twice: every resume has its own record
    _resume(app, [[f"resume={run}", f"++resumed_by={by}"] for by in ("test", "again") for run in resumed])

    for run in resumed:
        assert "experiment=" in (run / ".hydra" / "overrides.yaml").read_text()  # the launch's, kept
        records = sorted((run / ".hydra" / "resumes").iterdir())
        assert len(records) == 2 and "++resumed_by=again" in (records[-1] / "overrides.yaml").read_text()
        assert OmegaConf.load(records[-1] / "config.yaml").resumed_by == "again"  # what the next resume opens

    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    compare_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_runs)
    assert compare_runs.main([str(root)]) == 0
    report = (root / "comparison" / "comparison.md").read_text()
    groups = report.split("## Groups")[1].split("##")[0]
    assert "**experiment=a**: " in groups and "**experiment=b**: " in groups
    line_a = next(line for line in groups.splitlines() if "experiment=a**" in line)
    assert "0_experiment=a,seed=1" in line_a and "1_experiment=a,seed=2" in line_a and "experiment=b" not in line_a
    assert "| experiment=a | 2 |" in report and "| experiment=b | 2 |" in report
