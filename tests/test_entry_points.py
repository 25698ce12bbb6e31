"""cipo-train and cipo-eval as a person runs them: what the console shows, the exit status, what
is left on disk. A 5-step run in a fresh process (its whole output); errors, Ctrl-C and help in
forked children (tests/entry_points.py); ``-m`` sweeps from the repo and from another folder
(``slow``)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from cipo.cli import eval_main, train_main
from conftest import CONF_DIR, REPO
from entry_points import BIN, run_forked, run_process
from fakes import read_hparams, read_scalars

STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")
NOISE = (
    "weights_only",  # Lightning, per checkpoint write, unless weights_only is passed
    "litlogger",  # Lightning's tip
    "GPU available",
    "TPU available",
    "LeafSpec",  # torch's deprecation, raised in Lightning's _pytree
    "Loading weights",  # transformers' progress bars
    "it/s",
    "max_new_tokens",  # cipo's own truncation warning
    "Traceback",
    "HYDRA_FULL_ERROR",
)


def tiny(tiny_policy_dir: str) -> list[str]:
    return [f"model.path={tiny_policy_dir}", "debug=fast", "rollout.max_new_tokens=32", "num_threads=1"]


def run_folders(cwd: Path) -> list[Path]:
    return sorted(path.parent for path in (Path(cwd) / "logs").rglob(".hydra"))


def only_run(cwd: Path, task: str = "train") -> Path:
    (run,) = (Path(cwd) / "logs" / task / "runs").iterdir()
    return run


# ------------------------------------------------------------------ a plain run, as a user sees it
@pytest.fixture(scope="module")
def five_steps(tmp_path_factory):
    """The built-in policy, as shipped (its answers fit debug=fast's token limit: no warning)."""
    cwd = tmp_path_factory.mktemp("five_steps")
    argv = ["cipo-train", "debug=fast", "trainer.max_epochs=5", "validation.every=2", "num_threads=1"]
    return cwd, run_process(argv, cwd)


def test_a_five_step_run_prints_no_line_twice_and_no_library_noise(five_steps):
    _, result = five_steps
    assert result.returncode == 0, result.output
    lines = [STAMP.sub("", line) for line in result.lines if line.strip()]
    assert [line for line, count in Counter(lines).items() if count > 1] == []
    assert [noise for noise in NOISE if noise in result.output] == []


def test_one_progress_line_per_rl_step_with_time_and_metrics(five_steps):
    _, result = five_steps
    steps = [line for line in result.lines if re.match(r"\[\d\d:\d\d:\d\d\] step \d/5 \| ", line)]
    assert [int(line.split("step ")[1][0]) for line in steps] == [1, 2, 3, 4, 5]
    assert all(re.search(r"\| \d\d:\d\d elapsed, ETA \d\d:\d\d \| reward \d\.\d{3} \| acc \d\.\d{3}", s) for s in steps)
    assert ["val_acc" in line for line in steps] == [False, True, False, True, True]  # validation.every=2, and the end
    before = result.output.split(steps[0])[0]
    assert "validating the initial policy on 8 held-out problems x 2 samples" in before
    assert "initial policy: val_acc " in before


def test_the_run_ends_with_its_folder_final_accuracy_and_next_commands(five_steps):
    cwd, result = five_steps
    run = only_run(cwd).relative_to(cwd)
    final = read_scalars(cwd / run / "tensorboard")["val/accuracy"][5]
    assert STAMP.sub("", result.lines[-5]) == "cipo-train: finished RL step 5 of 5 in " + result.lines[-5][-5:]
    assert result.lines[-4:] == [
        f"  run folder   {run}",
        f"  held-out     val_acc {final:.3f} after RL step 5 (val/accuracy; all metrics: docs/metrics.md)",
        f"  view         {BIN / 'tensorboard'} --logdir {run}",
        f"  evaluate     {BIN / 'cipo-eval'} run_dir={run}",
    ]


def test_hparams_hold_the_config_and_the_final_metrics(five_steps):
    cwd, _ = five_steps
    folder = only_run(cwd) / "tensorboard"
    params, metrics = read_hparams(folder)
    assert params["trainer/max_epochs"] == 5 and params["algorithm/name"] == "cipo"
    assert params["model/path"] == "builtin" and params["trainer/max_epochs"] == 5
    assert {"hp/val_accuracy", "hp/val_pass@2", "hp/reward_mean", "hp/rl_steps"} <= set(metrics)
    scalars = read_scalars(folder)
    assert scalars["hp/val_accuracy"] == {5: scalars["val/accuracy"][5]}
    assert scalars["hp/rl_steps"] == {5: 5.0}


def test_without_export_the_summary_names_the_folder_and_the_checkpoint(tmp_path, tiny_policy_dir):
    argv = ["cipo-train", *tiny(tiny_policy_dir), "trainer.max_epochs=1", "export_policy=false", "validation.every=0"]
    result = run_forked(train_main, argv, tmp_path)
    run = only_run(tmp_path).relative_to(tmp_path)
    assert result.returncode == 0 and not (tmp_path / run / "policy").exists()
    assert f"  run folder   {run}" in result.lines
    assert "  held-out     not measured (validation.every=0)" in result.lines
    assert result.lines[-1] == f"  evaluate     {BIN / 'cipo-eval'} run_dir={run} ckpt=last"


def test_ctrl_c_saves_then_exits_non_zero_with_the_resume_command(tmp_path, tiny_policy_dir):
    interrupt = ["+callbacks.interrupt._target_=fakes.InterruptAt", "+callbacks.interrupt.epoch=1"]
    result = run_forked(
        train_main, ["cipo-train", *tiny(tiny_policy_dir), "trainer.max_epochs=4", *interrupt], tmp_path
    )
    run = only_run(tmp_path)
    assert result.returncode == 130, result.output
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 1
    assert not (run / "policy").exists()  # a stopped run is not the trained policy
    assert "cipo-train: stopped at your request after RL step 2 of 4 in " in result.output
    assert result.lines[-1] == f"  resume       {BIN / 'cipo-train'} resume={run.relative_to(tmp_path)}"


def test_a_resumed_run_prints_like_a_fresh_one(tmp_path, tiny_policy_dir):
    """resume= re-opens the run's saved config, which has no hydra section: the console format and
    the quiet Lightning loggers must come from conf/hydra/ all the same."""
    first = run_forked(train_main, ["cipo-train", *tiny(tiny_policy_dir), "trainer.max_epochs=1"], tmp_path)
    run = only_run(tmp_path).relative_to(tmp_path)
    assert first.returncode == 0, first.output
    result = run_forked(train_main, ["cipo-train", f"resume={run}", "trainer.max_epochs=2"], tmp_path)
    assert result.returncode == 0, result.output
    assert [noise for noise in ("Restoring states", "GPU available", "[cipo.") if noise in result.output] == []
    assert re.search(r"^\[\d\d:\d\d:\d\d\] step 2/2 \| ", result.output, flags=re.M)
    assert "cipo-train: finished RL step 2 of 2 in " in result.output and run_folders(tmp_path) == [tmp_path / run]


# ------------------------------------------------------------------ mistakes: one paragraph, no folder left
def broken_jsonl(folder: Path) -> Path:
    path = folder / "broken.jsonl"
    path.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2+2?", "answer": \n')
    return path


TRAIN_MISTAKES = {
    "max_epochs": (["trainer.max_epochs=abc"], r"trainer\.max_epochs: the number of RL steps must be an integer"),
    "model_path": (["model=local", "model.path=/nonexistent"], r"model\.path='/nonexistent': no config\.json there"),
    "resume": (["resume=no/such/run"], r"resume=no/such/run: .*config\.yaml does not exist; point resume= at a run"),
    "group_typo": (["algoritm=cipo"], r"algoritm=cipo: cipo-train has no config group or key 'algoritm'; did you mean"),
    "broken_jsonl": (
        ["data=gsm8k", "verifier=math", "data.train.path={jsonl}", "data.heldout.path={jsonl}"],
        r"data\.train: .*broken\.jsonl line 2: is not valid JSON .*; or set data\.train\.on_error=skip to drop bad",
    ),
}


@pytest.mark.parametrize("mistake", sorted(TRAIN_MISTAKES))
def test_a_mistake_is_one_paragraph_and_leaves_no_run_folder(mistake, tmp_path):
    arguments, message = TRAIN_MISTAKES[mistake]
    arguments = [a.format(jsonl=broken_jsonl(tmp_path)) for a in arguments]
    result = run_forked(train_main, ["cipo-train", "debug=fast", *arguments], tmp_path)
    assert result.returncode == 1
    assert len(result.lines) == 2, result.output
    assert re.match(r"cipo-train: error: " + message, result.lines[0]), result.lines[0]
    assert result.lines[1] == "(HYDRA_FULL_ERROR=1 shows the traceback)"
    assert "+algoritm" not in result.output and result.output.count("on_error") <= 1
    assert run_folders(tmp_path) == []


def test_hydra_full_error_shows_the_traceback(tmp_path):
    result = run_forked(train_main, ["cipo-train", "trainer.max_epochs=abc"], tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.output and "settings.py" in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["eval.samples=0"], r"cipo-eval: error: eval\.samples must be an integer >= 1, got 0$"),
        (["algorithm=grpo"], r"cipo-eval: error: algorithm=grpo: cipo-eval has no config group or key 'algorithm'"),
    ],
)
def test_eval_mistakes_too(arguments, message, tmp_path):
    result = run_forked(eval_main, ["cipo-eval", *arguments], tmp_path)
    assert result.returncode == 1 and len(result.lines) == 2 and re.match(message, result.lines[0]), result.output
    assert run_folders(tmp_path) == []


@pytest.mark.parametrize("main, command", [(train_main, "cipo-train"), (eval_main, "cipo-eval")])
def test_help_exits_zero_with_the_commands_own_help(main, command, tmp_path):
    result = run_forked(main, [command, "--help"], tmp_path)
    assert result.returncode == 0 and result.lines[0].startswith(f"usage: {command} ")
    assert "powered by Hydra" not in result.output and not (tmp_path / "logs").exists()


# ------------------------------------------------------------------ -m sweeps
def test_the_sweep_folder_resolves_before_hydra_runs_a_job():
    """A multirun resolves hydra.sweep.dir in the launcher, before Hydra's runtime config exists:
    ${hydra:runtime.cwd} in paths.log_dir failed there (every plain `cipo-train -m` did)."""
    for name in ("train", "eval"):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(name, return_hydra_config=True)
            assert OmegaConf.select(cfg, "hydra.sweep.dir").startswith(f"logs/{name}/multiruns/")
        finally:
            GlobalHydra.instance().clear()


@pytest.fixture
def sweep(request):
    """``sweep(command, arguments, cwd, task)`` runs a two-job ``-m`` sweep from ``cwd`` and
    returns its job folders and output; sweep folders made in the repository are removed after
    the test."""
    made: list[Path] = []
    request.addfinalizer(lambda: [shutil.rmtree(folder, ignore_errors=True) for folder in made])

    def run(command: str, arguments: list[str], cwd: Path, task: str) -> tuple[list[Path], str]:
        root = cwd / "logs" / task / "multiruns"
        before = set(root.iterdir()) if root.is_dir() else set()
        result = run_process([command, "-m", *arguments], cwd)
        (folder,) = set(root.iterdir()) - before
        if cwd == REPO:
            made.append(folder)
        assert result.returncode == 0, result.output
        assert f"sweep done: 2 job(s) in {folder.relative_to(cwd)}" in result.output
        return sorted(p for p in folder.iterdir() if p.is_dir()), result.output

    return run


@pytest.mark.slow
@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_a_plain_train_sweep_gives_each_job_its_folder_and_events(where, sweep, tmp_path, tiny_policy_dir):
    cwd = REPO if where == "repo" else tmp_path
    arguments = ["algorithm=grpo,cipo", *tiny(tiny_policy_dir), "trainer.max_epochs=1", "validation.every=1"]
    jobs, output = sweep("cipo-train", arguments, cwd, "train")
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    assert [job.name.split(",")[0] for job in jobs] == ["0_algorithm=grpo", "1_algorithm=cipo"]
    for job in jobs:
        assert sorted(read_scalars(job / "tensorboard")["val/accuracy"]) == [0, 1]
        assert (job / "checkpoints" / "last.ckpt").is_file()
    assert output.count("cipo-train: finished RL step 1 of 1") == 2


@pytest.mark.slow
@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_a_plain_eval_sweep_gives_each_job_its_folder(where, sweep, tmp_path, tiny_policy_dir):
    cwd = REPO if where == "repo" else tmp_path
    arguments = [f"model.path={tiny_policy_dir}", "eval.samples=1,2", "data.heldout.num_records=3"]
    jobs, output = sweep("cipo-eval", [*arguments, "rollout.max_new_tokens=8", "num_threads=1"], cwd, "eval")
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    assert ["eval.samples=1" in jobs[0].name, "eval.samples=2" in jobs[1].name] == [True, True]
    for job, samples in zip(jobs, (1, 2)):
        assert (job / "problems.jsonl").is_file()
        assert OmegaConf.load(job / ".hydra" / "config.yaml").eval.samples == samples
