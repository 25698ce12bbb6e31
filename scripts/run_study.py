"""Run a study: every task x configuration x seed of its spec that is not done yet.

    python scripts/run_study.py docs/results/builtin/study.yaml              # the missing runs, 2 at a time
    python scripts/run_study.py SPEC --plan                                  # each run's state and command
    python scripts/run_study.py SPEC --parallel 4 --seeds 1,2 --configs grpo,cipo
    python scripts/run_study.py SPEC --export-only                           # refresh CSVs from run folders
    python scripts/study_report.py docs/results/builtin                      # then the tables and plots

The spec (``cipo.reporting.study``) lives in the study's results folder, which also receives one
``<task>__<config>__seed<N>.csv`` (curves) + ``.json`` (what ran, what it cost) per run; run
folders go to ``logs/study/<name>/<run id>`` (``--logs``). For each selected run:

    done     its results cover the spec's steps: left alone
    export   its folder logged every step but the results are missing or stale: exported only
    resume   its folder holds a checkpoint: cipo-train resume=<folder> trainer.max_epochs=<steps>
    fresh    otherwise: cipo-train <overrides> hydra.run.dir=<folder> ckpt_path=auto

At most ``--parallel`` runs at once (each with num_threads=1 and OMP_NUM_THREADS=1), seed-major,
so a study stopped half-way has whole seeds to pair. Each run is exported as soon as it ends
(finished, failed or stopped). Its wall and CPU seconds add up over sittings: each run folder keeps
a cost ledger (``study_cost.json``) that the runner updates every ``LEDGER_EVERY_S`` while the run
works (psutil), so a runner killed with the machine loses at most that much of a run's cost. Ctrl-C or SIGTERM:
the running jobs get SIGTERM (each writes a checkpoint and stops), are exported, and the next
invocation resumes them. Extra arguments are Hydra overrides for every launched run (fresh and
resumed), e.g. a rollout engine for this machine. Exit status 0 when every selected run is done.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
# This checkout's sources, for the runner and (PYTHONPATH) for every run it starts: a study runs
# the code it is committed with, whatever the environment's editable install points at.
sys.path.insert(0, str(REPO / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from cipo.checkpointing.resume import CHECKPOINT_FOLDER, latest_checkpoint  # noqa: E402
from cipo.reporting.curves_csv import steps_completed  # noqa: E402
from cipo.reporting.runs import read_scalars  # noqa: E402
from cipo.reporting.study import (  # noqa: E402
    PlannedRun,
    StudySpec,
    load_spec,
    plan_runs,
    run_overrides,
    sequences_per_step,
)
from cipo.reporting.study_results import (  # noqa: E402
    cost_before,
    export_run,
    is_complete,
    read_meta,
    write_ledger,
)

POLL_S = 2.0
LEDGER_EVERY_S = 30.0
STOP_GRACE_S = 600  # a stopped run finishes its step and writes a checkpoint first


def run_state(planned: PlannedRun, steps: int) -> str:
    """done | export | resume | fresh (see the module docstring)."""
    if is_complete(planned, steps):
        return "done"
    if latest_checkpoint(planned.run_dir / CHECKPOINT_FOLDER) is None:
        return "fresh"
    scalars = read_scalars(planned.run_dir)
    validated = "val/accuracy" not in scalars or steps in scalars["val/accuracy"]  # (validation may be off)
    return "export" if steps_completed(scalars) >= steps and validated else "resume"


def same_run(overrides) -> list[str]:
    """The overrides that make a run what it is (more steps extend a run: they do not change it)."""
    return [o for o in overrides if not o.startswith("trainer.max_epochs=")]


def command(planned: PlannedRun, state: str, steps: int, train: list[str], extra: list[str]) -> list[str]:
    if state == "resume":
        return [*train, f"resume={planned.run_dir}", f"trainer.max_epochs={steps}", *extra]
    return [*train, *planned.overrides, *extra, f"hydra.run.dir={planned.run_dir}", "ckpt_path=auto"]


def check_configs(spec: StudySpec, extra: list[str]) -> dict[tuple[str, str], int]:
    """Compose every task x configuration once (a bad override fails here, before any run);
    returns the sequences per RL step of each."""
    sequences = {}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for task in spec.tasks:
            for config in spec.configs:
                overrides = [*run_overrides(spec, task, config, spec.seeds[0]), *extra]
                try:
                    cfg = compose(config_name="train", overrides=overrides)
                except Exception as error:  # Hydra's errors name the override; say which pair it was
                    raise SystemExit(
                        f"task {task!r} x config {config!r}: {overrides} do not compose: {error}"
                    ) from None
                algorithm = OmegaConf.to_container(cfg.algorithm, resolve=True)
                sequences[task, config] = sequences_per_step(int(cfg.data.batch_size), algorithm)
    return sequences


def provenance() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit + ("-dirty" if dirty else "")}


@dataclass
class Job:
    planned: PlannedRun
    process: subprocess.Popen
    started: float
    log: object
    before: dict[str, float]  # the run's cost before this invocation (cost_before)
    ledger_written: float = 0.0

    def cost(self, cpu_s: float) -> dict[str, float]:
        """The run's whole cost with this invocation at ``cpu_s`` CPU seconds so far."""
        wall_s = time.monotonic() - self.started
        return {"wall_s": self.before["wall_s"] + wall_s, "cpu_s": self.before["cpu_s"] + cpu_s}


def running_cpu_s(pid: int) -> float | None:
    """CPU seconds of a live process and its reaped children (None once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system + times.children_user + times.children_system


def update_ledger(job: Job) -> None:
    """Record the run's cost so far in its folder (at most every ``LEDGER_EVERY_S``)."""
    now = time.monotonic()
    if now - job.ledger_written < LEDGER_EVERY_S or not job.planned.run_dir.is_dir():
        return
    cpu_s = running_cpu_s(job.process.pid)
    if cpu_s is not None:
        write_ledger(job.planned.run_dir, job.cost(cpu_s))
        job.ledger_written = now


def launch(planned: PlannedRun, argv: list[str], logs: Path) -> Job:
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"{planned.run_id}.out", "a")  # noqa: SIM115  (closed when the job ends)
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n")
    log.flush()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    before = cost_before(planned)  # a run killed before its first checkpoint still cost what its ledger says
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Job(planned, process, time.monotonic(), log, before)


def reap(job: Job) -> tuple[int, float] | None:
    """(exit code, CPU seconds) once the job's process has ended; None while it runs.

    ``os.wait4`` gives the child's own resource usage (Popen's wait does not), so the job's
    returncode is set here by hand and Popen never waits for it again.
    """
    pid, status, usage = os.wait4(job.process.pid, os.WNOHANG)
    if pid == 0:
        return None
    job.process.returncode = os.waitstatus_to_exitcode(status)
    return job.process.returncode, usage.ru_utime + usage.ru_stime


def finish(job: Job, code: int, cpu_s: float, spec: StudySpec, stamp: dict) -> str:
    job.log.close()
    wall_s, cost = time.monotonic() - job.started, job.cost(cpu_s)
    if job.planned.run_dir.is_dir():
        write_ledger(job.planned.run_dir, cost)
    try:
        meta = export_run(job.planned, spec.steps, cost, stamp)
    except FileNotFoundError as error:
        return f"exit {code}, nothing to export ({error}); see {job.log.name}"
    state = "complete" if meta["complete"] else f"{meta['completed_steps']}/{spec.steps} steps"
    return (
        f"exit {code}, {state}, {wall_s:.0f} s wall, {cpu_s:.0f} s CPU this time "
        f"({cost['wall_s']:.0f} / {cost['cpu_s']:.0f} in all) -> {job.planned.csv_path}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="the study spec (docs/results/<study>/study.yaml)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every launched run")
    parser.add_argument("--results", help="where the CSVs go (default: the spec's folder)")
    parser.add_argument("--logs", help="run folders (default: logs/study/<name>)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    parser.add_argument("--tasks", help="comma-separated subset of the spec's tasks")
    parser.add_argument("--configs", help="comma-separated subset of the spec's configs")
    parser.add_argument("--seeds", help="comma-separated subset of the spec's seeds")
    parser.add_argument("--plan", action="store_true", help="print each run's state and command; run nothing")
    parser.add_argument("--export-only", action="store_true", help="export run folders that exist; launch nothing")
    parser.add_argument("--train-command", help="how to start cipo-train (default: cipo-train next to this Python)")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error("--parallel must be >= 1")
    spec_path = Path(args.spec)
    spec = load_spec(spec_path)
    results = Path(args.results) if args.results else spec_path.parent
    logs = Path(args.logs) if args.logs else REPO / "logs" / "study" / spec.name
    selected = plan_runs(spec, logs.resolve(), results.resolve())
    for key, names in (("task", args.tasks), ("config", args.configs), ("seed", args.seeds)):
        if names:
            wanted = set(names.split(","))
            known = {str(getattr(p, key)) for p in selected}
            if wanted - known:
                parser.error(f"--{key}s {sorted(wanted - known)} not in the spec ({sorted(known)})")
            selected = [p for p in selected if str(getattr(p, key)) in wanted]
    if args.train_command:
        train = shlex.split(args.train_command)
    else:
        found = Path(sys.executable).parent / "cipo-train"
        train = [str(found)] if found.is_file() else [shutil.which("cipo-train") or "cipo-train"]

    sequences = check_configs(spec, args.overrides)
    for (task, config), count in sequences.items():
        print(f"{task} / {config}: {count} sequences per RL step")
    states = {p.run_id: run_state(p, spec.steps) for p in selected}
    for planned in selected:  # the spec changed under results that exist: say so, never redo silently
        meta = read_meta(planned.meta_path)
        if meta and same_run(meta.get("overrides") or []) != same_run(planned.overrides):
            print(
                f"warning: {planned.meta_path.name} was made with other overrides ({meta.get('overrides')}); "
                f"delete it, its CSV and {planned.run_dir} to redo the run with the spec's",
                file=sys.stderr,
            )
    if args.plan:
        for planned in selected:
            state = states[planned.run_id]
            shown = (
                ""
                if state in ("done", "export")
                else shlex.join(command(planned, state, spec.steps, train, args.overrides))
            )
            print(f"{state:<7} {planned.run_id}  {shown}")
        return 0

    stamp = provenance()
    for planned in selected:
        if states[planned.run_id] == "export" or (
            args.export_only and planned.run_dir.is_dir() and states[planned.run_id] != "done"
        ):
            try:
                export_run(planned, spec.steps, None, stamp)
                states[planned.run_id] = "done" if is_complete(planned, spec.steps) else states[planned.run_id]
                print(f"exported {planned.run_id}")
            except FileNotFoundError as error:
                print(f"not exported {planned.run_id}: {error}", file=sys.stderr)
    if args.export_only:
        return 0
    queue = [p for p in selected if states[p.run_id] in ("fresh", "resume")]
    print(f"{len(selected) - len(queue)} of {len(selected)} runs done; {len(queue)} to run, {args.parallel} at a time")

    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    running: list[Job] = []
    failed = 0
    stop_sent = 0.0
    while queue or running:
        if stopping and not stop_sent:
            queue.clear()
            for job in running:
                os.killpg(job.process.pid, signal.SIGTERM)
            stop_sent = time.monotonic()
            print(f"stopping: SIGTERM to {len(running)} runs (each writes a checkpoint); rerun to resume", flush=True)
        if stop_sent and time.monotonic() - stop_sent > STOP_GRACE_S:
            for job in running:
                os.killpg(job.process.pid, signal.SIGKILL)
        while queue and len(running) < args.parallel and not stopping:
            planned = queue.pop(0)
            state = run_state(planned, spec.steps)
            argv = command(planned, state, spec.steps, train, args.overrides)
            print(f"start {planned.run_id} ({state})", flush=True)
            running.append(launch(planned, argv, logs))
        for job in list(running):
            ended = reap(job)
            if ended is None:
                update_ledger(job)
            else:
                running.remove(job)
                code, cpu_s = ended
                failed += code != 0
                print(f"end   {job.planned.run_id}: {finish(job, code, cpu_s, spec, stamp)}", flush=True)
        time.sleep(POLL_S if running else 0)
    left = [p.run_id for p in selected if not is_complete(p, spec.steps)]
    print(
        f"{len(selected) - len(left)} of {len(selected)} selected runs done" + (f"; not done: {left}" if left else "")
    )
    if stopping:
        return 130
    return 0 if not left and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
