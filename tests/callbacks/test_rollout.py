"""RolloutCallback around a real Trainer with a scripted engine: seeds, hand-over, validation
schedule, replay control, sample table, checkpoint state."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger

from cipo.algorithms.config import AlgorithmConfig, CorrectionConfig
from cipo.algorithms.replay import (
    ReplayControl,
    ReplayState,
    RetentionCounts,
    initial_replay_state,
    update_replay_ratio,
)
from cipo.callbacks.rollout import RolloutCallback
from cipo.data.datamodule import PromptDataModule
from cipo.module import CIPOModule
from cipo.rollout.engine import SamplingSettings, SyncReport, spread_seed
from cipo.settings import ModuleSettings, ValidationSettings
from cipo.tasks.arithmetic import arithmetic_records
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from fakes import ScriptedEngine, scripted_engine_factory

TRAIN = arithmetic_records("train", 12, seed=0, levels=[1, 2])
HELDOUT = arithmetic_records("heldout", 5, seed=0, levels=[1, 2])
SAMPLING = SamplingSettings(max_new_tokens=16)


class Board:
    def __init__(self):
        self.texts = []

    def add_text(self, tag, text, global_step=None):
        self.texts.append((tag, text, global_step))


class MemoryLogger(Logger):
    def __init__(self):
        super().__init__()
        self.points: list[tuple[int, dict]] = []
        self.board = Board()

    @property
    def name(self):
        return "memory"

    @property
    def version(self):
        return 0

    @property
    def experiment(self):
        return self.board

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.points.append((step, dict(metrics)))

    def series(self, key):
        return {step: m[key] for step, m in self.points if key in m}


def algorithm(enabled=True, reveal=False, **replay):
    return AlgorithmConfig(
        name="cipo" if enabled else "grpo",
        group_size=4,
        correction=CorrectionConfig(
            enabled=enabled,
            num_anchors=2,
            samples_per_anchor=2,
            reveal_verdict=reveal,
            replay=ReplayControl(**replay),
        ),
    )


def make_callback(factory, algo, seed=0, **validation_kwargs) -> RolloutCallback:
    validation = ValidationSettings(**validation_kwargs)
    return RolloutCallback(factory, ExactIntegerVerifier(), algo, SAMPLING, validation, seed)


def make_module(policy, tokenizer, algo, lr) -> CIPOModule:
    return CIPOModule(policy, tokenizer, algo, ModuleSettings(), SAMPLING, functools.partial(torch.optim.SGD, lr=lr))


def run(policy, tokenizer, algo, max_epochs=2, seed=3, **validation_kwargs):
    factory = scripted_engine_factory(TRAIN + HELDOUT)
    callback = make_callback(factory, algo, seed=seed, **validation_kwargs)
    module = make_module(policy, tokenizer, algo, lr=1e-3)
    datamodule = PromptDataModule(
        lambda: list(TRAIN),
        lambda: list(HELDOUT),
        batch_size=3,
        correction_template="{problem}{attempt}\nCheck:\nA:",
        verdict_template="{problem}{attempt}\nThat answer is {verdict}. Check:\nA:",
        seed=0,
        updates_per_step=algo.updates_per_step,  # as cipo.cli.train builds it
    )
    logger = MemoryLogger()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=datamodule)
    (engine,) = factory.made
    return callback, engine, logger, module


@pytest.fixture
def policy(tiny_policy):
    return tiny_policy[0]


def test_one_round_per_epoch_with_distinct_seeds(policy, built_tokenizer):
    callback, engine, logger, module = run(policy, built_tokenizer, algorithm(), max_epochs=3, every=0)
    main_calls = [call for call in engine.calls if call[1] == 4]  # n = G
    assert len(main_calls) == 3
    assert [call[3] for call in main_calls] == [callback._seed(e) for e in range(3)]
    assert len({call[3] for call in main_calls}) == 3
    # hashed from seed x 1,000,003 + 7 x step + 1 (docs/parity.md): steps no longer reseed from seeds 7 apart
    assert [call[3] for call in main_calls] == [spread_seed(3 * 1_000_003 + 7 * e + 1) for e in range(3)]
    assert [len(call[0]) for call in main_calls] == [3, 3, 3]  # data.batch_size prompts
    # prompts follow the datamodule's sampler: 9 distinct of the 12 records in 3 steps
    prompts = [p for call in main_calls for p in call[0]]
    assert len(set(prompts)) == 9
    assert module.rollout_batch is None  # released after each step
    assert engine.calls[0][2] == SAMPLING


def test_engine_is_built_once_on_the_trainers_policy(policy, built_tokenizer):
    made = []

    def factory(model, tokenizer):
        made.append((model, tokenizer))
        return scripted_engine_factory(TRAIN + HELDOUT)(model=model, tokenizer=tokenizer)

    algo = algorithm()
    callback = make_callback(factory, algo, every=0)
    module = make_module(policy, built_tokenizer, algo, lr=0.0)
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    dm = PromptDataModule(lambda: list(TRAIN), lambda: [], 2, "{problem}{attempt}", "{verdict}")
    trainer.fit(module, datamodule=dm)
    assert len(made) == 1 and made[0][0] is policy and made[0][1] is built_tokenizer


def test_sync_report_is_logged_and_the_engine_sleeps_before_training(policy, built_tokenizer, monkeypatch):
    events = []
    monkeypatch.setattr(ScriptedEngine, "sync_weights", lambda self: events.append("sync") or SyncReport(2e-6, 1e-3))
    monkeypatch.setattr(ScriptedEngine, "sleep", lambda self: events.append("sleep"), raising=False)
    _, _, logger, _ = run(policy, built_tokenizer, algorithm(), max_epochs=2, every=0)
    assert events == ["sync", "sleep", "sync", "sleep", "sync"]  # train start, then per step: generate, sleep, sync
    diffs = logger.series("rollout/sync_logprob_diff")
    assert sorted(diffs) == [0, 1] and list(diffs.values()) == pytest.approx([2e-6, 2e-6])
    assert len(logger.series("time/sync_s")) == 2


@pytest.mark.parametrize("fail_at", [0, 1])
def test_failed_sync_check_stops_the_run_naming_the_knob(policy, built_tokenizer, monkeypatch, fail_at):
    reports = [SyncReport(1e-6, 1e-3)] * fail_at + [SyncReport(0.7, 1e-3)]
    monkeypatch.setattr(ScriptedEngine, "sync_weights", lambda self: reports.pop(0))
    with pytest.raises(RuntimeError, match=r"differ by up to 0\.7 > rollout\.sync_tolerance=0\.001"):
        run(policy, built_tokenizer, algorithm(), max_epochs=3, every=0)


def test_validation_schedule(policy, built_tokenizer):
    callback, engine, logger, _ = run(policy, built_tokenizer, algorithm(), max_epochs=3, every=2)
    accuracy = logger.series("val/accuracy")
    assert sorted(accuracy) == [0, 2, 3]  # initial policy, every 2 steps, and after the last one
    # the alternating script: samples [right, wrong, right, wrong]; the first one (right) is
    # revised once (j = 0: right again), so retention is 1 and no fix rate exists
    assert accuracy[0] == pytest.approx(0.5)
    assert logger.series("val/pass@2")[0] == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2)
    assert logger.series("val/retention") == {0: 1.0, 2: 1.0, 3: 1.0}
    assert not logger.series("val/fix_rate")
    assert callback.last_validation["val/accuracy"] == pytest.approx(0.5)
    val_calls = [call for call in engine.calls if set(call[0]) <= {r.prompt for r in HELDOUT}]
    assert len({call[3] for call in val_calls if call[1] == 4}) == 1  # same randomness every time


def test_validation_off_and_capped(policy, built_tokenizer):
    _, _, logger, _ = run(policy, built_tokenizer, algorithm(), every=0)
    assert not logger.series("val/accuracy")
    _, engine, _, _ = run(policy, built_tokenizer, algorithm(), every=1, max_problems=2, correction=False)
    heldout = {r.prompt for r in HELDOUT}
    val_calls = [call for call in engine.calls if set(call[0]) <= heldout]
    assert val_calls and all(call[0] == [r.prompt for r in HELDOUT[:2]] for call in val_calls)


def test_rollout_metrics_are_logged_per_rl_step(policy, built_tokenizer):
    _, _, logger, _ = run(policy, built_tokenizer, algorithm(), max_epochs=2, every=0)
    for key in ("rollout/accuracy", "correction/replay_ratio", "time/rollout_s", "time/train_s", "time/sync_s"):
        assert len(logger.series(key)) == 2, key
    assert set(logger.series("rollout/accuracy").values()) == {0.5}


@pytest.mark.parametrize("rule", ["resolve_gap", "published"])
def test_replay_ratio_follows_the_rounds_evidence(policy, built_tokenizer, rule):
    callback, _, logger, _ = run(
        policy, built_tokenizer, algorithm(rule=rule, initial=0.5, min=0.2, max=0.8), max_epochs=2, every=0
    )
    control = ReplayControl(rule=rule, initial=0.5, min=0.2, max=0.8)
    state = initial_replay_state(control)
    series = {name: sorted(logger.series(f"correction/{name}").items()) for name in (
        "replay_ratio", "num_kept", "num_from_right", "num_resolve_correct", "num_resolve_samples")}  # fmt: skip
    assert len(series["replay_ratio"]) == 2
    for step, (_, ratio) in enumerate(series["replay_ratio"]):  # every round used the state before it
        assert ratio == pytest.approx(state.ratio)
        evidence = RetentionCounts(*(series[name][step][1] for name in list(series)[1:]))
        assert evidence.retention in (None, 0.5)  # alternating revisions
        state = update_replay_ratio(state, evidence, control)
    assert callback.replay.ratio == pytest.approx(state.ratio) and callback.replay.ratio != pytest.approx(0.5)


def test_grpo_leaves_the_replay_state_alone(policy, built_tokenizer):
    callback, engine, _, _ = run(policy, built_tokenizer, algorithm(enabled=False), max_epochs=2, every=0)
    assert callback.replay == initial_replay_state(ReplayControl())
    assert all(call[1] == 4 for call in engine.calls)  # no correction round


def test_reveal_verdict_uses_the_verdict_template(policy, built_tokenizer):
    _, engine, _, _ = run(policy, built_tokenizer, algorithm(reveal=True), max_epochs=1, every=0)
    correction_prompts = [p for call in engine.calls if call[1] == 2 for p in call[0]]
    assert correction_prompts and all("That answer is " in p for p in correction_prompts)
    _, engine, _, _ = run(policy, built_tokenizer, algorithm(), max_epochs=1, every=0)
    correction_prompts = [p for call in engine.calls if call[1] == 2 for p in call[0]]
    assert correction_prompts and not any("That answer is" in p for p in correction_prompts)


def test_sample_table(policy, built_tokenizer):
    _, _, logger, _ = run(policy, built_tokenizer, algorithm(), max_epochs=2, every=0)
    texts = logger.board.texts
    assert [(tag, step) for tag, _, step in texts] == [("samples/rollouts", 0), ("samples/rollouts", 1)]
    table = texts[0][1].splitlines()
    assert table[0] == "| prompt | attempt | attempt_verdict | correction | correction_verdict |"
    assert table[1] == "|---|---|---|---|---|"
    assert len(table) == 2 + 2  # one row per anchor (2 anchors): cell newlines are escaped
    assert "⏎" in table[2]


def test_state_dict_round_trip():
    algo = algorithm()
    callback = make_callback(lambda **_: None, algo)
    callback.replay = ReplayState(ratio=0.42, prev_retention=0.7, low_streak=2)
    callback.compute_totals = {"generated_tokens": 120.0, "processed_tokens": 410.0, "step_s": 3.5}
    state = callback.state_dict()
    other = make_callback(lambda **_: None, algo)
    assert other.replay != callback.replay
    other.load_state_dict(state)
    assert other.replay == callback.replay and other.compute_totals == callback.compute_totals
    older = make_callback(lambda **_: None, algo)
    older.load_state_dict({"replay": state["replay"]})  # a checkpoint from before the totals
    assert older.compute_totals == {"generated_tokens": 0.0, "processed_tokens": 0.0, "step_s": 0.0}


class BatchTokens(L.Callback):
    """Real tokens of each step's rollout batch (runs after the RolloutCallback made it), and the
    tokens the module's forward ran in each of the step's updates."""

    def __init__(self):
        self.real_tokens, self.update_tokens = [], []

    def on_train_epoch_start(self, trainer, pl_module):
        self.real_tokens.append(float(pl_module.rollout_batch.attention_mask.sum()))
        self.update_tokens.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.ran_before = pl_module.processed_tokens

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.update_tokens[-1].append(float(pl_module.processed_tokens - self.ran_before))


def test_compute_totals_are_running_sums_of_the_steps_costs(policy, built_tokenizer, monkeypatch):
    tokens = BatchTokens()
    original = L.Trainer.__init__

    def with_probe(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, tokens], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_probe)
    algo = dataclasses.replace(algorithm(), ppo_epochs=2)
    _, _, logger, _ = run(policy, built_tokenizer, algo, max_epochs=3, every=2)
    steps = [0, 1, 2]
    generated = [logger.series("rollout/generated_tokens")[s] for s in steps]
    assert [logger.series("compute/generated_tokens")[s] for s in steps] == pytest.approx(
        list(itertools.accumulate(generated))
    )
    # the tokens the training forward ran, in each of the step's two updates (one per PPO epoch)
    assert [len(updates) for updates in tokens.update_tokens] == [2, 2, 2]
    assert [logger.series("compute/processed_tokens")[s] for s in steps] == pytest.approx(
        list(itertools.accumulate(sum(updates) for updates in tokens.update_tokens))
    )
    for updates, real, made in zip(tokens.update_tokens, tokens.real_tokens, generated):
        assert updates[0] == updates[1] and made < updates[0] < real  # prompts count, a shared one once
    seconds = [logger.series("compute/step_s")[s] for s in steps]
    increments = [b - a for a, b in zip([0.0, *seconds], seconds)]
    step_s = [logger.series("time/step_s")[s] for s in steps]
    assert all(0 < inc <= total for inc, total in zip(increments, step_s))
    val_s = logger.series("time/val_s")  # x = steps completed: validation after step index 1 (and 0, 3)
    assert increments[1] <= step_s[1] - val_s[2] + 1e-6  # the validation's time is not a step's cost


@pytest.mark.parametrize("kwargs, key", [(dict(every=-1), "validation.every"), (dict(samples=0), "validation.samples")])
def test_constructor_validation(kwargs, key):
    with pytest.raises(ValueError, match=key):
        make_callback(lambda **_: None, algorithm(), **kwargs)


def _validate_as(rank, world_size, built_tokenizer, **callback_kwargs):
    """Run ``_validate`` as one rank of a ``world_size`` job (no process group: no reduction)."""
    from types import SimpleNamespace

    callback = make_callback(lambda **_: None, algorithm(), **callback_kwargs)
    callback.engine = scripted_engine_factory(TRAIN + HELDOUT)(model=None, tokenizer=built_tokenizer)
    logger = MemoryLogger()
    datamodule = SimpleNamespace(heldout_records=HELDOUT, correction_template="{problem}{attempt}\nCheck:\nA:")
    trainer = SimpleNamespace(datamodule=datamodule, global_rank=rank, world_size=world_size, loggers=[logger])
    shown = {}  # what reaches trainer.callback_metrics (the progress line reads val/accuracy there)
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda name, value, **_: shown.update({name: value}))
    callback._validate(trainer, module, completed_steps=0)
    assert shown == {"val/accuracy": logger.points[0][1]["val/accuracy"]}
    return callback, logger


def test_validation_shards_heldout_problems_by_rank(built_tokenizer):
    for rank in (0, 1):
        callback, _ = _validate_as(rank, 2, built_tokenizer, correction=False)
        (call,) = callback.engine.calls
        assert call[0] == [r.prompt for r in HELDOUT[rank::2]]
    callback, logger = _validate_as(0, 1, built_tokenizer)
    assert callback.engine.calls[0][0] == [r.prompt for r in HELDOUT]
    logged = logger.points[0][1]
    assert {"val/accuracy", "val/pass@1", "val/pass@2", "val/pass@4", "val/retention", "val/break_rate"} <= set(logged)


def test_validation_ks_are_configurable_and_checked(built_tokenizer):
    _, logger = _validate_as(0, 1, built_tokenizer, ks=[1, 3])
    assert {key for key in logger.points[0][1] if key.startswith("val/pass@")} == {"val/pass@1", "val/pass@3"}
    with pytest.raises(ValueError, match=r"validation\.ks=\[1, 8\]: every k must be <= validation\.samples=4"):
        make_callback(lambda **_: None, algorithm(), ks=[1, 8])
