"""A mistyped group or top-level key on the command line, caught before Hydra composes.

Hydra answers ``cipo-train algoritm=cipo`` with "Could not override 'algoritm'. To append to
your config use +algoritm=cipo", advice that leads to a second error (cipo rejects unknown
keys). Here the first name of every override (``algoritm`` in ``algoritm=cipo``, ``modul``
in ``modul.lr=1``, ``data`` in ``data/source@data.heldout=aime24``) is checked against the
groups of the command's defaults list and the keys of its primary config file, and a miss is
a ``ValueError`` that names the closest ones. Overrides that add (``+key=``) are left to
Hydra; names inside a section are checked by Hydra and by cipo's settings.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from omegaconf import OmegaConf

FIRST_NAME = re.compile(r"[^./@]+")


def known_names(config_dir: str | Path, config_name: str) -> tuple[list[str], list[str]]:
    """(groups of the defaults list, other top-level keys) of ``<config_dir>/<config_name>.yaml``."""
    primary = OmegaConf.to_container(OmegaConf.load(Path(config_dir) / f"{config_name}.yaml"))
    groups: list[str] = []
    for entry in primary.pop("defaults", []):
        if isinstance(entry, dict):
            name = next(iter(entry)).removeprefix("override ").strip()
            groups.append(FIRST_NAME.match(name).group(0))
    return sorted(set(groups)), sorted(primary)


def check_override_names(arguments: list[str], config_dir: str | Path, config_name: str, command: str) -> None:
    """Raise ``ValueError`` for the first override whose first name the config does not have."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    groups, keys = known_names(config_dir, config_name)
    known = set(groups) | set(keys)
    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-") or ("=" not in argument and not argument.startswith("~")):
            continue  # flags (-m, --cfg job, --config-path=...) are Hydra's
        try:
            override = parser.parse_override(argument)
        except HydraException:
            continue  # Hydra reports its own syntax errors
        if override.is_add() or override.is_force_add():
            continue
        name = FIRST_NAME.match(override.key_or_group.lstrip("~")).group(0)
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        guess = f"did you mean {argument.replace(name, close[0], 1)}? " if close else ""
        raise ValueError(
            f"{argument}: {command} has no config group or key {name!r}; {guess}"
            f"Groups: {', '.join(groups)}. Keys: {', '.join(keys)}. `{command} --help` shows the options"
        )
