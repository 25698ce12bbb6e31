"""``cipo-train trainer=ddp_cpu``: two processes (gloo) on this machine, run as the console
script would be (Lightning's ddp strategy relaunches the command for rank 1, so it cannot run
inside pytest's own process).

Checked: each rank trains on a disjoint half of the step's prompts (whole groups), the rollout
seeds differ per rank, the update equals the single-process update on both halves together
(the loss is normalised by the global token count: SGD, no clipping, so a wrong scale would
show), the replay controller's state is identical on both ranks, merged metrics count the whole
step, and only rank 0 writes logs, checkpoints and the policy.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from cipo.algorithms.config import AlgorithmConfig, CorrectionConfig
from cipo.checkpointing.resume import newest_config
from cipo.data.datamodule import PromptDataModule
from cipo.models.load import load_policy
from cipo.module import CIPOModule
from cipo.settings import ModuleSettings
from cipo.types import RolloutBatch, SamplingSettings
from conftest import REPO
from fakes import BATCH_FIELDS, read_series

pytestmark = pytest.mark.slow  # ~20-30 s: two fresh Python processes each import torch and Lightning


def run_cli(arguments: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """``python -m cipo.cli.train ARGUMENTS`` in its own process group (rank 1 included), killed whole on timeout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "cipo.cli.train", *arguments]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"cipo-train {' '.join(arguments)} hung for {timeout} s: {stderr[-3000:]}")
    return process.returncode, stderr


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_policy_dir):
    folder = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable, "-m", "cipo.cli.train",
        "trainer=ddp_cpu", "debug=fast", "num_threads=1",
        f"model.path={tiny_policy_dir}", f"hydra.run.dir={folder / 'run'}", f"paths.log_dir={folder / 'logs'}",
        "rollout.engine._target_=fakes.scripted_engine", "+rollout.engine.script=alternating",
        "optimizer._target_=torch.optim.SGD", "~optimizer.betas", "optimizer.lr=0.5", "module.max_grad_norm=1e6",
        "+callbacks.dump._target_=fakes.DumpRank", f"+callbacks.dump.folder={folder / 'dump'}",
    ]  # fmt: skip
    returncode, stderr = run_cli(command[3:], folder)
    assert returncode == 0, stderr[-4000:]
    ranks = [torch.load(folder / "dump" / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return folder / "run", ranks


def _prompts(batch: dict) -> list[str]:
    """The prompt part of each main-stream row (token ids before the first completion token)."""
    rows = []
    for ids, mask, correction in zip(batch["input_ids"], batch["loss_mask"], batch["is_correction"]):
        if not correction:
            rows.append(tuple(ids[: int(mask.nonzero()[0])].tolist()))
    return rows


def test_each_rank_trains_on_its_own_whole_groups(ddp_run):
    _, ranks = ddp_run
    prompts = [_prompts(rank["batch"]) for rank in ranks]
    assert [len(p) for p in prompts] == [8, 8]  # 2 prompts x G=4 each: half of data.batch_size=4
    assert [len(set(p)) for p in prompts] == [2, 2]
    assert not set(prompts[0]) & set(prompts[1])
    assert ranks[0]["seeds"] != ranks[1]["seeds"]


def test_the_update_equals_one_process_on_both_halves(ddp_run, tiny_policy_dir):
    _, ranks = ddp_run
    for name, tensor in ranks[0]["after"].items():
        assert torch.equal(tensor, ranks[1]["after"][name]), name  # DDP kept the replicas identical
    merged = _concatenate([rank["batch"] for rank in ranks])
    policy, tokenizer = load_policy(tiny_policy_dir)
    for name, tensor in policy.state_dict().items():
        assert torch.equal(tensor, ranks[0]["before"][name]), name
    algorithm = AlgorithmConfig(group_size=4, correction=CorrectionConfig(num_anchors=2, samples_per_anchor=2))
    module = CIPOModule(
        policy,
        tokenizer,
        algorithm,
        ModuleSettings(max_grad_norm=1e6),
        SamplingSettings(max_new_tokens=32),
        functools.partial(torch.optim.SGD, lr=0.5),
    )
    _train_one_step(module, merged)
    moved = 0.0
    for name, tensor in policy.state_dict().items():
        torch.testing.assert_close(tensor, ranks[0]["after"][name], rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, float((tensor - ranks[0]["before"][name]).abs().max()))
    assert moved > 1e-3  # the step really moved the weights


def test_replay_state_and_merged_metrics(ddp_run):
    run, ranks = ddp_run
    assert ranks[0]["replay"] == ranks[1]["replay"]
    series = read_series(run / "tensorboard")
    statuses = sum(dict(points)[0] for tag, points in series.items() if tag.startswith("verify/status_"))
    assert statuses == 16  # B * G over both ranks, not one rank's 8
    assert dict(series["correction/num_anchors"])[0] == 2  # the step's K, one per rank
    assert dict(series["rollout/accuracy"])[0] == pytest.approx(0.5)  # the alternating script
    processed = [rank["processed_tokens"] for rank in ranks]
    assert dict(series["compute/processed_tokens"])[0] == sum(processed)  # both ranks' rows, not rank 0's
    for tokens, rank in zip(processed, ranks):  # each rank's prompts, a shared one once, + completions
        assert rank["batch"]["loss_mask"].sum() < tokens < rank["batch"]["attention_mask"].sum()
    assert dict(series["compute/generated_tokens"])[0] == dict(series["rollout/generated_tokens"])[0]
    # Event files are named events.out.tfevents.<time>.<host>.<pid>.<n>; the run's outcome (HPARAMS)
    # is written after Lightning closed the step curves' writer, so one process leaves two files.
    writers = {int(path.name.split(".")[-2]) for path in (run / "tensorboard").glob("events.out.tfevents.*")}
    assert writers == {ranks[0]["pid"]}  # rank 0 only
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "policy" / "model.safetensors").is_file()


def _concatenate(batches: list[dict]) -> RolloutBatch:
    width = max(batch["input_ids"].shape[1] for batch in batches)
    fields = {}
    for name in BATCH_FIELDS:
        parts = [
            b[name] if b[name].dim() == 1 else torch.nn.functional.pad(b[name], (0, width - b[name].shape[1]))
            for b in batches
        ]
        fields[name] = torch.cat(parts)
    return RolloutBatch(**fields, step=0)


class _HandOver(L.Callback):
    def __init__(self, batch: RolloutBatch) -> None:
        self.batch = batch

    def on_train_epoch_start(self, trainer, pl_module):
        pl_module.rollout_batch = self.batch


def _train_one_step(module: CIPOModule, batch: RolloutBatch) -> None:
    datamodule = PromptDataModule(lambda: [], lambda: [], 1, "{problem}{attempt}", "{problem}{attempt}{verdict}")
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[_HandOver(batch)],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())


def test_resume_of_a_two_process_run_from_its_folder(tmp_path, tiny_policy_dir):
    """The command a user types: ``cipo-train resume=<run folder>`` (here after a 1-step run with
    trainer=ddp_cpu). Rank 1 is relaunched by Lightning with the rewritten command line; the run
    continues in the same folder, with the saved config plus the new override, and one curve."""
    first = [
        "trainer=ddp_cpu", "debug=fast", "num_threads=1", "trainer.max_epochs=1",
        f"model.path={tiny_policy_dir}", f"paths.log_dir={tmp_path / 'logs'}",
    ]  # fmt: skip
    for arguments in (first, None):
        if arguments is None:
            (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
            arguments = [f"resume={run}", "trainer.max_epochs=2"]
        returncode, stderr = run_cli(arguments, tmp_path)
        assert returncode == 0, stderr[-4000:]
    assert [p.name for p in (tmp_path / "logs" / "train" / "runs").iterdir()] == [run.name]  # no new folder
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and len(checkpoint["cipo_run_state"]["rng"]) == 2  # both ranks' RNG
    assert [step for step, _ in read_series(run / "tensorboard")["rollout/accuracy"]] == [0, 1]
    assert "max_epochs: 1" in (run / ".hydra" / "config.yaml").read_text()  # the launch's record stays
    assert "max_epochs: 2" in newest_config(run).read_text()  # the resume's, in .hydra/resumes/


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("trainer", ["ddp", "fsdp"])
def test_gpu_strategies_train_checkpoint_and_export(trainer, tmp_path, tiny_policy_dir):
    """trainer=ddp / trainer=fsdp on the GPUs there are (one is enough to run every code path:
    the gathered-weights rollout and sync, full-state checkpoints, the export)."""
    devices = torch.cuda.device_count()
    arguments = [
        f"trainer={trainer}", f"trainer.devices={devices}", "debug=fast",
        f"data.batch_size={4 * devices}", f"algorithm.correction.num_anchors={2 * devices}",
        f"model.path={tiny_policy_dir}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    returncode, stderr = run_cli(arguments, tmp_path)
    assert returncode == 0, stderr[-4000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and any(k.startswith("policy.") for k in checkpoint["state_dict"])
    assert (tmp_path / "run" / "policy" / "model.safetensors").is_file()
