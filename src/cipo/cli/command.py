"""What every cipo console script does around its Hydra main function.

``run_command(TRAIN, CONFIG_DIR, _hydra_train, rewrite_arguments=resume_arguments)``: library
noise off (``quiet``), ``--help`` answered (``help``), the command line rewritten (``resume=``)
and its group and key names checked (``override_names``), then Hydra runs; a user's mistake
anywhere in there ends with one paragraph (``errors``). The task function itself is wrapped in
``reported_errors`` too: inside Hydra, only it sees the run folder it may have to remove.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from cipo.cli.errors import reported_errors
from cipo.cli.help import CommandHelp, answer_help
from cipo.cli.override_names import check_override_names
from cipo.cli.quiet import quiet_libraries


def run_command(
    spec: CommandHelp,
    config_dir: str,
    hydra_main: Callable[[], object],
    rewrite_arguments: Callable[[list[str]], list[str]] | None = None,
) -> None:
    quiet_libraries()
    with reported_errors(spec.command):
        if answer_help(spec):  # also here for `python -m cipo.cli.train --help`
            return
        arguments = sys.argv[1:]
        if rewrite_arguments is not None:
            arguments = rewrite_arguments(arguments)
        check_override_names(arguments, config_dir, spec.config_name, spec.command)
        sys.argv[1:] = arguments
        hydra_main()
