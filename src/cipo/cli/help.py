"""``cipo-train --help`` / ``cipo-eval --help``: what the command does, how it is used, its groups.

Hydra's own ``--help`` opens with "<app> is powered by Hydra", lists every group in ``conf/``
(``cipo-eval`` would show training's algorithm, trainer, callbacks ...) and then the whole
composed config. This help is built from the command's own defaults list (only the groups it
reads, each with the options found in ``conf/<group>/``), a description, and the README's most
common commands (``tests/cli/test_help.py`` checks that each is in the README).
``--hydra-help`` still shows Hydra's flags, ``--cfg job`` the composed config.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from cipo.cli.override_names import known_names

HELP_FLAGS = ("--help", "-h")
WIDTH = 100
HIDDEN_GROUPS = ("hydra", "paths")  # Hydra's settings and folders: keys, not choices a user makes


@dataclass(frozen=True)
class CommandHelp:
    command: str
    config_name: str
    description: str
    examples: tuple[tuple[str, str], ...]  # (arguments, what it does)
    notes: str


TRAIN = CommandHelp(
    command="cipo-train",
    config_name="train",
    description=(
        "Train a policy with reinforcement learning from verifiable rewards: GRPO, or CIPO (GRPO plus "
        "episodes in which the policy corrects its own failed attempts), one RL step per Lightning epoch. "
        "Every run gets a folder logs/train/runs/<timestamp>/ with its config (.hydra/), checkpoints/, "
        "tensorboard/ and the exported policy/."
    ),
    examples=(
        ("", "CIPO on the built-in task (about 5 minutes on 2 CPU cores)"),
        ("debug=fast", "a 2-step smoke run in seconds"),
        ("algorithm=grpo", "plain GRPO, same everything else"),
        ("algorithm=cipo trainer.max_epochs=50 data.batch_size=16", "any key: section.key=value"),
        ("-m algorithm=grpo,cipo seed=1,2,3", "a sweep: 6 runs under logs/train/multiruns/<timestamp>/"),
        ("resume=logs/train/runs/<timestamp>", "continue a stopped run in its folder (keys given next to it apply)"),
    ),
    notes="Algorithms, data sets and what is logged: README.md and docs/metrics.md.",
)

EVAL = CommandHelp(
    command="cipo-eval",
    config_name="eval",
    description=(
        "Evaluate a trained run, one of its checkpoints or any model folder on held-out problems: accuracy, "
        "pass@k and self-correction (fix rate, retention, break rate over revision rounds). Writes "
        "logs/eval/runs/<timestamp>/summary.json and problems.jsonl and prints a table."
    ),
    examples=(
        ("run_dir=logs/train/runs/<timestamp>", "the run's exported policy/, with its data, verifier and rollout"),
        ("run_dir=logs/train/runs/<timestamp> ckpt=last", "or ckpt=step0024.ckpt, or a path to any .ckpt"),
        ("model.path=builtin eval.samples=16 eval.rounds=3 eval.greedy=true", "any folder transformers loads"),
        ("run_dir=... data=<a set with attempts> eval.attempts=supplied", "revise given (buggy) attempts"),
        ("-m run_dir=... ckpt=step0024.ckpt,step0049.ckpt,last", "every checkpoint: logs/eval/multiruns/"),
    ),
    notes="Options eval.* (samples, ks, rounds, greedy, correction, attempts, split, max_problems): README.md.",
)


def group_options(config_dir: Path, group: str) -> list[str]:
    return sorted(path.stem for path in (config_dir / group).glob("*.yaml"))


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def help_text(spec: CommandHelp, config_dir: str | Path) -> str:
    config_dir = Path(config_dir)
    groups, keys = known_names(config_dir, spec.config_name)
    shown = [group for group in groups if group not in HIDDEN_GROUPS]
    width = max(len(group) for group in shown)
    examples = [f"  {spec.command} {arguments}".rstrip() for arguments, _ in spec.examples]
    column = max(len(line) for line in examples) + 2
    lines = [
        f"usage: {spec.command} [-m] [group=option ...] [key=value ...]",
        "",
        _wrap(spec.description),
        "",
        "Common commands:",
        *(f"{line:<{column}}# {what}" for line, (_, what) in zip(examples, spec.examples)),
        "",
        "Config groups (group=option; conf/<group>/<option>.yaml):",
        *(
            _wrap(f"  {group:<{width}}  {', '.join(group_options(config_dir, group))}", " " * (width + 4))
            for group in shown
        ),
        "",
        _wrap(f"Top-level keys (key=value, section.key=value): {', '.join(keys)}", "  "),
        "",
        _wrap(
            f"-m runs a sweep over comma-separated values (Hydra multirun). `{spec.command} --cfg job` prints the "
            f"composed config, --hydra-help Hydra's own flags. Errors are one paragraph; HYDRA_FULL_ERROR=1 shows "
            f"the traceback. {spec.notes}"
        ),
    ]
    return "\n".join(lines)


def answer_help(spec: CommandHelp, arguments: list[str] | None = None) -> bool:
    """Print the help and return True if the command line (``sys.argv``) asks for it."""
    if not any(argument in HELP_FLAGS for argument in (sys.argv[1:] if arguments is None else arguments)):
        return False
    from cipo.cli.config_dir import CONFIG_DIR

    print(help_text(spec, CONFIG_DIR))
    return True
