"""The console's log lines: ``[12:03:41] message``, with the level only when it is not INFO.

The run's log file keeps Hydra's full format (date, logger name, level); the console is read
by a person, for whom ``[2026-11-30 12:03:41,083][cipo.progress][INFO] -`` is noise.
Used by ``conf/hydra/default.yaml`` (``hydra.job_logging``).
"""

from __future__ import annotations

import logging


class ConsoleFormatter(logging.Formatter):
    def __init__(self, datefmt: str = "%H:%M:%S") -> None:
        super().__init__("[%(asctime)s] %(message)s", datefmt=datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        if record.levelno == logging.INFO:
            return line
        stamp, _, message = line.partition("] ")
        return f"{stamp}] {record.levelname}: {message}"
