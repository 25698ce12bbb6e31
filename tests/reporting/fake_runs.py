"""A fake multirun folder with TensorBoard event files, shared by the reporting and script tests."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

# experiment -> seed -> (final val/accuracy, generated tokens per step, step seconds)
RUNS = {
    "a": {1: (0.5, 100.0, 1.0), 2: (0.7, 300.0, 3.0)},
    "b": {1: (0.4, 200.0, 2.0), 2: (0.4, 200.0, 2.0)},
}
STEPS = 3


def write_run(folder: Path, experiment: str, seed: int, steps_logged: int = STEPS, events: bool = True) -> None:
    final, tokens, step_s = RUNS.get(experiment, {}).get(seed, (0.1, 10.0, 1.0))
    config = {
        "seed": seed,
        "task_name": "cmp",
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "algorithm": {"name": "grpo" if experiment == "a" else "cipo", "correction": {"enabled": experiment != "a"}},
        "trainer": {"max_epochs": STEPS},
    }
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    overrides = [f"experiment={experiment}", f"seed={seed}", f"trainer.max_epochs={STEPS}", "num_threads=1"]
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if not events:
        return
    writer = SummaryWriter(str(folder / "tensorboard"))
    for step in range(steps_logged):
        writer.add_scalar("rollout/generated_tokens", tokens, step)
        writer.add_scalar("time/step_s", step_s, step)
        writer.add_scalar("rollout/reward_mean", 0.1 * step, step)
        writer.add_scalar("correction/replay_ratio", 0.3, step)
    for step in range(steps_logged + 1):  # val/* at x = completed steps, from 0
        value = final if step == STEPS else 0.3
        writer.add_scalar("val/accuracy", value, step)
        writer.add_scalar("val/pass@1", value, step)
        writer.add_scalar("val/pass@2", min(1.0, value + 0.2), step)
        writer.add_scalar("val/retention", 0.8, step)
        writer.add_scalar("val/break_rate", 0.2, step)
        if experiment != "b":
            writer.add_scalar("val/fix_rate", 0.25, step)
    writer.close()


def make_multirun(root: Path) -> Path:
    """Four complete runs (a: seeds 1, 2; b: seeds 1, 2), one crashed, one without events."""
    index = 0
    for experiment, seeds in RUNS.items():
        for seed in seeds:
            write_run(root / f"{index}_experiment={experiment},seed={seed}", experiment, seed)
            index += 1
    write_run(root / f"{index}_experiment=b,seed=3", "b", 3, steps_logged=1)
    write_run(root / f"{index + 1}_experiment=b,seed=4", "b", 4, events=False)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root
