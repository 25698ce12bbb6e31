"""Entry points: ``cipo-train`` (``cipo.cli.train``) and ``cipo-eval`` (``cipo.cli.evaluate``).

Each command is a plain function that tests call (``train(cfg)``, ``evaluate(cfg, overrides)``) and
a Hydra wrapper behind a console script. The launchers below import their command only when run,
so importing one command never imports the other, and ``--help`` answers without importing torch.

What the commands show a person, apart from the metrics (``command.run_command`` wires them up):

    quiet          library noise off (progress bars of weight loading, a deprecation warning)
    log_format     the console's log line format (conf/hydra/default.yaml)
    override_names a mistyped group or key on the command line, with a "did you mean"
    errors         user mistakes as one paragraph instead of a traceback; no half-made run folders
    help           ``--help``: what the command does, the common commands, the groups it reads
    run_summary    the end of a run: its folder, final held-out accuracy, what to run next
    sweep_summary  the end of a ``-m`` sweep (a Hydra callback)
    eval_summary   cipo-eval's table and files
"""

from __future__ import annotations


def train_main() -> None:
    """The ``cipo-train`` console script."""
    from cipo.cli.help import TRAIN, answer_help

    if not answer_help(TRAIN):
        from cipo.cli.train import train_main as main

        main()


def eval_main() -> None:
    """The ``cipo-eval`` console script."""
    from cipo.cli.help import EVAL, answer_help

    if not answer_help(EVAL):
        from cipo.cli.evaluate import eval_main as main

        main()
