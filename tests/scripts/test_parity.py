"""The cipo-vs-TRL learning comparison's own logic: its statistics (hand-computed and against scipy's tests),
the report written from small CSVs, and the copy of cipo's sampling seeds that its lockstep check relies on."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import parity_report  # noqa: E402
import parity_stats  # noqa: E402
import parity_vs_trl  # noqa: E402
import parity_workers  # noqa: E402
from cipo.callbacks.rollout import RolloutCallback  # noqa: E402


def test_mean_interval_by_hand():
    interval = parity_stats.mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) * sd 1 / sqrt(3)
    assert interval.estimate == 2.0 and interval.sd == 1.0 and interval.n == 3
    assert interval.low == pytest.approx(2 - half) and interval.high == pytest.approx(2 + half)
    assert interval.excludes(5.0) and not interval.excludes(0.0)
    assert parity_stats.mean_interval([0.4]).high == math.inf  # one value: no interval


def test_welch_difference_matches_scipy():
    a = [0.41, 0.56, 0.40, 0.50, 0.50, 0.47]
    b = [0.51, 0.53, 0.52, 0.52, 0.50, 0.49]
    welch = parity_stats.welch_difference(a, b)
    assert welch.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch.estimate == pytest.approx(sum(a) / 6 - sum(b) / 6)
    assert welch.low < welch.estimate < welch.high and not welch.excludes(0.0)
    far = parity_stats.welch_difference([0.30, 0.31, 0.29], [0.50, 0.52, 0.51])
    assert far.excludes(0.0) and far.p_value < 0.001


def test_spread_test_tells_a_wide_side_from_a_narrow_one():
    narrow = [0.50, 0.51, 0.52, 0.50, 0.51, 0.52, 0.50, 0.51, 0.52, 0.51]
    wide = [0.30, 0.60, 0.35, 0.65, 0.40, 0.55, 0.30, 0.62, 0.45, 0.58]
    assert parity_stats.spread_test(narrow, wide) < 0.01
    assert parity_stats.spread_test(narrow, [value + 0.1 for value in narrow]) > 0.9  # a shift is not a spread


def test_eval_sampling_se_by_hand():
    # problem 1: 4 of 8 right, unbiased per-sample variance 0.25 * 8/7; problem 2: 8 of 8, none
    expected = math.sqrt(0.25 * 8 / 7 / 8) / 2
    assert parity_stats.eval_sampling_se([4, 8], samples=8) == pytest.approx(expected)
    assert parity_stats.eval_sampling_se([0, 8, 8], samples=8) == 0.0
    with pytest.raises(ValueError, match="9 correct out of 8"):
        parity_stats.eval_sampling_se([9], samples=8)


def test_curve_band_leaves_out_missing_points_and_takes_each_step_over_the_seeds_that_reach_it():
    mean, low, high = parity_stats.curve_band({0: [1.0, 2.0, math.nan], 1: [3.0, 4.0, 5.0]})
    assert mean == [2.0, 3.0, 5.0] and low[2] == high[2] == 5.0  # one value at step 3: no band
    assert low[0] < 2.0 < high[0]
    mean, low, high = parity_stats.curve_band({0: [1.0], 1: [3.0, 2.0], 2: [5.0, 4.0, 7.0]})
    assert mean == [3.0, 3.0, 7.0] and low[1] < 3.0 < high[1] and low[2] == high[2] == 7.0


def test_seed_list():
    assert parity_vs_trl.seed_list("0-3") == [0, 1, 2, 3]
    assert parity_vs_trl.seed_list("2,5") == [2, 5]


def test_lockstep_seeds_are_cipos_own():
    """The TRL worker's --trl-sampling cipo reseeds with a copy of RolloutCallback._seed: they must agree."""
    for seed, step in [(0, 0), (3, 29), (9, 99)]:
        rank0 = SimpleNamespace(seed=seed, rank=0)
        assert parity_workers.cipo_sampling_seed(seed, step) == RolloutCallback._seed(rank0, step)


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_report_writes_table_and_plots(tmp_path):
    runs = [["initial", seed, 0, 0.40 + 0.01 * seed, 0.01] for seed in range(4)]
    runs += [["cipo", seed, step, 0.45 + 0.02 * seed, 0.01] for seed in range(4) for step in (2, 4)]
    runs += [["trl", seed, step, 0.50 + 0.001 * seed, 0.01] for seed in range(4) for step in (2, 4)]
    _write(tmp_path / "runs.csv", ["side", "seed", "step", "accuracy", "eval_se"], runs)
    fields = list(parity_report.CURVES)
    curves = [
        [side, seed, step, *[0.1 * step + seed] * len(fields)]
        for side in ("cipo", "trl")
        for seed in range(4)
        for step in (1, 2, 3, 4)
    ]
    _write(tmp_path / "curves.csv", ["side", "seed", "step", *fields], curves)
    text = parity_report.report(tmp_path)
    rows = text.split("\n\n")[0].splitlines()[2:]  # the accuracy table: one row per snapshot step
    assert [row.split(" | ")[0] for row in rows] == ["| 2", "| 4"]
    assert rows[0].split(" | ")[1].startswith("0.415 [")  # the initial policy: mean of 0.40 .. 0.43
    welch, paired = rows[0].split(" | ")[4:6]  # cipo - TRL: -0.05 + 0.019 x seed, mean -0.0215, both ways
    assert welch.startswith("-0.02") and paired.startswith("-0.02") and paired.endswith("] p 0.18")  # scipy ttest_rel
    assert "| 3 | 0.430 | 0.510 | 0.503 | 0.510 | 0.503 |" in text  # seed 3's row: initial, cipo/TRL @ 2 and 4
    assert (tmp_path / "table.md").read_text() == text
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_parity_verdict_needs_seeds_and_an_interval_that_excludes_zero():
    # the five seeds: cipo 0.476 (sd 0.064) vs TRL 0.517 (sd 0.009) at 30 steps
    cipo, trl = [0.416, 0.564, 0.406, 0.496, 0.496], [0.514, 0.527, 0.520, 0.518, 0.504]
    assert parity_stats.parity_verdict(cipo, trl).endswith("no difference beyond chance")
    assert "no verdict" in parity_stats.parity_verdict([0.30], [0.52])  # one unlucky seed reads as nothing
    far = parity_stats.parity_verdict([0.30, 0.31, 0.29], [0.50, 0.52, 0.51])
    assert "DIFFER beyond chance" in far and "cipo 0.300 [" in far


def test_lockstep_table_counts_the_steps_both_sides_sampled_alike():
    rows = []
    for side, rewards, grads in (
        ("cipo", [0.5, 0.25, 0.75], [0.2, 0.3, 0.1]),
        ("trl", [0.5, 0.25, 0.5], [0.2, 0.3003, 0.4]),
    ):
        for step, (reward, grad) in enumerate(zip(rewards, grads), start=1):
            rows.append({"side": side, "seed": "7", "step": str(step), "reward": str(reward), "completion_len": "40",
                         "grad_norm": str(grad), "update_norm": "0.05"})  # fmt: skip
    assert parity_report.lockstep_table(rows)[2] == "| 7 | 2 of 3 | 1.0e-03 | 0.0e+00 |"


def test_one_stream_sampling_continues_across_calls_and_leaves_the_global_rng_alone(monkeypatch):
    import torch

    from cipo.models.load import load_policy
    from cipo.rollout.engine import SamplingSettings
    from cipo.rollout.hf_engine import HFEngine

    model, tokenizer = load_policy("builtin")
    engine, settings = HFEngine(model, tokenizer), SamplingSettings(max_new_tokens=32)

    def texts(seed: int) -> list[str]:
        return [
            c.text
            for g in engine.generate(["Q:9+6+8-1-3+8-6\nA:", "Q:8-5+9-4+7-1-6\nA:"], 8, settings, seed)
            for c in g
        ]

    assert texts(5) == texts(5)  # as shipped: reseeded from the step's seed
    monkeypatch.setattr(HFEngine, "_generate_chunk", HFEngine._generate_chunk)  # restored after the test
    parity_workers.sample_on_one_stream(seed=5)
    before = torch.random.get_rng_state()
    first, second = texts(5), texts(5)
    assert first != second  # the stream went on
    assert torch.equal(torch.random.get_rng_state(), before)


def test_shipped_seeds_are_hashed_and_the_nearby_arm_restores_seeds_7_apart(monkeypatch):
    from cipo.callbacks.rollout import RolloutCallback

    monkeypatch.setattr(RolloutCallback, "_seed", RolloutCallback._seed)  # restored after the test
    callback = RolloutCallback.__new__(RolloutCallback)
    callback.seed, callback.rank = 3, 0
    shipped = [RolloutCallback._seed(callback, step) for step in range(4)]
    parity_workers.sample_with_nearby_seeds()
    nearby = [RolloutCallback._seed(callback, step) for step in range(4)]
    assert [b - a for a, b in zip(nearby, nearby[1:])] == [7, 7, 7]
    assert len(set(shipped)) == 4 and not set(shipped) & set(nearby)
    assert min(abs(a - b) for a in shipped for b in shipped if a != b) > 1000


def _finished_run(work: Path, side: str, seed: int, correct: dict[int, list[int]], steps: int) -> None:
    curve = [{name: 0.1 * step + seed for name in parity_vs_trl.CURVE_FIELDS} for step in range(1, steps + 1)]
    result = {"side": side, "seed": seed, "eval_seed": seed, "eval_cpu_s": 1.0, "accuracy": correct, "curve": curve}
    (work / f"{side}_seed{seed}").mkdir(parents=True)
    (work / f"{side}_seed{seed}" / "result.json").write_text(json.dumps(result))


def test_collect_pieces_a_study_from_runs_of_different_lengths(tmp_path):
    long, short = tmp_path / "long", tmp_path / "short"  # seeds 0-1 ran 4 steps, seeds 2-3 only 2
    for side in ("cipo", "trl"):
        for seed in (0, 1):
            _finished_run(long, side, seed, {2: [seed, 2], 4: [2, 2 - seed]}, steps=4)
        for seed in (2, 3):
            _finished_run(short, side, seed, {2: [seed - 2, 1]}, steps=2)
    results = parity_vs_trl.finished_runs([long, short])
    assert [(r["side"], r["seed"]) for r in results] == [(s, n) for s in ("cipo", "trl") for n in range(4)]
    args = argparse.Namespace(eval_samples=2, out=tmp_path / "out", trl_sampling="own")
    parity_vs_trl.write_outputs(results, args)
    text = (args.out / "table.md").read_text()
    # step 2: all four seeds, (seed + 2) / 4 and (seed - 1) / 4 correct: 0.5, 0.75, 0.25, 0.5; step 4: seeds 0-1
    assert "| 2 | - | 0.500 [" in text and "sd 0.204, n 4 |" in text and "| 4 | - | 0.875 [" in text
    # per-step values 0.1 x step + seed: steps 1-2 over all seeds (0.15 + 1.5), steps 3-4 over seeds 0-1 only
    assert "| rollout reward (accuracy), steps 1-2 | 1.6500 [" in text
    assert "| rollout reward (accuracy), steps 3-4 | 0.8500 [" in text
    assert "| 2 | - | 0.250 | 0.250 | - | - |" in text  # seed 2's row: no initial evaluation, no step 4
    _finished_run(tmp_path / "again", "trl", 3, {2: [0, 0]}, steps=2)
    with pytest.raises(SystemExit, match="trl seed 3 is finished in two work folders"):
        parity_vs_trl.finished_runs([long, short, tmp_path / "again"])


def test_collect_a_lockstep_study_whose_cipo_runs_went_on_longer(tmp_path):
    # TRL ran 2 lockstep steps against cipo runs of 4 steps (snapshots at 2 and 4): step 4 has cipo only
    work = tmp_path / "work"
    for seed in (0, 1):
        _finished_run(work, "cipo", seed, {2: [seed, 2], 4: [2, 2]}, steps=4)
        _finished_run(work, "trl", seed, {2: [seed, 2]}, steps=2)
    args = argparse.Namespace(eval_samples=2, out=tmp_path / "out", trl_sampling="cipo")
    parity_vs_trl.write_outputs(parity_vs_trl.finished_runs([work]), args)
    text = (args.out / "table.md").read_text()
    assert (
        "| 4 | - | 1.000 [1.000, 1.000] sd 0.000, n 2 | - | - | - | - | 0.000 |" in text
    )  # cipo only: no TRL, no test
    assert "| 0 | 2 of 2 | 0.0e+00 | 0.0e+00 |" in text  # the lockstep compares the steps both ran
    assert (args.out / "accuracy.png").stat().st_size > 10_000
