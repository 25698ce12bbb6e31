"""One run's curves as a small CSV: what a study commits, and all that its report reads.

Row k is the run after k RL steps (k = 0: the initial policy):

    step              k
    val/*, time/val_s the held-out evaluation after k steps and its time (empty where none ran)
    compute/<axis>    the running totals after k steps (0 at k = 0)
    PER_STEP tags     the k-th step's own values (empty at k = 0)

TensorBoard puts per-step tags and running totals at the 0-based index of the step (k - 1) and
``val/*`` at k; ``read_curves`` restores exactly that layout, so every function of
``cipo.reporting`` reads a CSV back like the run's event files. Numbers are written with 6
significant digits (integers in full): 200 steps with 9 validations are about 25 KB.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from cipo.reporting.runs import Scalars

PER_STEP = (
    "rollout/accuracy",
    "rollout/reward_mean",
    "rollout/frac_zero_std",
    "rollout/frac_all_wrong",
    "rollout/completion_len_mean",
    "correction/num_anchors",
    "correction/accuracy",
    "correction/fix_rate",
    "correction/retention",
    "correction/replay_ratio",
    "correction/band_occupancy",
)
TOTALS = ("compute/generated_tokens", "compute/processed_tokens", "compute/step_s")
VALIDATION_TIME = "time/val_s"  # logged with val/* at k: the validation's own cost


def _at_k(tag: str) -> bool:
    """Tags logged at x = steps completed (the others at the index of the step, k - 1)."""
    return tag.startswith("val/") or tag == VALIDATION_TIME


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def curve_columns(scalars: Scalars) -> list[str]:
    """``step``, then the run's val/* tags, the totals, the per-step tags and the validation time it logged."""
    val = sorted(tag for tag in scalars if tag.startswith("val/"))
    per_step = [t for t in (*TOTALS, *PER_STEP, VALIDATION_TIME) if t in scalars]
    return ["step", *val, *per_step]


def steps_completed(scalars: Scalars) -> int:
    """RL steps the run logged (its last per-step index + 1; 0 when none)."""
    indices = [max(scalars[tag]) for tag in (*TOTALS, *PER_STEP) if scalars.get(tag)]
    return max(indices, default=-1) + 1


def write_curves(scalars: Scalars, path: str | Path) -> Path:
    """Write the run's curves to ``path`` (rows 0 .. steps completed, or the last validation)."""
    path = Path(path)
    columns = curve_columns(scalars)
    last = max([steps_completed(scalars), *(max(s) for t, s in scalars.items() if _at_k(t) and s)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for k in range(last + 1):
            row = [str(k)]
            for tag in columns[1:]:
                series = scalars[tag]
                if _at_k(tag):
                    row.append(_cell(series.get(k)))
                elif tag in TOTALS:
                    row.append("0" if k == 0 else _cell(series.get(k - 1)))
                else:
                    row.append("" if k == 0 else _cell(series.get(k - 1)))
            writer.writerow(row)
    return path


def read_curves(path: str | Path) -> Scalars:
    """A CSV of ``write_curves`` back as ``{tag: {step: value}}`` in TensorBoard's layout."""
    path = Path(path)
    scalars: Scalars = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0] != "step":
            raise ValueError(f"{path}: not a curves CSV (the first column must be 'step', got {header!r})")
        for line_number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line_number}: {len(row)} cells, the header has {len(header)}")
            k = int(row[0])
            for tag, cell in zip(header[1:], row[1:]):
                if cell == "":
                    continue
                if _at_k(tag):
                    scalars.setdefault(tag, {})[k] = float(cell)
                elif k > 0:  # the totals' 0 at k = 0 is implied
                    scalars.setdefault(tag, {})[k - 1] = float(cell)
    return scalars
