"""cipo-eval end to end with the tiny random policy and the HF engine: summary.json and
problems.jsonl agree with each other; run folders, checkpoints and overrides; early errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

import cipo.cli.evaluate
from cipo.cli.evaluate import evaluate, format_summary
from cipo.metrics import pass_at_k
from conftest import compose_eval, compose_train

SMALL = ["data.heldout.num_records=5", "rollout.max_new_tokens=24"]


def run_eval(tmp_path: Path, overrides: list[str]) -> tuple[dict, list[dict]]:
    with compose_eval(overrides, tmp_path=tmp_path) as cfg:
        summary = evaluate(cfg, overrides)
        out = Path(cfg.paths.output_dir)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    return summary, problems


def test_two_rounds_summary_and_problems_agree(tmp_path, tiny_policy_dir, capsys):
    overrides = [f"model.path={tiny_policy_dir}", *SMALL, "eval.samples=2", "eval.rounds=2", "eval.greedy=true"]
    summary, problems = run_eval(tmp_path, overrides)
    assert {"policy", "split", "num_problems", "settings", "metrics", "counts", "rounds", "time_s", "config"} <= set(
        summary
    )
    assert summary["num_problems"] == 5 and summary["settings"]["ks"] == [1, 2]
    assert summary["settings"]["max_new_tokens"] == 24 and summary["settings"]["engine"].endswith("HFEngine")
    metrics = summary["metrics"]
    assert {"accuracy", "pass@1", "pass@2", "frac_mixed", "greedy_accuracy", "second_attempt_accuracy"} <= set(metrics)
    assert [row["round"] for row in summary["rounds"]] == [0, 1, 2]

    assert len(problems) == 5 and len({p["id"] for p in problems}) == 5
    for p in problems:
        assert p["prompt"].startswith("Q:") and p["reference"].lstrip("-").isdigit()  # the problem and its gold answer
        assert p["n"] == 2 == len(p["verdicts"]) == len(p["statuses"]) == len(p["texts"])
        assert p["c"] == sum(p["verdicts"])
        assert p["attempt"]["source"] == "own" and p["attempt"]["text"] == p["texts"][0]
        assert [r["round"] for r in p["rounds"]] == [1, 2] and "greedy" in p
    # every figure of the summary is recomputable from problems.jsonl
    assert metrics["accuracy"] == pytest.approx(sum(p["c"] for p in problems) / 10)
    assert summary["counts"]["correct"] == sum(p["c"] for p in problems) and summary["counts"]["samples"] == 10
    for k in (1, 2):
        assert metrics[f"pass@{k}"] == pytest.approx(sum(pass_at_k(p["n"], p["c"], k) for p in problems) / 5)
    chains = [[p["attempt"]["success"]] + [r["success"] for r in p["rounds"]] for p in problems]
    for r, row in enumerate(summary["rounds"]):
        assert row["accuracy"] == pytest.approx(sum(chain[r] for chain in chains) / 5)
    assert metrics["greedy_accuracy"] == pytest.approx(sum(p["greedy"]["success"] for p in problems) / 5)
    printed = capsys.readouterr().out
    assert "pass@2" in printed and "round" in printed and format_summary(summary) in printed
    assert f"{metrics['accuracy']:.4f}  {summary['counts']['correct']}/10" in printed


def test_no_correction_and_no_texts(tmp_path, tiny_policy_dir):
    overrides = [f"model.path={tiny_policy_dir}", *SMALL, "eval.samples=2", "eval.correction=false"]
    summary, problems = run_eval(tmp_path, [*overrides, "eval.save_texts=false", "eval.max_problems=3"])
    assert summary["rounds"] == [] and "fix_rate" not in summary["metrics"]
    assert len(problems) == 3 and "texts" not in problems[0] and "attempt" not in problems[0]
    assert "prompt" not in problems[0] and "reference" in problems[0]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_policy_dir) -> tuple[Path, Path]:
    """A cipo-train-shaped run: its config (6 held-out problems, 24 new tokens), an exported
    policy, and a checkpoint holding *other* weights (also saved as a plain folder to compare)."""
    root = tmp_path_factory.mktemp("eval_run")
    run = root / "run"
    with compose_train(["data.heldout.num_records=6", "rollout.max_new_tokens=24"], model_path=tiny_policy_dir) as cfg:
        (run / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    shutil.copytree(tiny_policy_dir, run / "policy")
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    torch.manual_seed(1)
    for parameter in model.parameters():
        parameter.data += 0.3 * torch.randn_like(parameter)
    (run / "checkpoints").mkdir()
    state = {f"policy.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "global_step": 2, "state_dict": state}, run / "checkpoints" / "last.ckpt")
    shutil.copytree(tiny_policy_dir, root / "ckpt_weights")
    model.save_pretrained(root / "ckpt_weights")
    return run, root / "ckpt_weights"


def test_run_folder_uses_its_config_and_exported_policy(tmp_path, run_folder):
    run, _ = run_folder
    summary, problems = run_eval(tmp_path, [f"run_dir={run}", "eval.samples=2"])
    assert summary["policy"] == str(run / "policy") and summary["ckpt"] is None
    assert summary["num_problems"] == 6 and summary["settings"]["max_new_tokens"] == 24  # the run's settings
    summary, _ = run_eval(tmp_path / "b", [f"run_dir={run}", "eval.samples=2", "data.heldout.num_records=3"])
    assert summary["num_problems"] == 3  # the command line wins
    summary, _ = run_eval(
        tmp_path / "c", [f"run_dir={run}", "eval.samples=2", "data=arithmetic", "eval.max_problems=4"]
    )
    assert summary["config"]["data"]["heldout"]["num_records"] == 128  # a group choice takes the file


def test_checkpoint_weights_are_the_ones_evaluated(tmp_path, run_folder):
    run, ckpt_weights = run_folder
    from_ckpt, ckpt_problems = run_eval(tmp_path / "a", [f"run_dir={run}", "ckpt=last", "eval.samples=2"])
    assert from_ckpt["ckpt"] == str(run / "checkpoints" / "last.ckpt")
    plain, plain_problems = run_eval(
        tmp_path / "b",
        [f"model.path={ckpt_weights}", "data.heldout.num_records=6", "rollout.max_new_tokens=24", "eval.samples=2"],
    )
    assert ckpt_problems == plain_problems  # same weights, same seed: the same samples
    _, exported_problems = run_eval(tmp_path / "c", [f"run_dir={run}", "eval.samples=2"])
    assert [p["texts"] for p in exported_problems] != [p["texts"] for p in ckpt_problems]


@pytest.mark.parametrize(
    "override, match",
    [
        ("eval.samples=0", r"eval\.samples must be an integer >= 1"),
        ("eval.ks=[1,4]", r"eval\.ks=\[1, 4\]: every k must be an integer in \[1, eval\.samples=2\]"),
        ("eval.attempts=mine", r"eval\.attempts must be one of"),
        ("eval.split=test", r"eval\.split must be one of"),
        ("eval.rounds=0", r"eval\.correction=true needs eval\.rounds >= 1"),
    ],
)
def test_bad_options_fail_before_loading(override, match, tmp_path, monkeypatch):
    monkeypatch.setattr(cipo.cli.evaluate, "build_policy", lambda *a, **k: pytest.fail("loaded before checking"))
    with compose_eval(["eval.samples=2", override], tmp_path=tmp_path) as cfg:
        with pytest.raises(ValueError, match=match):
            evaluate(cfg, [override])


def test_supplied_attempts_on_a_data_set_without_them(tmp_path, tiny_policy_dir):
    overrides = [f"model.path={tiny_policy_dir}", *SMALL, "eval.samples=2", "eval.attempts=supplied"]
    with compose_eval(overrides, tmp_path=tmp_path) as cfg:
        with pytest.raises(ValueError, match=r"attempts=supplied needs record\.meta\['attempt'\].*attempts=own"):
            evaluate(cfg, overrides)


def test_run_folder_without_policy_suggests_a_checkpoint(tmp_path, run_folder):
    run, _ = run_folder
    bare = tmp_path / "bare"
    shutil.copytree(run / ".hydra", bare / ".hydra")
    with compose_eval([f"run_dir={bare}"], tmp_path=tmp_path) as cfg:
        with pytest.raises(FileNotFoundError, match="ckpt=last"):
            evaluate(cfg, [f"run_dir={bare}"])


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (scripts/setup.sh)")
def test_eval_with_the_vllm_engine(tmp_path, tiny_policy_dir, monkeypatch):
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    overrides = [f"model.path={tiny_policy_dir}", *SMALL, "rollout=vllm", "eval.samples=2", "eval.rounds=2"]
    summary, problems = run_eval(tmp_path, overrides)
    assert summary["settings"]["engine"].endswith("VLLMEngine")
    assert len(problems) == 5 and all(len(p["rounds"]) == 2 for p in problems)
    assert summary["metrics"]["accuracy"] == pytest.approx(sum(p["c"] for p in problems) / 10)
