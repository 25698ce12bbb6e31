"""CIPOModule: a step moves every parameter, micro-batching never changes the gradient, the
hand-over guard, the KL reference, PPO epochs. Driven through a real lightning.Trainer with
the RolloutCallback and a scripted engine (so rewards are mixed and advantages non-zero)."""

from __future__ import annotations

import copy
import dataclasses
import functools

import lightning as L
import pytest
import torch

from cipo.algorithms.config import AlgorithmConfig, CorrectionConfig
from cipo.algorithms.logprobs import token_logprobs
from cipo.algorithms.micro_batches import MAX_PAD_RATIO
from cipo.callbacks.rollout import RolloutCallback
from cipo.data.datamodule import PromptDataModule
from cipo.module import CIPOModule
from cipo.rollout.collect import collect_round
from cipo.rollout.engine import SamplingSettings
from cipo.settings import ModuleSettings, ValidationSettings
from cipo.tasks.arithmetic import arithmetic_records
from cipo.types import RolloutBatch
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from fakes import ScriptedEngine, alternating_script, scripted_engine_factory

TEMPLATE = "{problem}{attempt}\nCheck:\nA:"
VERDICT_TEMPLATE = "{problem}{attempt}\nThat answer is {verdict}. Check:\nA:"
SAMPLING = SamplingSettings(max_new_tokens=24)
TRAIN = arithmetic_records("train", 16, seed=0, levels=[1, 2])
HELDOUT = arithmetic_records("heldout", 4, seed=0, levels=[1, 2])


def algorithm(**overrides) -> AlgorithmConfig:
    correction = overrides.pop("correction", {})
    base = AlgorithmConfig(group_size=4, correction=CorrectionConfig(num_anchors=2, samples_per_anchor=2, **correction))
    return dataclasses.replace(base, **overrides)


def make_module(policy, tokenizer, algo, lr=1e-2, optimizer=torch.optim.AdamW, micro_batch_size=64, **settings):
    return CIPOModule(
        policy,
        tokenizer,
        algo,
        ModuleSettings(micro_batch_size=micro_batch_size, **settings),
        SAMPLING,
        optimizer=functools.partial(optimizer, lr=lr),
    )


def make_datamodule(algo, batch_size=4):
    return PromptDataModule(
        train=lambda: list(TRAIN),
        heldout=lambda: list(HELDOUT),
        batch_size=batch_size,
        correction_template=TEMPLATE,
        verdict_template=VERDICT_TEMPLATE,
        seed=0,
        updates_per_step=algo.updates_per_step,
    )


def make_trainer(max_epochs=1, callbacks=()):
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        log_every_n_steps=1,
        callbacks=list(callbacks),
    )


def fit(module, algo, max_epochs=1, extra_callbacks=(), val_every=0):
    rollout = RolloutCallback(
        engine=scripted_engine_factory(TRAIN + HELDOUT),
        verifier=ExactIntegerVerifier(),
        algorithm=algo,
        sampling=SAMPLING,
        validation=ValidationSettings(every=val_every),
        seed=0,
    )
    trainer = make_trainer(max_epochs, [rollout, *extra_callbacks])
    trainer.fit(module, datamodule=make_datamodule(algo))
    return trainer, rollout


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture
def policy(tiny_policy):
    return tiny_policy[0]


def scripted_batch(tokenizer, algo, records=TRAIN[:4], step=0) -> RolloutBatch:
    engine = ScriptedEngine(tokenizer, alternating_script(records))
    return collect_round(
        engine, tokenizer, ExactIntegerVerifier(), records, algo, SAMPLING, TEMPLATE, 0.5, seed=0, step=step
    ).batch


# ------------------------------------------------------------------------------- (a)
def test_every_parameter_changes_after_one_step(policy, built_tokenizer):
    algo = algorithm()
    before = snapshot(policy)
    module = make_module(policy, built_tokenizer, algo)
    trainer, _ = fit(module, algo)
    assert trainer.global_step == 1
    unchanged = [name for name, p in policy.named_parameters() if torch.equal(p.detach(), before[name])]
    assert not unchanged, f"parameters unchanged after a step: {unchanged}"
    metrics = trainer.callback_metrics
    assert metrics["train/grad_norm"] > 0
    assert float(metrics["train/ratio_mean"]) == pytest.approx(1.0, abs=1e-5)  # on-policy: old == new
    assert metrics["rollout/accuracy"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------- (b)
def grads_with_micro_batch(policy, tokenizer, algo, batch, micro_batch_size):
    model = copy.deepcopy(policy)
    module = make_module(model, tokenizer, algo, micro_batch_size=micro_batch_size)
    denominators = module._denominators(batch)
    for start in range(0, len(batch), micro_batch_size):
        micro = batch.select(torch.arange(start, min(start + micro_batch_size, len(batch))))
        loss, _ = module._micro_batch_loss(micro, denominators)
        loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
@pytest.mark.parametrize("objective", ["rl", "sft"])
def test_micro_batch_size_never_changes_the_gradient(policy, built_tokenizer, loss_agg, objective):
    algo = algorithm(loss_agg=loss_agg, kl_coef=0.0, correction={"objective": objective})
    batch = scripted_batch(built_tokenizer, algo)
    assert batch.is_correction.any() and (batch.advantages != 0).any()
    if objective == "sft":
        assert batch.sft_mask.any()
    full = grads_with_micro_batch(policy, built_tokenizer, algo, batch, len(batch))
    for size in (1, 3):
        micro = grads_with_micro_batch(policy, built_tokenizer, algo, batch, size)
        for name in full:
            torch.testing.assert_close(micro[name], full[name], atol=1e-5, rtol=1e-4, msg=f"{name} (micro={size})")
    assert sum(g.abs().sum() for g in full.values()) > 0


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean_token_sum_norm"])
def test_shared_prompts_change_neither_loss_nor_gradient(policy, built_tokenizer, loss_agg):
    """Prefix sharing (models/prefix_sharing.py) against the plain forward, KL reference and
    the old-logprob pass included; the batch's groups share their prompts."""
    algo = algorithm(loss_agg=loss_agg, kl_coef=0.1, is_weights_cap=2.0)
    batch = scripted_batch(built_tokenizer, algo)
    results = []
    for enabled in (True, False):
        model = copy.deepcopy(policy)
        module = make_module(model, built_tokenizer, algo)
        module.setup("fit")
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():  # a reference that differs from the policy, so KL is not 0
            for p in module.reference_model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
        module.prefix_sharing.enabled = enabled
        assert (module._shared_prefixes(batch) is not None) == enabled
        batch.old_logprobs = module._policy_logprobs(batch)
        loss, stats = module._micro_batch_loss(batch, module._denominators(batch))
        loss.backward()
        results.append((batch.old_logprobs, stats, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (old_shared, stats_shared, grads_shared), (old_plain, stats_plain, grads_plain) = results
    completions = batch.loss_mask.bool()  # the shared pass scores completion tokens only
    assert completions.any()
    torch.testing.assert_close(old_shared[completions], old_plain[completions], atol=1e-5, rtol=0)
    assert stats_shared.keys() == stats_plain.keys() and stats_plain["kl"] > 0
    for name, value in stats_plain.items():
        assert stats_shared[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    for name in grads_plain:
        torch.testing.assert_close(grads_shared[name], grads_plain[name], atol=1e-6, rtol=1e-4, msg=name)


def hosts(prompts, rows, ends, resident) -> set:
    """The prompts that hold a resident row (the first that does, as the plan picks)."""
    held = set()
    for row, end, stays in zip(rows, ends, resident):
        if stays:
            held.add(next(p for p in prompts if len(p) - 1 >= end - 1 and p[: end - 1] == tuple(row[: end - 1])))
    return held


def test_processed_tokens_count_a_shared_prompt_once_per_micro_batch(policy, built_tokenizer):
    """compute/processed_tokens' source: the tokens the forward ran, so with sharing each distinct
    prompt of a micro-batch once (minus the last token, which opens every row's continuation)."""
    algo = algorithm()
    batch = scripted_batch(built_tokenizer, algo)
    counts = []
    for enabled in (True, False):
        module = make_module(copy.deepcopy(policy), built_tokenizer, algo, micro_batch_size=8)
        module.prefix_sharing.enabled = enabled
        expected = 0
        for _, micro in module._micro_batches(batch):
            module._micro_batch_loss(micro, module._denominators(batch))
            ends, starts = micro.attention_mask.sum(1).tolist(), micro.prompt_lengths.tolist()
            rows = [row.tolist() for row in micro.input_ids]
            prompts = [tuple(row[:start]) for row, start in zip(rows, starts)]
            # a row resides in another prompt when the tokens it reads (all but its last) start that
            # prompt minus its last token: it runs nothing, and a prompt left without rows is not run
            resident = [
                end - 1 >= start
                and any(len(p) - 1 >= end - 1 and p[: end - 1] == tuple(row[: end - 1]) for p in prompts)
                for row, start, end in zip(rows, starts, ends)
            ]
            running = [r for r in range(len(rows)) if not resident[r]]
            if enabled and (len(set(prompts)) < len(rows) or any(resident)):
                expected += sum(
                    len(p) - 1 for p in {prompts[r] for r in running} | hosts(prompts, rows, ends, resident)
                )
                expected += sum(ends[r] - starts[r] + 1 for r in running)
            else:
                expected += sum(ends)
        assert module.processed_tokens == expected
        counts.append(expected)
    assert counts[0] < counts[1] == int(batch.attention_mask.sum())


def test_micro_batches_group_rows_by_length_and_cut_padding(policy, built_tokenizer):
    algo = algorithm()
    batch = scripted_batch(built_tokenizer, algo)
    module = make_module(policy, built_tokenizer, algo, micro_batch_size=3)
    pairs = list(module._micro_batches(batch))
    assert sorted(torch.cat([rows for rows, _ in pairs]).tolist()) == list(range(len(batch)))
    lengths = batch.attention_mask.sum(dim=1)
    widths = [micro.input_ids.shape[1] for _, micro in pairs]
    assert widths == sorted(widths, reverse=True) and widths[-1] < batch.input_ids.shape[1]
    moved = 0
    for rows, micro in pairs:
        plan = module._shared_prefixes(micro)
        running = rows if plan is None else rows[~plan.resident]  # residents (anchors) run no forward
        moved += len(rows) - len(running)
        assert len(running) <= 3 and micro.input_ids.shape[1] == int(lengths[rows].max())
        assert MAX_PAD_RATIO * int(lengths[running].min()) >= int(lengths[running].max())  # bounded padding
        assert torch.equal(micro.input_ids, batch.input_ids[rows, : micro.input_ids.shape[1]])
        assert int(micro.attention_mask.sum()) == int(lengths[rows].sum())  # no real token was cut
        assert torch.equal(micro.advantages, batch.advantages[rows])
    assert moved > 0  # the scripted batch's anchors joined their revisions


def test_without_sharing_micro_batches_keep_max_rows(policy, built_tokenizer):
    """A model that runs the plain forward (here: a reason against sharing) gets no resident rows moved
    in: every micro-batch stays within micro_batch_size."""
    algo = algorithm()
    batch = scripted_batch(built_tokenizer, algo)
    module = make_module(policy, built_tokenizer, algo, micro_batch_size=3)
    assert module.prefix_sharing.active(module.policy)
    module.prefix_sharing.reasons[id(module.policy)] = "switched off by the test"
    assert not module.prefix_sharing.active(module.policy)
    pairs = list(module._micro_batches(batch))
    assert sorted(torch.cat([rows for rows, _ in pairs]).tolist()) == list(range(len(batch)))
    assert all(len(rows) <= 3 for rows, _ in pairs)


def test_micro_batches_split_rows_of_very_different_lengths(policy, built_tokenizer):
    batch = scripted_batch(built_tokenizer, algorithm())
    lengths = batch.attention_mask.sum(dim=1)
    short = int(lengths.min())
    batch.attention_mask[0, short:] = 0  # one row becomes far shorter than the others
    batch.attention_mask[1, : 2 * short + 1] = 1  # and one at least twice as long as it
    module = make_module(policy, built_tokenizer, algorithm(), micro_batch_size=64)
    pairs = list(module._micro_batches(batch))
    with_short = next(rows.tolist() for rows, _ in pairs if 0 in rows.tolist())
    assert 1 not in with_short  # 64 rows would fit one micro-batch, but row 0 would be padded over 2x its length


def test_right_padded_rows_drop_the_attention_mask_without_changing_logprobs(policy, built_tokenizer):
    batch = scripted_batch(built_tokenizer, algorithm())
    module = make_module(policy, built_tokenizer, algorithm())
    masked = token_logprobs(
        policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch.input_ids
    )
    plain = token_logprobs(module._forward_logits(policy, batch), batch.input_ids)
    torch.testing.assert_close(plain * batch.loss_mask, masked * batch.loss_mask, atol=1e-5, rtol=1e-5)
    # Any other padding (here: two pads in front of every row) keeps the mask.
    left = dataclasses.replace(
        batch,
        input_ids=torch.nn.functional.pad(batch.input_ids, (2, 0), value=built_tokenizer.pad_token_id),
        attention_mask=torch.nn.functional.pad(batch.attention_mask, (2, 0)),
    )
    expected = policy(input_ids=left.input_ids, attention_mask=left.attention_mask).logits
    unmasked = policy(input_ids=left.input_ids).logits
    real = batch.loss_mask.bool()
    torch.testing.assert_close(module._forward_logits(policy, left)[:, 2:][real], expected[:, 2:][real])
    assert not torch.allclose(unmasked[:, 2:][real], expected[:, 2:][real], atol=1e-4)  # the mask mattered


def test_micro_batch_size_same_parameters_after_a_trainer_step(policy, built_tokenizer):
    algo = algorithm()
    results = []
    for size in (1, 64):
        model = copy.deepcopy(policy)
        module = make_module(model, built_tokenizer, algo, lr=0.5, optimizer=torch.optim.SGD, micro_batch_size=size)
        fit(module, algo)
        results.append(snapshot(model))
    moved = sum(float((results[1][n] - p.detach()).abs().sum()) for n, p in policy.named_parameters())
    assert moved > 0
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], atol=1e-5, rtol=0, msg=name)


# ------------------------------------------------------------------------------- (c)
def test_missing_rollout_callback_raises(policy, built_tokenizer):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo)
    with pytest.raises(RuntimeError, match="RolloutCallback"):
        make_trainer().fit(module, datamodule=make_datamodule(algo))


def test_stale_rollout_batch_raises(policy, built_tokenizer):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo)
    module.rollout_batch = scripted_batch(built_tokenizer, algo, step=0)
    assert module._current_batch() is module.rollout_batch  # epoch 0, batch of step 0

    class StaleHandOver(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            pl_module.rollout_batch = scripted_batch(built_tokenizer, algo, step=7)

    with pytest.raises(RuntimeError, match=r"epoch 0 \(have one for 7\).*RolloutCallback"):
        make_trainer(callbacks=[StaleHandOver()]).fit(module, datamodule=make_datamodule(algo))


def test_batch_is_released_after_the_epoch(policy, built_tokenizer):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo)
    fit(module, algo)
    assert module.rollout_batch is None


# ------------------------------------------------------------------------------- (d)
def test_kl_reference_is_frozen_copy_and_kl_is_logged(policy, built_tokenizer):
    algo = algorithm(kl_coef=0.1)
    initial = snapshot(policy)
    module = make_module(policy, built_tokenizer, algo)
    logged = []

    class KLSpy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append(float(trainer.callback_metrics["train/kl"]))

    trainer, _ = fit(module, algo, max_epochs=2, extra_callbacks=[KLSpy()])
    reference = module.reference_model
    assert reference is not None and reference is not policy
    assert not reference.training
    assert all(not p.requires_grad for p in reference.parameters())
    for name, p in reference.named_parameters():
        assert torch.equal(p, initial[name]), name  # the reference is the initial policy
    assert any(not torch.equal(p.detach(), initial[n]) for n, p in policy.named_parameters())
    assert len(logged) == 2
    assert logged[0] == pytest.approx(0.0, abs=1e-6)  # before any update policy == reference
    assert logged[1] > 0


def test_kl_reference_is_not_in_the_checkpoint(policy, built_tokenizer):
    module = make_module(policy, built_tokenizer, algorithm(kl_coef=0.1))
    module.setup("fit")
    assert module.reference_model is not None
    assert not any(name.startswith("_reference") for name in module.state_dict())


def test_no_reference_without_kl(policy, built_tokenizer):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo)
    trainer, _ = fit(module, algo)
    assert module.reference_model is None
    assert "train/kl" not in trainer.callback_metrics


# ------------------------------------------------------------------------------- (e)
def test_ppo_epochs_compute_old_logprobs_once_and_step_twice(policy, built_tokenizer, monkeypatch):
    algo = algorithm(ppo_epochs=2)
    module = make_module(policy, built_tokenizer, algo, lr=5e-2)
    calls = []
    original = CIPOModule._policy_logprobs

    def spy(self, batch):
        calls.append(self.current_epoch)
        return original(self, batch)

    monkeypatch.setattr(CIPOModule, "_policy_logprobs", spy)
    ratios = []

    class RatioSpy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ratios.append(float(trainer.callback_metrics["train/ratio_mean"]))

    trainer, _ = fit(module, algo, max_epochs=2, extra_callbacks=[RatioSpy()])
    assert trainer.global_step == 4  # 2 optimizer steps per RL step
    assert calls == [0, 1]  # old logprobs once per rollout batch
    assert ratios[0] == pytest.approx(1.0, abs=1e-5) and ratios[2] == pytest.approx(1.0, abs=1e-5)
    assert abs(ratios[1] - 1.0) > 1e-4 and abs(ratios[3] - 1.0) > 1e-4  # second pass: policy moved


def test_num_mini_batches_steps(policy, built_tokenizer):
    algo = algorithm(num_mini_batches=2)
    module = make_module(policy, built_tokenizer, algo)
    trainer, _ = fit(module, algo)
    assert trainer.global_step == 2


# --------------------------------------------------------------------------- misc
def test_logged_train_metrics(policy, built_tokenizer):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo)
    trainer, _ = fit(module, algo)
    metrics = trainer.callback_metrics
    for key in (
        "train/loss",
        "train/pg_loss",
        "train/correction_loss",
        "train/clipfrac",
        "train/grad_norm",
        "train/lr",
        "train/entropy",
        "rollout/logprob_diff_mean",
        "train/tokens",
        "time/forward_s",
        "time/backward_s",
        "time/train_cpu_s",
    ):
        assert key in metrics, key
    assert float(metrics["time/train_cpu_s"]) > 0
    assert float(metrics["train/lr"]) == pytest.approx(1e-2)
    assert float(metrics["train/loss"]) == pytest.approx(
        float(metrics["train/pg_loss"]) + algo.correction.coef * float(metrics["train/correction_loss"]), abs=1e-5
    )
    assert float(metrics["train/entropy"]) > 0


def test_non_finite_gradient_is_skipped_then_stops(policy, built_tokenizer, monkeypatch):
    algo = algorithm()
    module = make_module(policy, built_tokenizer, algo, max_consecutive_skips=2)
    before = snapshot(policy)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: torch.tensor(float("nan")))
    with pytest.raises(RuntimeError, match="max_consecutive_skips"):
        fit(module, algo, max_epochs=3)
    assert module.skips.skipped_steps == 2
    for name, p in policy.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


def test_micro_batch_size_validation(policy, built_tokenizer):
    with pytest.raises(ValueError, match="micro_batch_size"):
        make_module(policy, built_tokenizer, algorithm(), micro_batch_size=0)


def test_is_weights_cap_reweights_tokens_by_the_engine_mismatch(policy, built_tokenizer):
    """With a cap, each token's loss is scaled by min(exp(old - engine), cap); off by default."""
    batch = scripted_batch(built_tokenizer, algorithm())
    plain = make_module(policy, built_tokenizer, algorithm())
    capped = make_module(policy, built_tokenizer, algorithm(is_weights_cap=2.0))
    denominators = plain._denominators(batch)
    loss_plain, stats_plain = plain._micro_batch_loss(batch, denominators)
    loss_capped, stats_capped = capped._micro_batch_loss(batch, denominators)
    assert "is_weight_sum" not in stats_plain
    mean_weight = stats_capped["is_weight_sum"] / stats_capped["rl_tokens"]
    assert 0 < mean_weight <= 2.0
    assert not torch.isclose(loss_plain, loss_capped)
    # all-equal logprobs: every weight is exp(0) = 1 and the loss is unchanged
    same = dataclasses.replace(batch, engine_logprobs=plain._policy_logprobs(batch))
    torch.testing.assert_close(
        capped._micro_batch_loss(same, denominators)[0], plain._micro_batch_loss(same, denominators)[0]
    )


def test_is_weight_mean_is_logged(policy, built_tokenizer):
    algo = algorithm(is_weights_cap=2.0)
    trainer, _ = fit(make_module(policy, built_tokenizer, algo), algo)
    assert 0 < float(trainer.callback_metrics["train/is_weight_mean"]) <= 2.0
