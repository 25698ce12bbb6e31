"""--help says what the command does, shows the README's common commands and only the groups
the command reads."""

from __future__ import annotations

import re

import pytest

from cipo.cli.help import EVAL, TRAIN, help_text
from conftest import CONF_DIR, REPO


def _readme_commands() -> set[str]:
    commands = set()
    for line in (REPO / "README.md").read_text().splitlines():
        found = re.search(r"(?:\.venv/bin/)?(cipo-(?:train|eval)\b[^#`]*)", line)
        if found:
            commands.add(" ".join(found.group(1).split()))
    return commands


@pytest.mark.parametrize("spec", [TRAIN, EVAL], ids=["train", "eval"])
def test_every_example_is_a_readme_command(spec):
    readme = _readme_commands()
    examples = [" ".join(f"{spec.command} {arguments}".split()) for arguments, _ in spec.examples]
    assert len(examples) >= 5
    assert [e for e in examples if e not in readme] == []


def test_train_help_describes_the_command_and_shows_resume():
    text = help_text(TRAIN, CONF_DIR)
    assert text.startswith("usage: cipo-train [-m] [group=option ...] [key=value ...]\n\nTrain a policy")
    assert "cipo-train resume=logs/train/runs/<timestamp>" in text
    assert "powered by Hydra" not in text
    groups = dict(re.findall(r"^  (\w+) +(.+)$", text.split("Config groups")[1].split("\n\n")[0], flags=re.M))
    options = groups["algorithm"].split(", ")
    assert options[0] == "cipo" and options == sorted(options) and "cipo_failed_only" in options
    assert "hydra" not in groups and "paths" not in groups


def test_eval_help_lists_only_the_groups_eval_reads():
    text = help_text(EVAL, CONF_DIR)
    section = text.split("Config groups")[1].split("\n\n")[0]
    groups = set(re.findall(r"^  (\w+) ", section, flags=re.M))
    assert groups == {"model", "verifier", "data", "rollout"}
    assert "cipo-eval run_dir=logs/train/runs/<timestamp> ckpt=last" in text
