"""Runs with chosen final values (no files), for the tests of study-level statistics."""

from pathlib import Path

from omegaconf import OmegaConf

from cipo.reporting.runs import Run


def make_run(seed, accuracy, pass16, counts=(10, 50, 5, 35), pass_ks=(2, 16)):
    """A run validated at steps 0 and 100 with the given final values; counts = fixed, kept, broken, unfixed."""
    scalars = {"val/accuracy": {0: 0.1, 100: accuracy}, "val/first_attempt_accuracy": {100: accuracy}}
    for k in pass_ks:
        scalars[f"val/pass@{k}"] = {100: pass16 if k == 16 else (accuracy + pass16) / 2}
    for name, count in zip(("num_fixed", "num_kept", "num_broken", "num_unfixed"), counts, strict=True):
        scalars[f"val/{name}"] = {100: float(count)}
    return Run(Path(f"run{seed}"), OmegaConf.create({"seed": seed}), [], scalars, seed=seed)
