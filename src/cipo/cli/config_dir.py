"""Where the Hydra configs (``conf/``) are: the repository's, next to ``src/``."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "conf")
