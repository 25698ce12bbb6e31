"""Runs on disk: found, read, grouped by overrides minus seed; crashed ones skipped with a reason."""

import pytest
from fake_runs import make_multirun

from cipo.reporting.runs import find_run_dirs, load_runs


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    return make_multirun(tmp_path_factory.mktemp("multirun"))


def test_finds_every_run_folder(multirun):
    dirs = find_run_dirs([multirun])
    assert len(dirs) == 6 and all((d / ".hydra" / "config.yaml").is_file() for d in dirs)
    assert find_run_dirs([dirs[0]]) == [dirs[0]]  # a run folder itself
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_run_dirs([multirun / "nope"])


def test_groups_pool_seeds_and_skipped_runs_say_why(multirun):
    groups, skipped = load_runs([multirun])
    assert list(groups) == ["experiment=a", "experiment=b"]  # shared overrides left out of the label
    assert [run.seed for run in groups["experiment=a"]] == [1, 2]
    assert len(groups["experiment=b"]) == 2
    reasons = {path.name: reason for path, reason in skipped}
    assert "incomplete: 1 of trainer.max_epochs=3 RL steps" in reasons["4_experiment=b,seed=3"]
    assert "no TensorBoard scalars" in reasons["5_experiment=b,seed=4"]
    run = groups["experiment=a"][0]
    assert run.scalars["val/accuracy"] == pytest.approx({0: 0.3, 1: 0.3, 2: 0.3, 3: 0.5})


def test_keep_incomplete_and_group_by_config_keys(multirun):
    groups, skipped = load_runs([multirun], keep_incomplete=True)
    assert len(groups["experiment=b"]) == 3 and len(skipped) == 1
    (kept,) = [run for run in groups["experiment=b"] if run.notes]
    assert kept.seed == 3 and "incomplete" in kept.notes[0]
    groups, _ = load_runs([multirun], group_by=["algorithm.name"])
    assert sorted(groups) == ["algorithm.name=cipo", "algorithm.name=grpo"]


def test_a_resumed_run_is_grouped_by_its_launch_and_judged_by_its_last_config(tmp_path):
    from omegaconf import OmegaConf

    root = make_multirun(tmp_path / "multirun")
    run = root / "0_experiment=a,seed=1"
    resume = run / ".hydra" / "resumes" / "2026-01-01_00-00-00_1"
    resume.mkdir(parents=True)
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.trainer.max_epochs = 10  # the resume asked for more steps than were logged
    OmegaConf.save(config, resume / "config.yaml")
    OmegaConf.save(OmegaConf.create(["trainer.max_epochs=10", "ckpt_path=auto"]), resume / "overrides.yaml")
    assert all(".hydra" not in p.parts for p in find_run_dirs([root]))  # a resume's record is not a run
    groups, skipped = load_runs([root])
    assert any(path == run and "incomplete" in reason and "max_epochs=10" in reason for path, reason in skipped)
    groups, _ = load_runs([root], keep_incomplete=True)
    assert run in [r.path for r in groups["experiment=a"]]  # still grouped by how it was launched
