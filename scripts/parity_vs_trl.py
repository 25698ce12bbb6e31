"""Does cipo's GRPO learn as well as TRL's GRPOTrainer on the same work? Many seeds, both sides, one evaluation.

    python scripts/parity_vs_trl.py --seeds 0-9 --steps 100 --snapshots 30 100 --out docs/parity/before
    python scripts/parity_vs_trl.py --seeds 0-1 --steps 4 --snapshots 2 4 --eval-problems 16 --out /tmp/p  # a look
    python scripts/parity_report.py docs/parity/before      # table and plots again, from the CSVs

The work is ``bench_vs_trl.py``'s (the same options, prompts, optimizer and loss on both sides; see its
docstring). For every seed, each side trains ``--steps`` RL steps once and saves its policy after each
of ``--snapshots``; a snapshot is then evaluated in cipo's venv by ``bench_common.heldout_correct``
(``--eval-problems`` held-out problems x ``--eval-samples``, sampling seed ``bench_common.eval_seed(seed)``,
the same for both sides of a seed, and the initial policy is evaluated with each seed's evaluation seed).
Per step, both sides record the rollout reward, completion length (tokens, EOS included), the share of
completions cut at ``--max-new-tokens``, the policy entropy on the completion tokens, the gradient norm
before clipping and the update norm (L2 norm of the parameter change of the optimizer step).

Runs are fresh processes with ``--threads`` torch threads, ``--jobs`` at a time, cipo and TRL of one seed
side by side. A run whose results are already in the work folder is not run again (an interrupted
study resumes). Written to ``--out``: ``runs.csv`` (one row per run and snapshot: held-out accuracy and
its sampling standard error, CPU and wall seconds), ``curves.csv`` (one row per run and step), then
``parity_report.py``'s table and plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_common import ROOT, eval_seed, load_average
from bench_vs_trl import TRL_SPEC, add_work_arguments, ensure_trl_venv, prompt_schedule
from parity_workers import CURVE_FIELDS, run_worker

COMPOSING = threading.Lock()  # Hydra's compose is process-global: two jobs' prompt schedules one at a time

SIDES = ("cipo", "trl")


# --- orchestration (cipo's venv) ------------------------------------------------------------


def run_process(python: Path, args, worker: str, seed: int, folder: Path, extra: list[str]) -> dict[str, float]:
    """One worker in a fresh process (output to ``folder/<worker>.log``); its wall and CPU seconds."""
    command = [str(python), str(Path(__file__).resolve()), "--worker", worker, "--seed", str(seed)]
    command += [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in WORK_OPTIONS]
    command += ["--snapshots", *map(str, args.snapshots), "--run-dir", str(folder), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    started = time.perf_counter()
    with open(folder / f"{worker}.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU time, whatever else runs
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {worker} worker failed; its log: {folder / f'{worker}.log'}")
    return {f"{worker}_wall_s": time.perf_counter() - started, f"{worker}_cpu_s": usage.ru_utime + usage.ru_stime}


def run_job(side: str, seed: int, args, trl_python: Path) -> dict:
    """Train ``side`` for ``seed`` and evaluate its snapshots (``initial``: evaluate the initial policy only)."""
    folder = args.work / f"{side}_seed{seed}"
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    load, times = load_average(), {}
    if side == "initial":
        policies, steps = ["builtin"], [0]
    else:
        extra = []
        if side == "trl":
            schedule = folder / "schedule.json"
            with COMPOSING:
                records = prompt_schedule(argparse.Namespace(**{**vars(args), "seed": seed}))
            schedule.write_text(json.dumps(records))
            extra = ["--schedule", str(schedule)]
        python = trl_python if side == "trl" else Path(sys.executable)
        times.update(run_process(python, args, side, seed, folder, extra))
        policies, steps = [str(folder / f"policy_step{step}") for step in args.snapshots], args.snapshots
    times.update(
        run_process(
            Path(sys.executable),
            args,
            "eval",
            seed,
            folder,
            ["--eval-seed", str(eval_seed(seed)), "--policies", *policies],
        )
    )
    evals = json.loads((folder / "eval.json").read_text())
    result = {
        "side": side,
        "seed": seed,
        "eval_seed": eval_seed(seed),
        "load": f"{load} -> {load_average()}",
        **times,
        "accuracy": {step: e["correct"] for step, e in zip(steps, evals, strict=True)},
        "curve": json.loads((folder / f"{side}.json").read_text()) if side != "initial" else [],
    }
    done.write_text(json.dumps(result))
    accuracies = ", ".join(
        f"step {s} {sum(c) / (len(c) * args.eval_samples):.3f}" for s, c in result["accuracy"].items()
    )
    print(f"{side} seed {seed}: {accuracies}; {times}; load {result['load']}", flush=True)
    return result


def csv_rows(results: list[dict], eval_samples: int) -> tuple[list[dict], list[dict]]:
    """The rows of ``runs.csv`` (one per run and snapshot) and ``curves.csv`` (one per run and step)."""
    from parity_stats import eval_sampling_se

    runs, curves = [], []
    for r in results:
        train = {"train_cpu_s": r.get(f"{r['side']}_cpu_s", 0.0), "train_wall_s": r.get(f"{r['side']}_wall_s", 0.0)}
        for step, correct in r["accuracy"].items():
            runs.append(
                {"side": r["side"], "seed": r["seed"], "step": step,
                 "accuracy": round(sum(correct) / (len(correct) * eval_samples), 5),
                 "eval_se": round(eval_sampling_se(correct, eval_samples), 5), "problems": len(correct),
                 "samples": eval_samples, "eval_seed": r["eval_seed"],
                 **{name: round(value, 1) for name, value in train.items()}, "eval_cpu_s": round(r["eval_cpu_s"], 1)}
            )  # fmt: skip
        for step, row in enumerate(r["curve"], start=1):
            curves.append(
                {"side": r["side"], "seed": r["seed"], "step": step, **{k: f"{row[k]:.6g}" for k in CURVE_FIELDS}}
            )
    return runs, curves


def finished_runs(folders: list[Path]) -> list[dict]:
    """The results of every finished run (``<side>_seed<n>/result.json``) in these work folders."""
    results: dict[tuple[str, int], dict] = {}
    for folder in folders:
        for path in sorted(folder.glob("*_seed*/result.json")):
            result = json.loads(path.read_text())
            key = (result["side"], result["seed"])
            if key in results:
                raise SystemExit(f"{key[0]} seed {key[1]} is finished in two work folders (the second: {path})")
            results[key] = result
    if not results:
        raise SystemExit(f"no finished runs (*_seed*/result.json) in {[str(f) for f in folders]}")
    return [results[key] for key in sorted(results)]


def write_outputs(results: list[dict], args) -> None:
    """``runs.csv``, ``curves.csv`` and the report under ``--out``."""
    import parity_report

    runs, curves = csv_rows(results, args.eval_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "runs.csv", runs)
    write_csv(args.out / "curves.csv", curves)
    parity_report.report(args.out, lockstep=args.trl_sampling == "cipo")


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


WORK_OPTIONS = ("threads", "prompts", "group", "max_new_tokens", "micro_batch", "lr", "steps", "eval_problems")
WORK_OPTIONS += ("eval_samples", "trl_sampling", "cipo_sampling")


def seed_list(text: str) -> list[int]:
    """'0-9' -> [0..9]; '0,3,5' -> [0, 3, 5]."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_work_arguments(parser)
    parser.add_argument("--steps", type=int, default=100, help="RL steps per run")
    parser.add_argument("--snapshots", type=int, nargs="+", default=[30, 100], help="RL steps to evaluate at")
    parser.add_argument("--seeds", type=seed_list, default=list(range(10)), help="'0-9' or '0,1,5'")
    parser.add_argument("--eval-problems", type=int, default=256)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument(
        "--trl-sampling",
        choices=("own", "cipo", "fresh"),
        default="own",
        help="TRL's sampling RNG: its own global stream, or cipo's per-step seeds (then both sides draw the same "
        "completions as long as their weights agree: a lockstep check of everything after sampling), or its own "
        "stream seeded with the run's seed + 1000 (the same prompts and evaluation: a replication on new random "
        "numbers)",
    )
    parser.add_argument(
        "--cipo-sampling",
        choices=("reseed", "stream", "nearby"),
        default="reseed",
        help="cipo's sampling RNG: reseeded from each step's hashed seed (as shipped), one stream seeded once (as "
        "TRL), or reseeded from the unhashed seeds 7 apart (cipo before the fix: docs/parity.md's 'before' arm)",
    )
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES), help="the trainers to run")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="another study's work folder: take finished runs of the sides not in --sides "
        "(without it, such a study only runs; --collect joins it with the other side's runs)",
    )
    parser.add_argument(
        "--collect",
        type=Path,
        nargs="+",
        help="run nothing: gather the finished runs of these work folders into --out (a study cut short, or one "
        "pieced together from studies that ran different seeds or lengths)",
    )
    parser.add_argument("--out", type=Path, required=False, help="folder for runs.csv, curves.csv, table, plots")
    parser.add_argument("--work", type=Path, help="run folders (default: logs/parity/<out name>, git-ignored)")
    parser.add_argument("--trl-venv", type=Path, default=ROOT / ".bench" / "trl-venv")
    parser.add_argument("--trl-spec", default=TRL_SPEC)
    for hidden in ("--worker", "--run-dir", "--schedule", "--eval-seed"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--policies", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        run_worker(args)
        return
    if args.out is None:
        parser.error("--out is required")
    if args.collect:
        write_outputs(finished_runs(args.collect), args)
        return
    if max(args.snapshots) > args.steps:
        parser.error(f"--snapshots {args.snapshots} beyond --steps {args.steps}")
    args.work = args.work or ROOT / "logs" / "parity" / args.out.name
    trl_python = ensure_trl_venv(args.trl_venv, args.trl_spec)
    if args.reuse:  # e.g. TRL's runs, when only cipo's sampling changed
        for side, seed in [(side, seed) for side in SIDES if side not in args.sides for seed in args.seeds]:
            (args.work / f"{side}_seed{seed}").mkdir(parents=True, exist_ok=True)
            shutil.copy(args.reuse / f"{side}_seed{seed}" / "result.json", args.work / f"{side}_seed{seed}")
    sides = [side for side in SIDES if side in args.sides]
    jobs = [(side, seed) for seed in args.seeds for side in sides] + [("initial", seed) for seed in args.seeds]
    print(
        f"{len(args.seeds)} seeds x {SIDES} x {args.steps} steps, snapshots {args.snapshots}, "
        f"{args.eval_problems} held-out problems x {args.eval_samples}, {args.jobs} runs at a time, "
        f"{args.threads} thread(s) each; work in {args.work}; load {load_average()}",
        flush=True,
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: run_job(*job, args, trl_python), jobs))
    print(f"all runs done in {time.perf_counter() - started:.0f} s wall; load {load_average()}", flush=True)
    if set(args.sides) != set(SIDES) and not args.reuse:
        print(f"only {args.sides} ran: put its work folder with the other side's in --collect for the report")
        return
    write_outputs(results, args)


if __name__ == "__main__":
    main()
