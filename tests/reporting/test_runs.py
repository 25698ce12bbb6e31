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
