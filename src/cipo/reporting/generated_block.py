"""A generated block inside a hand-written Markdown file, replaced in place.

``docs/results.md`` mixes prose with tables that ``scripts/study_report.py`` computes from the
committed per-run CSVs. The tables sit between two HTML comments (invisible when rendered)::

    <!-- BEGIN generated: <key> (scripts/study_report.py; do not edit by hand) -->
    ...
    <!-- END generated: <key> -->

so that rerunning the report rewrites them and nothing else. A missing, repeated or misordered
marker is an error naming the file's problem, never a silent append.
"""

from __future__ import annotations

import re


def markers(key: str) -> tuple[str, str]:
    """The begin and end lines of ``key``'s block."""
    return (
        f"<!-- BEGIN generated: {key} (scripts/study_report.py; do not edit by hand) -->",
        f"<!-- END generated: {key} -->",
    )


def replace_generated_block(text: str, key: str, body: str) -> str:
    """``text`` with the lines between ``key``'s markers replaced by ``body`` (markers kept)."""
    begin, end = markers(key)
    begin_at = [m.start() for m in re.finditer(re.escape(begin), text)]
    end_at = [m.start() for m in re.finditer(re.escape(end), text)]
    if len(begin_at) != 1 or len(end_at) != 1:
        raise ValueError(
            f"expected one '{begin}' and one '{end}' line, found {len(begin_at)} and {len(end_at)}: "
            "add the pair where the tables belong"
        )
    if end_at[0] < begin_at[0]:
        raise ValueError(f"the END marker of {key!r} comes before its BEGIN marker")
    head = text[: begin_at[0] + len(begin)]
    return f"{head}\n{body.strip()}\n{text[end_at[0] :]}"
