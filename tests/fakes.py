"""Test doubles shared by the suite (imported as `fakes`: tests/ is on sys.path via conftest)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import lightning as L
import torch

from cipo.rollout.engine import SamplingSettings, SyncReport
from cipo.types import Completion, Record

# (prompt, sample index j, seed) -> completion text
Script = Callable[[str, int, int], str]


class ScriptedEngine:
    """Implements RolloutEngine.generate from a script; records every call it gets."""

    def __init__(self, tokenizer, script: Script, sync_report: bool = False) -> None:
        self.tokenizer, self.script, self.sync_report = tokenizer, script, sync_report
        self.calls: list[tuple[list[str], int, SamplingSettings, int]] = []

    def generate(self, prompts: list, n: int, settings: SamplingSettings, seed: int) -> list[list[Completion]]:
        # id prompts (corrections, token in) are decoded so that scripts and assertions read text
        prompts = [p if isinstance(p, str) else self.tokenizer.decode(p) for p in prompts]
        self.calls.append((list(prompts), n, settings, seed))
        return [[self._completion(self.script(p, j, seed)) for j in range(n)] for p in prompts]

    def _completion(self, text: str) -> Completion:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        logprobs = [-0.01 * (k + 1) for k in range(len(ids))]
        return Completion(text=text, token_ids=ids, logprobs=logprobs, finished=True)

    def sync_weights(self) -> SyncReport | None:
        """With ``sync_report``, a passing sync check (as an engine with its own weights gives)."""
        return SyncReport(logprob_diff=1e-6, tolerance=1e-3) if self.sync_report else None


def answer(reference: str, correct: bool) -> str:
    """A worked-looking completion whose final answer is right or off by one."""
    value = int(reference) if correct else int(reference) + 1
    return f"{reference}?\nAns:{value}"


def problem_of(prompt: str, records: list[Record]) -> Record:
    """The record a (main or correction) prompt was built from: the longest matching prefix."""
    matches = [r for r in records if prompt.startswith(r.prompt)]
    assert matches, f"no record for prompt {prompt!r}"
    return max(matches, key=lambda r: len(r.prompt))


# ----------------------------------------------------------------- training harness
def alternating_script(records: list[Record]) -> Script:
    """Sample j is right iff j is even (first attempts and revisions): every group is mixed."""

    def script(prompt: str, j: int, seed: int) -> str:
        record = problem_of(prompt, records)
        return answer(record.reference, j % 2 == 0)

    return script


def scripted_engine_factory(records: list[Record], script: Script | None = None):
    """An ``engine`` argument for RolloutCallback: called with model= and tokenizer=."""
    made: list[ScriptedEngine] = []

    def factory(model, tokenizer):
        engine = ScriptedEngine(tokenizer, script or alternating_script(records))
        made.append(engine)
        return engine

    factory.made = made
    return factory


def record_rollouts(monkeypatch, metrics: list[dict[str, float]] | None = None) -> list[tuple[int, object]]:
    """Patch RolloutCallback.on_train_epoch_start to record (epoch, RolloutBatch) after it ran
    (and, into ``metrics`` if given, the step's rollout metrics from its RoundCounts)."""
    from cipo.callbacks.rollout import RolloutCallback

    seen: list[tuple[int, object]] = []
    original = RolloutCallback.on_train_epoch_start

    def recording(self, trainer, pl_module):
        original(self, trainer, pl_module)
        seen.append((trainer.current_epoch, pl_module.rollout_batch))
        if metrics is not None:
            metrics.append(self.round_counts.metrics())

    monkeypatch.setattr(RolloutCallback, "on_train_epoch_start", recording)
    return seen


def read_scalars(folder) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} over every TensorBoard events file under ``folder``."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for events in sorted(Path(folder).glob("**/events.out.tfevents*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return out


def read_text_tags(folder) -> set[str]:
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in Path(folder).glob("**/events.out.tfevents*"):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        tags |= set(accumulator.Tags()["tensors"])
    return tags


# ----------------------------------------------------------------- fault injection
def read_series(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} in file order, as TensorBoard loads one run folder (duplicates kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def read_hparams(folder) -> tuple[dict[str, object], list[str]]:
    """TensorBoard's HPARAMS data under ``folder``: ({hyper-parameter: value}, [metric tags])."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    params: dict[str, object] = {}
    metrics: list[str] = []
    for content in accumulator.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("experiment"):
            metrics = [info.name.tag for info in data.experiment.metric_infos]
        if data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                params[name] = getattr(value, value.WhichOneof("kind"))
    return params, metrics


class KillAt(L.Callback):
    """Flushes the loggers and SIGKILLs its own process after update ``update`` of RL step ``epoch``
    (points logged after the last checkpoint are then on disk, as in the worst real crash)."""

    def __init__(self, epoch: int, update: int = 0) -> None:
        self.epoch, self.update = epoch, update

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.update:
            for logger in trainer.loggers:
                logger.save()
            os.kill(os.getpid(), signal.SIGKILL)


RNG_DRAWS: dict[int, float] = {}


class RngProbe(L.Callback):
    """Draws from the global torch RNG at every RL step start (into ``RNG_DRAWS``)."""

    def on_train_epoch_start(self, trainer, pl_module):
        RNG_DRAWS[trainer.current_epoch] = float(torch.rand(()))


class InterruptAt(L.Callback):
    """Sends itself ``times`` SIGINTs (Ctrl-C; or ``signal_name``) when update 0 of RL step ``epoch`` starts."""

    def __init__(self, epoch: int, times: int = 1, signal_name: str = "SIGINT") -> None:
        self.epoch, self.times, self.signal = epoch, times, getattr(signal, signal_name)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signal)


WEIGHT_TRACE: dict[int, float] = {}


class WeightTrace(L.Callback):
    """A checksum of the policy's weights after every RL step (into ``WEIGHT_TRACE``)."""

    def on_train_epoch_end(self, trainer, pl_module):
        WEIGHT_TRACE[trainer.current_epoch] = float(
            sum(p.detach().double().sum() for p in pl_module.policy.parameters())
        )


SCRIPTS: dict[str, Callable[[str, int, int], str]] = {
    "empty": lambda prompt, j, seed: "",
    "no_answer": lambda prompt, j, seed: "2+2=4",
    # the built-in task's prompts start "Q:<expression>\n": right for even j, off by one for odd j
    "alternating": lambda prompt, j, seed: f"Ans:{eval(prompt[2:].splitlines()[0]) + j % 2}",
}


def scripted_engine(model, tokenizer, script: str = "empty", sync_report: bool = False, **ignored) -> ScriptedEngine:
    """``rollout.engine._target_=fakes.scripted_engine`` (+rollout.engine.script=NAME,
    +rollout.engine.sync_report=true)."""
    return ScriptedEngine(tokenizer, SCRIPTS[script], sync_report)


def records_with_long_prompts(num_long: int = 4, **arithmetic) -> list[Record]:
    """Arithmetic records plus ``num_long`` whose prompts (480 characters) overflow a 512-position context."""
    from cipo.tasks.arithmetic import arithmetic_records

    records = arithmetic_records(**arithmetic)
    long = [Record(f"long-{i}", "Q:" + "1+" * 239 + "1\nA:", "240") for i in range(num_long)]
    return records + long


BATCH_FIELDS = (
    "input_ids",
    "attention_mask",
    "loss_mask",
    "advantages",
    "is_correction",
    "sft_mask",
    "is_transplant",
    "engine_logprobs",
)


class DumpRank(L.Callback):
    """Writes ``<folder>/rank<r>.pt`` at the end: RL step 1's batch, the tokens its forward ran, the
    weights before and after it, the rollout seeds and the replay state this rank saw (for the
    multi-process test)."""

    def __init__(self, folder: str) -> None:
        self.folder, self.dump = folder, {}

    def on_train_start(self, trainer, pl_module):
        self.dump["before"] = {k: v.detach().clone() for k, v in pl_module.policy.state_dict().items()}

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            batch = pl_module.rollout_batch
            self.dump["batch"] = {name: getattr(batch, name).clone() for name in BATCH_FIELDS}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 0:  # the step's running count (the RolloutCallback takes it at epoch end)
            self.dump["processed_tokens"] = pl_module.processed_tokens

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            self.dump["after"] = {k: v.detach().clone() for k, v in pl_module.policy.state_dict().items()}

    def on_train_end(self, trainer, pl_module):
        from cipo.callbacks.rollout import RolloutCallback

        rollout = next(c for c in trainer.callbacks if isinstance(c, RolloutCallback))
        self.dump.update(seeds=[rollout._seed(e) for e in range(2)], replay=rollout.replay.as_dict(), pid=os.getpid())
        os.makedirs(self.folder, exist_ok=True)
        torch.save(self.dump, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))
