"""Entry points: ``cipo-train`` (``cipo.cli.train``) and ``cipo-eval`` (``cipo.cli.evaluate``).

Each command is a plain function that tests call (``train(cfg)``, ``evaluate(cfg, overrides)``) and
a Hydra wrapper behind a console script. The launchers below import their command only when run,
so importing one command never imports the other.
"""

from __future__ import annotations


def train_main() -> None:
    """The ``cipo-train`` console script."""
    from cipo.cli.train import train_main as main

    main()


def eval_main() -> None:
    """The ``cipo-eval`` console script."""
    from cipo.cli.evaluate import eval_main as main

    main()
