"""Where a run resumes from: ``ckpt_path`` values and ``cipo-train resume=<run folder>``.

Every ``cipo-train`` launch makes a new timestamped run folder, so "resume the run that was
killed" has to name that folder. ``resume=<run folder>`` turns the command line into one that
re-opens the run's own saved config (``<run>/.hydra/config.yaml``, or the newest resume's),
writes into the same folder (``hydra.run.dir``) and loads the newest checkpoint there
(``ckpt_path=auto``), so the checkpoints, the TensorBoard curves and the exported policy
continue in one place. Overrides given next to it (``trainer.max_epochs=200``) apply on top of
the saved config. Hydra's record of the resume (its config, overrides, hydra.yaml) goes to
``<run>/.hydra/resumes/<time to the microsecond>_<pid>/``: the run's own ``.hydra/overrides.yaml`` stays the one
it was launched with, which is what ``compare_runs`` groups runs by.

``ckpt_path`` values: ``null`` (start fresh), ``auto`` (the newest checkpoint of this run
folder if there is one, else start fresh: what a requeued cluster job wants), ``last`` (the
newest checkpoint of this run folder, which must exist) or a checkpoint file. "Newest" is
``last.ckpt``, else the newest ``*.ckpt``, skipping (with a warning naming both files) any that
is truncated or not a checkpoint (``checkpoint_problem``); an unreadable file named explicitly
is an error.

A resume, in the order ``cipo-train`` runs it (all of it in this package):
  1. ``resume_arguments``: ``resume=<run>`` -> the saved config, the same folder, ``ckpt_path=auto``;
  2. ``resolve_ckpt_path``: which checkpoint file ``trainer.fit`` loads;
  3. ``continue_logs``: cut the TensorBoard events logged after that checkpoint was written
     (``event_files.py``; the time stamp is ``run_state.read_logged_until``);
  4. Lightning restores model, optimizer, loops, callbacks and the prompt sampler; ``RunState``
     (``run_state.py``) restores every rank's random states before the first resumed step.
"""

from __future__ import annotations

import logging
import os
import zipfile
from datetime import datetime
from pathlib import Path

from cipo.checkpointing.event_files import cut_event_files, wait_until_after_newest
from cipo.checkpointing.run_state import read_logged_until

log = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoints"
LAST_NAME = "last.ckpt"
RESUME_KEY = "resume="
# <run>/.hydra/resumes/<time to the microsecond>_<pid>/: Hydra's record of each resume (reporting/runs.py reads it)
RESUMES = "resumes"


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a checkpoint to resume from, or None. Cheap: reads the zip
    directory that ``torch.save`` writes last (a truncated file has none), not the tensors."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "is empty"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "is truncated (or not a torch checkpoint): its zip directory is missing"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not any(name.endswith("data.pkl") for name in names):
        return "is a zip archive without a torch checkpoint in it"
    return None


def latest_checkpoint(folder: str | Path) -> Path | None:
    """``last.ckpt`` of ``folder`` if it is readable, else the newest readable ``*.ckpt`` (warning
    which file was passed over and why); None if there is none; an error if none is readable."""
    folder = Path(folder)
    snapshots = [path for path in folder.glob("*.ckpt") if path.is_file() and path.name != LAST_NAME]
    candidates = [folder / LAST_NAME] if (folder / LAST_NAME).is_file() else []  # is_file: False if dangling
    candidates += sorted(snapshots, key=lambda path: path.stat().st_mtime, reverse=True)
    passed_over = []
    for candidate in candidates:
        problem = checkpoint_problem(candidate)
        if problem is None:
            if passed_over:
                log.warning("%s %s; resuming from %s instead", passed_over[0][0], passed_over[0][1], candidate)
            return candidate
        passed_over.append((candidate, problem))
    if passed_over:
        listed = "; ".join(f"{path.name} {problem}" for path, problem in passed_over)
        raise FileNotFoundError(f"no readable checkpoint in {folder}: {listed}. Pass ckpt_path=<file> or start fresh")
    return None


def resolve_ckpt_path(value: str | None, output_dir: str | Path) -> str | None:
    """The checkpoint file ``trainer.fit`` should load for ``ckpt_path=value`` (None: start fresh)."""
    if value is None or value == "":
        return None
    folder = Path(output_dir) / CHECKPOINT_FOLDER
    if value in ("auto", "last"):
        found = latest_checkpoint(folder)
        if found is None and value == "last":
            raise FileNotFoundError(
                f"ckpt_path=last: no checkpoint in {folder}. Each cipo-train launch makes a new run folder: "
                "to continue an earlier run use `cipo-train resume=<that run's folder>`; "
                "ckpt_path=auto starts fresh when there is no checkpoint yet; or pass ckpt_path=/path/to/file.ckpt"
            )
        return None if found is None else str(found)
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={value!r}: no such checkpoint file. Use a .ckpt file, `last` or `auto` (this run's "
            "newest checkpoint), or `cipo-train resume=<run folder>` to continue an earlier run in its own folder"
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(
            f"ckpt_path={value!r} {problem}; pick another checkpoint (ckpt_path=auto takes the newest readable one)"
        )
    return str(path)


def resume_arguments(argv: list[str], config_dir: str | None = None) -> list[str]:
    """Hydra command-line arguments with ``resume=<run folder>`` expanded (unchanged without it).

    ``["resume=logs/train/runs/X", "trainer.max_epochs=8"]`` ->
    ``["--config-path=<abs X>/.hydra", "--config-name=config", "trainer.max_epochs=8",
    "hydra.run.dir=<abs X>", "ckpt_path=auto"]`` (``ckpt_path`` only if not given).
    With ``config_dir`` (cipo's ``conf/``), also ``--config-dir=<config_dir>`` and
    ``+hydra=default``: the saved config has no ``hydra`` section, and this one sets the
    run's logging (console format, Lightning's INFO lines off) as in a fresh run.
    """
    found = [arg for arg in argv if arg.startswith(RESUME_KEY)]
    if not found:
        return list(argv)
    if len(found) > 1:
        raise ValueError(f"resume= given {len(found)} times: {found}")
    clashing = ("-m", "--multirun", "--config-path", "-cp", "--config-name", "-cn")
    conflicting = [arg for arg in argv if arg.split("=")[0] in clashing]
    if conflicting:
        raise ValueError(
            f"resume=<run folder> cannot be combined with {conflicting}: it re-opens that run's own config; "
            "resume each job of a multirun separately (resume=<multirun folder>/<job number>_...)"
        )
    run = Path(found[0][len(RESUME_KEY) :]).expanduser().resolve()
    saved = newest_config(run)
    if not saved.is_file():
        raise FileNotFoundError(
            f"resume={found[0][len(RESUME_KEY) :]}: {saved} does not exist; point resume= at a run folder "
            "made by cipo-train (logs/<task_name>/runs/<timestamp>, which holds .hydra/ and checkpoints/)"
        )
    rest = [arg for arg in argv if not arg.startswith(RESUME_KEY)]
    # not over the launch's own record, nor over an earlier resume's: two resumes of one run from one process
    # can fall in the same second (a script that resumes several runs in turn), hence the microseconds
    record = f".hydra/{RESUMES}/{datetime.now().strftime('%Y-%m-%d_%H-%M-%S-%f')}_{os.getpid()}"
    # Flags first: argparse stops collecting the positional overrides at the first flag after them.
    arguments = [f"--config-path={saved.parent}", "--config-name=config", *rest, f'hydra.run.dir="{run}"']
    if config_dir is not None:
        arguments[2:2] = [f"--config-dir={config_dir}"]
        arguments.append("+hydra=default")
    arguments.append(f"hydra.output_subdir={record}")
    if not any(arg.startswith("ckpt_path=") for arg in rest):
        arguments.append("ckpt_path=auto")
    return arguments


def newest_config(run: str | Path) -> Path:
    """The config a resume of ``run`` re-opens: the newest resume's, else the launch's."""
    resumes = sorted((Path(run) / ".hydra" / RESUMES).glob("*/config.yaml"))
    return resumes[-1] if resumes else Path(run) / ".hydra" / "config.yaml"


def continue_logs(loggers, ckpt_path: str | None, fresh_start: bool) -> None:
    """Remove points a resumed run will log again (those after its checkpoint was written)."""
    until = read_logged_until(ckpt_path) if ckpt_path else (float("-inf") if fresh_start else None)
    if until is None:
        return
    for logger in loggers:
        folder = getattr(logger, "log_dir", None)
        if folder and Path(folder).is_dir():
            removed = cut_event_files(folder, until)["dropped"]
            if removed:
                log.info("removed %d logged points from after the checkpoint in %s", removed, folder)
            wait_until_after_newest(folder)  # the new event file must sort after the ones it continues
