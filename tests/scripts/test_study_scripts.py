"""scripts/run_study.py (plan, run states) and scripts/study_report.py (from CSVs alone); the toy
end-to-end study, runner -> CSVs -> report, with an extension to more steps that resumes, is `slow`."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reporting"))
from test_study import SPEC, fake_run_folder, write_spec  # noqa: E402

from cipo.reporting.generated_block import markers  # noqa: E402
from cipo.reporting.study import load_spec, plan_runs  # noqa: E402
from cipo.reporting.study_results import LEDGER_NAME, export_run  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_study():
    return load_script("run_study")


@pytest.fixture(scope="module")
def study_report():
    return load_script("study_report")


def test_run_states_and_their_commands(run_study, tmp_path):
    spec = load_spec(write_spec(tmp_path / "results"))
    done, export, resume, fresh = plan_runs(spec, tmp_path / "logs", tmp_path / "results")
    for planned, logged in ((done, 4), (export, 4), (resume, 2)):
        fake_run_folder(planned.run_dir, planned.seed, logged)
        (planned.run_dir / "checkpoints").mkdir()
        torch.save({}, planned.run_dir / "checkpoints" / "last.ckpt")  # resume needs a readable one
    export_run(done, spec.steps)
    states = [run_study.run_state(p, spec.steps) for p in (done, export, resume, fresh)]
    assert states == ["done", "export", "resume", "fresh"]
    train = ["cipo-train"]
    assert run_study.command(resume, "resume", 4, train, ["x=1"]) == [
        "cipo-train", f"resume={resume.run_dir}", "trainer.max_epochs=4", "x=1",
    ]  # fmt: skip
    assert run_study.command(fresh, "fresh", 4, train, []) == [
        "cipo-train", *fresh.overrides, f"hydra.run.dir={fresh.run_dir}", "ckpt_path=auto",
    ]  # fmt: skip


def test_the_ledger_keeps_a_killed_runners_share(run_study, tmp_path, monkeypatch):
    """While a run works the runner records its cost so far in the run folder; a runner killed with
    the machine never exports, and the next invocation starts from that ledger instead of from 0."""
    assert run_study.running_cpu_s(os.getpid()) > 0 and run_study.running_cpu_s(2**22 + 1) is None
    spec = load_spec(write_spec(tmp_path / "results"))
    planned = plan_runs(spec, tmp_path / "logs", tmp_path / "results")[0]
    fake_run_folder(planned.run_dir, planned.seed, 2)
    export_run(planned, spec.steps, {"wall_s": 100.0, "cpu_s": 80.0})  # an earlier sitting, stopped cleanly
    busy = [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"]
    job = run_study.launch(planned, busy, tmp_path / "logs")
    assert job.before == {"wall_s": 100.0, "cpu_s": 80.0}
    monkeypatch.setattr(run_study, "LEDGER_EVERY_S", 0.0)
    while run_study.running_cpu_s(job.process.pid) is not None and run_study.reap(job) is None:
        run_study.update_ledger(job)
        time.sleep(0.05)
    ledger = json.loads((planned.run_dir / LEDGER_NAME).read_text())
    assert ledger["wall_s"] > 100.0 and 80.0 < ledger["cpu_s"] <= 80.4  # the share it saw before the end
    again = run_study.launch(planned, [sys.executable, "-c", "pass"], tmp_path / "logs")
    again.process.wait()
    assert again.before == ledger


def test_plan_composes_every_pair_and_names_a_bad_one(run_study, tmp_path, capsys):
    path = write_spec(tmp_path / "results", SPEC.replace("max_problems: 512, ", ""))
    assert run_study.main([str(path), "--plan", "--logs", str(tmp_path / "logs"), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "arithmetic / grpo: 128 sequences per RL step" in out and "arithmetic / cipo: 192" in out
    assert "fresh   arithmetic__cipo__seed2" in out and "seed1" not in out
    bad = write_spec(tmp_path / "bad", SPEC.replace("algorithm=cipo]", "algorithm=ppo]"))
    with pytest.raises(SystemExit, match="task 'arithmetic' x config 'cipo'"):
        run_study.main([str(bad), "--plan"])


def test_results_made_with_other_overrides_are_named_not_redone(run_study, tmp_path, capsys):
    path = write_spec(tmp_path / "results", SPEC)
    planned = plan_runs(load_spec(path), tmp_path / "logs", tmp_path / "results")[0]
    fake_run_folder(planned.run_dir, planned.seed, 4)
    export_run(planned, 4)
    write_spec(tmp_path / "results", SPEC.replace("steps: 4", "steps: 6"))  # longer: the same run, extended
    assert run_study.main([str(path), "--plan", "--logs", str(tmp_path / "logs")]) == 0
    assert "warning" not in capsys.readouterr().err
    write_spec(
        tmp_path / "results",
        SPEC.replace("[experiment=builtin, algorithm=grpo]", "[experiment=builtin_matched, algorithm=grpo]"),
    )
    assert run_study.main([str(path), "--plan", "--logs", str(tmp_path / "logs")]) == 0
    err = capsys.readouterr().err
    assert "warning: arithmetic__grpo__seed1.json was made with other overrides" in err and "delete it" in err


SHIPPED_SPECS = sorted((SCRIPTS.parent / "docs" / "results").glob("*/study.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=[p.parent.name for p in SHIPPED_SPECS])
def test_shipped_study_specs_compose(run_study, path, tmp_path, capsys):
    assert run_study.main([str(path), "--plan", "--logs", str(tmp_path)]) == 0
    spec = load_spec(path)
    if spec.name == "cipo_vs_grpo":  # issue 12's floor: >= 200 steps, >= 5 seeds, >= 512 problems x 16 samples
        assert spec.steps >= 200 and len(spec.seeds) >= 5
        assert spec.validation["samples"] >= 16 and spec.validation["max_problems"] >= 512
        sequences = run_study.check_configs(spec, [])  # the compute match holds in whatever layout
        for task in spec.tasks:
            assert sequences[task, "grpo_matched"] == sequences[task, "cipo"] > sequences[task, "grpo"]
    assert "sequences per RL step" in capsys.readouterr().out


def test_report_from_the_committed_files_alone(study_report, tmp_path):
    results = tmp_path / "results"
    spec = load_spec(write_spec(results))
    for planned, final in zip(plan_runs(spec, tmp_path / "logs", results), (0.50, 0.56, 0.40, 0.47)):
        fake_run_folder(planned.run_dir, planned.seed, 4, final=final)
        export_run(planned, spec.steps, {"wall_s": 1800.0, "cpu_s": 1800.0}, {"commit": "abc1234"})
    for folder in (tmp_path / "logs").iterdir():  # the run folders are not needed any more
        subprocess.run(["rm", "-r", str(folder)], check=True)
    assert study_report.main([str(results)]) == 0
    report = (results / "report.md").read_text()
    assert "- **Runs:** 4 complete of 4 planned." in report
    assert "2.0 CPU hours" in report and "commit(s) abc1234" in report and "estimated" not in report
    assert report.index("| grpo | 2 |") < report.index("| cipo | 2 |")  # the spec's order
    (final,) = [line for line in report.splitlines() if line.startswith("| held-out accuracy, final |")]
    assert "| 0.450 | 0.515 | **+0.065 [+0.001, +0.129]** |" in final  # d = (+0.06, +0.07): sd 0.00707
    claims = report[report.index("## The paper's claims") : report.index("## Task `arithmetic`")]
    (first,) = [line for line in claims.splitlines() if "(pass@1), final" in line]
    assert "| **+0.065 [+0.001, +0.129], p 0.049, n 2** | supports | **+0.065 [+0.001, +0.129], n 2** |" in first
    assert "### cipo vs grpo_matched" not in claims  # not a configuration of this spec
    assert "## What each other comparison changes" not in report  # the spec's one comparison is a claim's
    repaired = results / "arithmetic__grpo__seed1.json"
    repaired.write_text(json.dumps({**json.loads(repaired.read_text()), "cost_note": "estimated: ..."}))
    assert study_report.main([str(results), "--baselines", "none"]) == 0  # no claims: it is a comparison
    assert "partly estimated for arithmetic__grpo__seed1: see their cost_note" in (results / "report.md").read_text()
    others = (results / "report.md").read_text().split("## What each other comparison changes")[1]
    assert "| quantity | cipo - grpo |" in others
    assert "| held-out accuracy, final | **+0.065 [+0.001, +0.129], n 2** |" in others
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    begin, end = markers(load_spec(results / "study.yaml").name)
    doc.write_text(f"# Results\n\nprose\n\n{begin}\nstale\n{end}\n\nolder sections\n")
    assert study_report.main([str(results), "--results-doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nprose\n\n") and text.endswith(f"{end}\n\nolder sections\n")
    assert "stale" not in text and "#### cipo vs grpo" in text and "| supports |" in text
    assert "](../results/study.yaml)" in text and "![arithmetic val accuracy vs step](../results/" in text
    assert (results / "arithmetic_val_accuracy_vs_tokens.png").stat().st_size > 1000
    empty = write_spec(tmp_path / "empty").parent
    assert study_report.main([str(empty)]) == 1  # a spec but no runs yet
    with pytest.raises(FileNotFoundError, match="no such study spec"):
        study_report.main([str(tmp_path / "logs")])


@pytest.mark.slow
def test_toy_study_end_to_end_then_extended_by_resuming(tmp_path):
    """2 configurations x 2 seeds x 2 steps through cipo-train, CSVs, report; then 3 steps: every run resumes."""
    results, logs = tmp_path / "results", tmp_path / "logs"
    toy = """
name: toy
steps: {steps}
seeds: [1, 2]
validation: {{every: 1, samples: 2, max_problems: 8}}
baseline: grpo
common: [num_threads=1, export_policy=false, data.batch_size=2, data.heldout.num_records=8,
         algorithm.correction.num_anchors=2, rollout.max_new_tokens=24, "~callbacks.progress"]
tasks:
  arithmetic: [data=arithmetic]
configs:
  grpo: [experiment=builtin, algorithm=grpo]
  cipo: [experiment=builtin, algorithm=cipo]
"""
    spec_path = write_spec(results, toy.format(steps=2))
    runner = [sys.executable, str(SCRIPTS / "run_study.py"), str(spec_path), "--logs", str(logs)]
    done = subprocess.run([*runner, "--parallel", "2"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("complete") == 4
    first = json.loads((results / "arithmetic__cipo__seed1.json").read_text())
    assert first["complete"] and first["steps"] == 2 and first["cpu_s"] > 0
    again = subprocess.run(runner, capture_output=True, text=True, timeout=300)  # nothing left to do
    assert again.returncode == 0 and "4 of 4 runs done; 0 to run" in again.stdout
    assert "warning" not in again.stderr

    write_spec(results, toy.format(steps=3))
    extended = subprocess.run([*runner, "--parallel", "2"], capture_output=True, text=True, timeout=900)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    assert extended.stdout.count("(resume)") == 4
    meta = json.loads((results / "arithmetic__cipo__seed1.json").read_text())
    assert meta["complete"] and meta["completed_steps"] == 3 and meta["cpu_s"] > first["cpu_s"]
    rows = (results / "arithmetic__cipo__seed1.csv").read_text().splitlines()
    header = rows[0].split(",")
    tokens = [int(row.split(",")[header.index("compute/generated_tokens")]) for row in rows[1:]]
    assert len(tokens) == 4 and tokens[0] == 0 and tokens[1] < tokens[2] < tokens[3]  # continued, not restarted

    report = subprocess.run(
        [sys.executable, str(SCRIPTS / "study_report.py"), str(results)], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr[-3000:]
    text = (results / "report.md").read_text()
    assert "4 complete of 4 planned" in text and "#### cipo vs grpo" in text
    assert "| cipo | 32 |" in text and "| grpo | 16 |" in text  # sequences per step: 2 x 8 + 2 x 8, 2 x 8


@pytest.mark.slow
def test_a_stopped_study_exports_what_it_has_and_the_next_sitting_resumes(tmp_path):
    """SIGTERM to the runner: the run checkpoints and stops, is exported as incomplete; rerun finishes it.

    40 steps: the stop reaches the run up to ~2.5 s after its first checkpoint (the test's and the
    runner's polls), and a step of this tiny batch can take under 0.5 s; with 6 steps the run sometimes
    finished before the stop arrived."""
    results, logs = tmp_path / "results", tmp_path / "logs"
    spec_path = write_spec(
        results,
        """
name: stop
steps: 40
seeds: [1]
validation: {every: 20, samples: 2, max_problems: 8}
common: [num_threads=1, export_policy=false, data.batch_size=2, data.heldout.num_records=8,
         "~callbacks.progress"]
tasks: {arithmetic: [data=arithmetic]}
configs: {grpo: [experiment=builtin, algorithm=grpo]}
""",
    )
    runner = [sys.executable, str(SCRIPTS / "run_study.py"), str(spec_path), "--logs", str(logs)]
    process = subprocess.Popen(runner, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = logs / "arithmetic__grpo__seed1" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 130, output[-3000:]
    meta = json.loads((results / "arithmetic__grpo__seed1.json").read_text())
    assert not meta["complete"] and 1 <= meta["completed_steps"] < 40, output[-3000:]

    again = subprocess.run(runner, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "(resume)" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    finished = json.loads((results / "arithmetic__grpo__seed1.json").read_text())
    assert finished["complete"] and finished["completed_steps"] == 40 and finished["wall_s"] > meta["wall_s"]
