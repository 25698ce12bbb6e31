"""The built-in policy's build script: a few-step build writes a loadable, self-describing folder."""

import importlib.util
import json
import random
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.tasks.arithmetic import evaluate, random_expression, solution
from cipo.verifiers.exact_answer import verify_exact_integer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_builtin_policy.py"


@pytest.fixture(scope="module")
def build_script():
    spec = importlib.util.spec_from_file_location("build_builtin_policy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corrupted_solutions_are_wrong_or_unfinished(build_script):
    rng = random.Random(0)
    wrong = 0
    for _ in range(300):
        expression = random_expression(rng, rng.randint(1, 6), 9, 30)
        attempt = build_script.corrupted_solution(expression, rng)
        assert attempt != solution(expression)
        result = verify_exact_integer(attempt, str(evaluate(expression)))
        wrong += not result.success
    # a slip can cancel out (e.g. +1 then a later clamp), but nearly all must fail
    assert wrong >= 280


def test_example_stream_is_deterministic_and_mixes_formats(build_script):
    from cipo.tasks.arithmetic import ArithmeticTask

    task = ArithmeticTask(levels=(1, 2, 3))
    first = [build_script.ExampleStream(task, 3, 0.5).next() for _ in range(1)]
    stream_a, stream_b = build_script.ExampleStream(task, 3, 0.5), build_script.ExampleStream(task, 3, 0.5)
    pairs_a = [stream_a.next() for _ in range(200)]
    assert pairs_a == [stream_b.next() for _ in range(200)]
    assert first[0] == pairs_a[0]
    corrections = [context for context, _ in pairs_a if "\nCheck:\nA:" in context]
    assert 60 < len(corrections) < 140
    for _context, target in pairs_a:
        assert target.endswith(f"Ans:{target.split('=')[-1].split(chr(10))[0]}")


def test_tiny_build_writes_a_loadable_policy_and_report(build_script, tmp_path):
    out = tmp_path / "policy"
    report = build_script.main(
        [
            "--out",
            str(out),
            "--architecture",
            "tiny",
            "--max-steps",
            "4",
            "--check-every",
            "2",
            "--eval-problems",
            "4",
            "--batch-size",
            "8",
            "--own-attempts-from",
            "2",
            "--own-attempts-every",
            "2",
        ]
    )
    assert report["steps"] == 4
    assert {"accuracy", "greedy_accuracy", "frac_mixed", "chance_accuracy", "pass@8"} <= set(report)
    saved = json.loads((out / "warm_start_report.json").read_text())
    assert saved["steps"] == 4
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = "Q:4+3\nA:4+3=7\nAns:7"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.tie_word_embeddings
