"""The verifier bench runs end to end on a few samples and reports canonical HumanEval passes."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_verifiers.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_verifiers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_math_samples_are_half_right_and_include_hard_ones():
    completions, golds = _load().math_samples(200, hard_fraction=0.1)
    assert len(completions) == len(golds) == 200
    assert 5 <= sum("10^{10^{10}}" in c or "!" in c or "2^{2^" in c for c in completions) <= 40


def test_bench_runs_small(capsys):
    _load().main(["--math-samples", "10", "--hard-fraction", "0", "--code-problems", "3", "--num-workers", "1"])
    out = capsys.readouterr().out
    assert "samples/s" in out and "3/3 pass" in out and "FAIL" not in out
