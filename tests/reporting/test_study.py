"""Study specs (every mistake named), the run plan, and a results folder written and read back."""

import json

import pytest
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from cipo.reporting.study import load_spec, plan_runs, sequences_per_step
from cipo.reporting.study_results import (
    LEDGER_NAME,
    cost_before,
    export_run,
    is_complete,
    load_study,
    read_ledger,
    write_ledger,
)

SPEC = """
name: toy
steps: 4
seeds: [1, 2]
validation: {every: 2, samples: 16, max_problems: 512, ks: [1, 4, 16]}
baseline: grpo
common: [num_threads=1, "~callbacks.progress"]
tasks:
  arithmetic: [data=arithmetic, data.heldout.num_records=512]
configs:
  grpo: [experiment=builtin, algorithm=grpo]
  cipo: [experiment=builtin, algorithm=cipo]
"""


def write_spec(folder, text=SPEC):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(text)
    return folder / "study.yaml"


def test_plan_is_seed_major_and_the_study_sets_its_own_keys(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert spec.pairs() == [("grpo", "cipo")]
    runs = plan_runs(spec, tmp_path / "logs", tmp_path / "results")
    assert [r.run_id for r in runs] == [
        "arithmetic__grpo__seed1", "arithmetic__cipo__seed1", "arithmetic__grpo__seed2", "arithmetic__cipo__seed2",
    ]  # fmt: skip
    assert runs[1].overrides == (
        "num_threads=1", "~callbacks.progress", "data=arithmetic", "data.heldout.num_records=512",
        "experiment=builtin", "algorithm=cipo", "seed=1", "trainer.max_epochs=4", "validation.every=2",
        "validation.samples=16", "validation.max_problems=512", "validation.ks=[1,4,16]",
    )  # fmt: skip
    assert runs[1].run_dir == tmp_path / "logs" / "arithmetic__cipo__seed1"
    assert runs[1].csv_path == tmp_path / "results" / "arithmetic__cipo__seed1.csv"
    explicit = load_spec(write_spec(tmp_path / "b", SPEC + "comparisons: [[cipo, grpo]]\n"))
    assert explicit.pairs() == [("cipo", "grpo")]


@pytest.mark.parametrize(
    "change, match",
    [
        (("name: toy", "name: to y"), "name 'to y'"),
        (("steps: 4", "steps: 0"), "steps must be an integer >= 1"),
        (("seeds: [1, 2]", "seeds: [1, 1]"), "seeds repeat"),
        (("baseline: grpo", "baseline: ppo"), "'ppo', which is not under configs"),
        (("algorithm=grpo]", "algorithm=grpo, seed=3]"), r"configs.grpo sets \['seed=3'\]"),
        (("algorithm=grpo]", "algorithm=grpo, validation.every=5]"), "the study sets seed"),
        (
            ("[experiment=builtin, algorithm=grpo]", "experiment=builtin"),
            "configs.grpo must be a list of Hydra overrides",
        ),
        (("  grpo:", "  gr__po:"), "no '__'"),
        (("baseline: grpo", "baseline: grpo\nepochs: 3"), r"unknown keys \['epochs'\]"),
    ],
)
def test_spec_mistakes_name_the_file_and_key(tmp_path, change, match):
    path = write_spec(tmp_path, SPEC.replace(*change))
    with pytest.raises(ValueError, match=match) as error:
        load_spec(path)
    assert str(path) in str(error.value)


def test_sequences_per_step():
    cipo = {"group_size": 8, "correction": {"enabled": True, "num_anchors": 8, "samples_per_anchor": 8}}
    assert sequences_per_step(16, cipo) == 192
    assert sequences_per_step(24, {**cipo, "correction": {**cipo["correction"], "enabled": False}}) == 192


def fake_run_folder(folder, seed, steps_logged, steps=4, final=0.5):
    """A cipo-train run folder: saved config and event files with the tags a study exports."""
    config = {
        "seed": seed,
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "data": {"batch_size": 16},
        "trainer": {"max_epochs": steps},
        "validation": {"every": 2, "samples": 16},
        "algorithm": {"name": "cipo", "group_size": 8,
                      "correction": {"enabled": True, "num_anchors": 8, "samples_per_anchor": 8}},
    }  # fmt: skip
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    writer = SummaryWriter(str(folder / "tensorboard"))
    for step in range(steps_logged):
        writer.add_scalar("compute/generated_tokens", 100.0 * (step + 1), step)
        writer.add_scalar("rollout/accuracy", 0.25, step)
    for step in range(0, steps_logged + 1, 2):
        writer.add_scalar("val/accuracy", final if step == steps else 0.25, step)
    writer.close()


def test_export_and_load_back(tmp_path):
    spec = load_spec(write_spec(tmp_path / "results"))
    runs = plan_runs(spec, tmp_path / "logs", tmp_path / "results")
    for planned, logged, final in zip(runs, (4, 4, 4, 2), (0.5, 0.6, 0.4, 0.0)):
        fake_run_folder(planned.run_dir, planned.seed, logged, final=final)
        export_run(planned, spec.steps, {"wall_s": 10.0, "cpu_s": 8.0}, {"commit": "abc"})
    meta = json.loads(runs[0].meta_path.read_text())
    assert meta["complete"] and meta["completed_steps"] == 4 and meta["sequences_per_step"] == 192
    assert (meta["task"], meta["config"], meta["seed"], meta["commit"]) == ("arithmetic", "grpo", 1, "abc")
    assert meta["overrides"] == list(runs[0].overrides) and meta["config_summary"]["data"]["batch_size"] == 16
    assert is_complete(runs[0], 4) and not is_complete(runs[0], 8) and not is_complete(runs[3], 4)
    # the cost given is the run's whole cost (the runner adds its invocations up, test_run_cost_ledger)
    export_run(runs[3], spec.steps, {"wall_s": 15.0, "cpu_s": 12.0})
    assert json.loads(runs[3].meta_path.read_text())["wall_s"] == 15.0
    export_run(runs[3], spec.steps)  # none given (an export only): the recorded cost stays
    assert json.loads(runs[3].meta_path.read_text())["cpu_s"] == 12.0

    study = load_study(tmp_path / "results")
    groups = study.groups()
    assert list(groups) == ["arithmetic / cipo", "arithmetic / grpo"]
    assert [r.seed for r in groups["arithmetic / grpo"]] == [1, 2] and len(groups["arithmetic / cipo"]) == 1
    assert groups["arithmetic / grpo"][1].scalars["val/accuracy"][4] == pytest.approx(0.4)
    assert [(p.name, why) for p, why in study.skipped] == [
        ("arithmetic__cipo__seed2.csv", "incomplete: 2 of 4 RL steps")
    ]
    assert len(study.metas) == 4
    assert len(load_study(tmp_path / "results", keep_incomplete=True).runs) == 4
    with pytest.raises(FileNotFoundError, match="no TensorBoard scalars"):
        export_run(plan_runs(spec, tmp_path / "nothing", tmp_path / "results")[0], 4)


def test_run_cost_ledger(tmp_path):
    """A run's cost before a new invocation: its ledger, else an earlier export's, else zero; a torn or
    foreign ledger counts as none, and the ledger wins over the export it outlived."""
    spec = load_spec(write_spec(tmp_path / "results"))
    planned = plan_runs(spec, tmp_path / "logs", tmp_path / "results")[0]
    assert cost_before(planned) == {"wall_s": 0.0, "cpu_s": 0.0}
    fake_run_folder(planned.run_dir, planned.seed, 2)
    export_run(planned, spec.steps, {"wall_s": 100.0, "cpu_s": 80.0})  # a sitting that stopped cleanly
    assert cost_before(planned) == {"wall_s": 100.0, "cpu_s": 80.0}
    write_ledger(planned.run_dir, {"wall_s": 160.0, "cpu_s": 125.04})  # the next one, killed later
    assert read_ledger(planned.run_dir) == {"wall_s": 160.0, "cpu_s": 125.0}
    assert cost_before(planned) == {"wall_s": 160.0, "cpu_s": 125.0}
    assert json.loads(export_run(planned, spec.steps) and planned.meta_path.read_text())["cpu_s"] == 125.0
    assert not (planned.run_dir / (LEDGER_NAME + ".partial")).exists()
    (planned.run_dir / LEDGER_NAME).write_text('{"wall_s": 1')  # torn by a crash outside write_ledger
    assert read_ledger(planned.run_dir) is None and cost_before(planned)["wall_s"] == 160.0
    (planned.run_dir / LEDGER_NAME).write_text("[1, 2]")
    assert read_ledger(planned.run_dir) is None
