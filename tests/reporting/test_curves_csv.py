"""A run's curves CSV: row k is the run after k steps; reading it back restores TensorBoard's layout."""

import pytest

from cipo.reporting.curves_csv import read_curves, steps_completed, write_curves


def run_scalars(steps=4, every=2):
    scalars = {
        "val/accuracy": {k: 0.3 + 0.01 * k for k in range(0, steps + 1, every)},
        "val/pass@16": {k: 0.8 for k in range(0, steps + 1, every)},
        "time/val_s": {k: 12.5 for k in range(0, steps + 1, every)},
        "compute/generated_tokens": {s: 1000.0 * (s + 1) for s in range(steps)},
        "compute/step_s": {s: 2.25 * (s + 1) for s in range(steps)},
        "rollout/accuracy": {s: 0.1 * s for s in range(steps)},
        "correction/replay_ratio": {s: 0.3 for s in range(steps)},
        "train/loss": {s: 1.0 for s in range(steps)},  # not a curve a study keeps
    }
    return scalars


def test_rows_hold_the_state_after_k_steps(tmp_path):
    path = write_curves(run_scalars(), tmp_path / "run.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == (
        "step,val/accuracy,val/pass@16,compute/generated_tokens,compute/step_s,"
        "rollout/accuracy,correction/replay_ratio,time/val_s"
    )
    assert lines[1] == "0,0.3,0.8,0,0,,,12.5"  # the initial policy: no step yet, nothing spent
    assert lines[2] == "1,,,1000,2.25,0,0.3,"  # step 1's own values (TensorBoard index 0)
    assert lines[3] == "2,0.32,0.8,2000,4.5,0.1,0.3,12.5"
    assert len(lines) == 1 + 5


def test_read_back_equals_the_kept_tags(tmp_path):
    scalars = run_scalars()
    back = read_curves(write_curves(scalars, tmp_path / "run.csv"))
    kept = {tag: series for tag, series in scalars.items() if tag != "train/loss"}
    assert back.keys() == kept.keys()
    for tag, series in kept.items():  # 6 significant digits (TensorBoard keeps float32: about 7)
        assert back[tag] == pytest.approx(series, rel=1e-6), tag
    assert steps_completed(back) == steps_completed(scalars) == 4


def test_a_study_length_run_stays_small(tmp_path):
    scalars = run_scalars(steps=200, every=25)
    for tag in ("rollout/reward_mean", "rollout/frac_zero_std", "rollout/frac_all_wrong", "correction/accuracy",
                "correction/fix_rate", "correction/retention", "correction/band_occupancy",
                "rollout/completion_len_mean", "correction/num_anchors", "compute/processed_tokens"):  # fmt: skip
        scalars[tag] = {s: 1234.56789 + s / 7 for s in range(200)}
    for k in range(20):  # a full validation's worth of val/* tags
        scalars[f"val/extra_{k}"] = {k: 0.123456789 for k in range(0, 201, 25)}
    size = write_curves(scalars, tmp_path / "run.csv").stat().st_size
    assert size < 40_000, size


def test_bad_files_name_the_problem(tmp_path):
    (tmp_path / "a.csv").write_text("x,val/accuracy\n0,0.5\n")
    with pytest.raises(ValueError, match="first column must be 'step'"):
        read_curves(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("step,val/accuracy\n0,0.5\n1\n")
    with pytest.raises(ValueError, match="line 3: 1 cells, the header has 2"):
        read_curves(tmp_path / "b.csv")
