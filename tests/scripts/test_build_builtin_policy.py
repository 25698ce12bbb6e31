"""The built-in policy's build script: a few-step build writes a loadable, self-describing folder."""

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from cipo.tasks.arithmetic import evaluate, random_expression, solution
from cipo.verifiers.exact_answer import verify_exact_integer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_builtin_policy.py"
sys.path.insert(0, str(SCRIPT.parent))  # the script imports its sibling warm_start_examples


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
    from warm_start_examples import ArithmeticCurriculum

    task = ArithmeticCurriculum(ArithmeticTask(levels=(1, 2, 3)))
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


def test_missing_operand_stream_mixes_plain_inline_check_and_correction_examples():
    from cipo.tasks.missing_operand import MissingOperandTask, chain_text, guess_of
    from warm_start_examples import ExampleStream, MissingOperandCurriculum

    stream = ExampleStream(MissingOperandCurriculum(MissingOperandTask()), 0, 0.3)
    pairs = [stream.next() for _ in range(400)]
    text = lambda target: target if isinstance(target, str) else "".join(t for t, _ in target)  # noqa: E731
    honest = [(c, t) for c, t in pairs if not isinstance(t, str)]  # a wrong attempt, trained but its guess
    inline = [(c, t) for c, t in pairs if isinstance(t, str) and t.startswith("\nCheck:")]  # attempt as context
    corrections = [(c, t) for c, t in pairs if c.endswith("\nCheck:")]
    plain = [(c, t) for c, t in pairs if c.endswith("\nA:") and isinstance(t, str)]
    assert len(honest) + len(inline) + len(corrections) + len(plain) == 400
    assert 60 < len(honest) + len(inline) < 160 and 80 < len(corrections) < 160  # 0.7 * 0.4 and 0.3 of 400
    assert len(honest) > len(inline)  # faithful chains (3 in 5 of the wrong attempts) are trained
    for context, segments in honest:
        untrained = [t for t, trained in segments if not trained]
        full = text(segments)
        first, check = full.split("\nCheck:")
        assert len(untrained) == 1 and untrained[0] == str(guess_of(first))  # only the wrong guess
        assert not verify_exact_integer(first, full.split("Ans:")[-1]).success
        assert first == chain_text(*_problem(context), guess_of(first))  # the chain after it is honest
    for context, target in inline:  # a slipped or cut-off attempt is context; only the check is trained
        attempt = context.split("\nA:", 1)[1]
        assert not verify_exact_integer(attempt, target.split("Ans:")[-1]).success
    for _context, target in pairs:  # every target ends in the right answer
        reference = text(target).split("Ans:")[-1]
        assert verify_exact_integer(text(target), reference).success


def _problem(context: str) -> tuple[str, int]:
    """(full chain, hidden position) of a missing-operand prompt."""
    from cipo.tasks.arithmetic import evaluate

    hidden = context.split("Q:")[1].split("=")[0]
    for digit in range(1, 10):
        expression = hidden.replace("?", str(digit))
        if str(evaluate(expression)) == context.split("=")[1].split("\n")[0]:
            return expression, hidden.split("?")[0].count("+") + hidden.split("?")[0].count("-")
    raise AssertionError(context)


def test_wrong_guess_attempts_are_wrong():
    from cipo.tasks.missing_operand import MissingOperandTask, answer_of, random_problem
    from warm_start_examples import wrong_guess_attempt

    rng = random.Random(0)
    for _ in range(300):
        expression, position = random_problem(rng, MissingOperandTask())
        attempt = wrong_guess_attempt(expression, position, rng)
        assert not verify_exact_integer(attempt, str(answer_of(expression, position))).success


def test_tiny_missing_operand_build_reports_inline_checks(build_script, tmp_path):
    tiny = "--architecture tiny --max-steps 2 --check-every 2 --eval-problems 4 --batch-size 8".split()
    report = build_script.main(["--task", "missing_operand", "--out", str(tmp_path / "p"), *tiny])
    assert report["steps"] == 2 and "frac_inline_check" in report and report["args"]["levels"] == "1,2,3,4"
    with pytest.raises(SystemExit):  # the arithmetic task has no inline checks to ask for
        build_script.main(["--inline-check-share", "0.5", "--out", str(tmp_path / "q"), "--max-steps", "1"])


def test_collate_leaves_untrained_segments_out_of_the_loss(build_script, built_tokenizer):
    batch = build_script.collate([("Q:", (("ab", True), ("c", False), ("d", True))), ("Q:", "abcd")], built_tokenizer)
    eos = built_tokenizer.eos_token_id
    assert batch["input_ids"][0].tolist() == batch["input_ids"][1].tolist()  # the same row either way
    ids = built_tokenizer("abcd", add_special_tokens=False)["input_ids"]
    assert batch["labels"][0].tolist() == [-100, -100, ids[0], ids[1], -100, ids[3], eos]
    assert batch["labels"][1].tolist() == [-100, -100, *ids, eos]
