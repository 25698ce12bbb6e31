"""docs/metrics.md against what real runs log: every logged tag documented, every documented tag
logged, every value in its documented unit.

Two short runs cover every condition in the table's last column: the tiny random policy with the
HF engine (a plain CIPO run: statuses like no_answer), and a scripted engine whose groups are
always mixed (so every correction rate has a denominator) that reports a sync check, with a KL
term, capped importance weights, dynamic sampling and two updates per RL step.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from cipo.cli.train import train
from conftest import REPO, compose_train
from fakes import read_series

DOC = REPO / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+?) \| [^|]+ \|([^|]*)\|$")
EXTRAS = [
    "rollout.engine._target_=fakes.scripted_engine",
    "+rollout.engine.script=alternating",
    "+rollout.engine.sync_report=true",
    "algorithm.kl_coef=0.05",
    "algorithm.is_weights_cap=2.0",
    "algorithm.num_mini_batches=2",
    "algorithm.dynamic_sampling.enabled=true",
]


def documented() -> dict[str, tuple[str, re.Pattern]]:
    """{tag as written: (unit, regex matching the logged tags)} from the table of docs/metrics.md."""
    rows = {}
    for line in DOC.read_text().splitlines():
        found = ROW.match(line)
        if found:
            tag, unit, _ = found.groups()
            pattern = re.escape(tag).replace(re.escape("<k>"), r"\d+").replace(re.escape("<L>"), r"\d+")
            pattern = pattern.replace(re.escape("<status>"), r"[a-z_]+")
            rows[tag] = (unit.strip(), re.compile(pattern + "$"))
    return rows


@pytest.fixture(scope="module")
def logged(tmp_path_factory, tiny_policy_dir) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for name, overrides in (("plain", []), ("extras", EXTRAS)):
        tmp = tmp_path_factory.mktemp(name)
        with compose_train(overrides, tmp_path=tmp, model_path=tiny_policy_dir) as cfg:
            train(cfg)
            for tag, points in read_series(Path(cfg.paths.output_dir) / "tensorboard").items():
                series.setdefault(tag, []).extend(points)
    return series


def test_the_table_is_found():
    rows = documented()
    assert len(rows) > 70 and rows["val/accuracy"][0] == "fraction" and rows["verify/status_<status>"][0] == "count"


def test_every_logged_tag_is_documented(logged):
    patterns = [pattern for _, pattern in documented().values()]
    assert sorted(tag for tag in logged if not any(p.match(tag) for p in patterns)) == []


def test_every_documented_tag_is_logged(logged):
    never = [tag for tag, (_, pattern) in documented().items() if not any(pattern.match(t) for t in logged)]
    assert never == []


def test_values_fit_their_unit(logged):
    wrong = []
    for tag, (unit, pattern) in documented().items():
        values = [value for name, points in logged.items() if pattern.match(name) for _, value in points]
        if unit == "fraction":
            wrong += [(tag, v) for v in values if not 0.0 <= v <= 1.0]
        elif unit == "count":
            wrong += [(tag, v) for v in values if v < 0 or not math.isclose(v, round(v))]
        elif unit in ("seconds", "tokens", "tokens/s"):
            wrong += [(tag, v) for v in values if v < 0]
    assert wrong == []
