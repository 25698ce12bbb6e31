"""The benchmark scripts' own logic (no timings asserted): step summaries, the coin-flip verifier and the
fixed-length random policies of bench_step.py, and one tiny bench_step run end to end (slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import bench_common  # noqa: E402
import bench_step  # noqa: E402


def test_step_summary_leaves_out_the_warm_up_step():
    ends = [(0.0, 0.0), (1.0, 0.5), (3.0, 1.5), (4.0, 2.0)]  # (wall, CPU) at the end of 4 steps
    summary = bench_common.step_summary(ends, {"generate": [9.0, 1.0, 1.0, 0.5], "backward": [9.0, 0.5, 0.5, 0.5]})
    assert summary["step_s"] == [1.0, 2.0, 1.0] and summary["cpu_s"] == [0.5, 1.0, 0.5]
    assert summary["median_step_s"] == 1.0 and summary["median_cpu_s"] == 0.5
    assert summary["shares"]["generate"] == pytest.approx(2.5 / 4) and summary["shares"]["backward"] == pytest.approx(
        1.5 / 4
    )
    assert summary["shares"]["other"] == pytest.approx(0.0)
    assert summary["phase_s"]["generate"] == 1.0  # median of the timed steps only


def test_coin_flip_verifier_is_deterministic_and_mixed():
    verify = bench_step.CoinFlipVerifier()
    texts = [f"completion {i}" for i in range(200)]
    first = [r.success for r in verify(texts, ["1"] * 200)]
    assert first == [r.success for r in verify(texts, ["1"] * 200)]
    assert 0.3 < sum(first) / 200 < 0.7


def test_smollm2_shape_has_the_real_models_parameter_count():
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):  # no memory: only the shapes
        model = AutoModelForCausalLM.from_config(bench_common.shaped_config("smollm2-135m"))
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # SmolLM2-135M, tied embeddings
    tokenizer = bench_common.padded_char_tokenizer(49152)
    assert len(tokenizer) == 49152 and tokenizer("Q:1+2\nA:")["input_ids"][:2] == tokenizer("Q:")["input_ids"]


def test_matmul_peak_is_measured_in_wall_and_cpu_seconds():
    wall, cpu = bench_step.matmul_peak(size=128, repeats=2)
    assert wall > 0 and cpu > 0


def test_random_policy_samples_exactly_the_requested_length(tmp_path):
    from cipo.models.load import load_policy
    from cipo.rollout.engine import SamplingSettings
    from cipo.rollout.hf_engine import HFEngine

    path, params = bench_step.random_policy("5M", 12, tmp_path / "policy")
    assert 4.5e6 < params < 6e6
    model, tokenizer = load_policy(path)
    groups = HFEngine(model, tokenizer).generate(["Q:1+2\nA:", "Q:3-1\nA:"], 3, SamplingSettings(max_new_tokens=12), 0)
    assert {len(c.token_ids) for group in groups for c in group} == {12}


def test_round_extras_pair_each_round_and_the_interval_is_a_t_interval():
    runs = {
        "grpo": [{"median_cpu_s": 1.0}, {"median_cpu_s": 2.0}, {"median_cpu_s": 1.0}],
        "cipo": [{"median_cpu_s": 1.5}, {"median_cpu_s": 3.4}, {"median_cpu_s": 1.6}],
    }
    extras = bench_step.round_extras(runs)
    assert extras == pytest.approx([0.5, 0.7, 0.6])
    # mean 0.6, sd 0.1, se 0.1 / sqrt(3), t(2 df, 0.975) = 4.302653: 0.6 +- 0.2484
    assert bench_step.mean_interval(extras) == "+60% [+35%, +85%] (3 rounds)"
    assert bench_step.mean_interval([0.5]) == "+50% (1 round)"


@pytest.mark.slow
def test_bench_step_runs_grpo_and_cipo(tmp_path, monkeypatch, capsys):
    """~5-10 s on 2 cores: one tiny configuration through cipo.cli.train for both algorithms."""
    out = tmp_path / "runs.json"
    argv = ["bench_step.py", "--sizes", "5M", "--groups", "4", "--lengths", "8", "--prompts", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(bench_step.tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    bench_step.main()
    assert list((tmp_path / "scratch").iterdir()) == []  # its runs and policies are removed when it ends
    printed = capsys.readouterr().out
    assert "| 5M | 4 | 8 | grpo |" in printed and "| 5M | 4 | 8 | cipo |" in printed
    assert "What the correction stream adds" in printed and out.is_file()
    assert "Training forward + backward" in printed and "| 5M | 4 | 8 | cipo | 5.14M |" in printed
    for line in ("| 5M | 4 | 8 | cipo | 5.14M | ", "| 5M | 4 | 8 | grpo | 5.14M | "):
        assert sum(row.startswith(line) for row in printed.splitlines()) == 2  # per loss and per processed token
    (config,) = json.loads(out.read_text())
    for runs in config["runs"].values():
        for run in runs:  # the forward also runs each prompt once, so it processes more than the loss tokens
            assert len(run["processed_tokens"]) == len(run["trained_tokens"])
            assert all(p > t for p, t in zip(run["processed_tokens"], run["trained_tokens"], strict=True))
