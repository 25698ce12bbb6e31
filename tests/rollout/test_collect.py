"""collect_round with a scripted engine and the real verifier and tokenizer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cipo.algorithms.advantages import group_advantages
from cipo.algorithms.config import AlgorithmConfig, CorrectionConfig
from cipo.rollout.collect import collect_round
from cipo.rollout.engine import SamplingSettings
from cipo.tasks.arithmetic import make_record
from cipo.types import Record, VerifierResult, VerifyStatus
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from fakes import ScriptedEngine, answer, problem_of

TEMPLATE = "{problem}{attempt}\nCheck:\nA:"
VERDICT_TEMPLATE = "{problem}{attempt}\nThat answer is {verdict}. Check:\nA:"
SAMPLING = SamplingSettings(max_new_tokens=16)
G = 4
RECORDS = [make_record(e, "train") for e in ("4+3", "9-2-2", "1+1+1", "8-5")]
# per prompt, which of the G samples are right: acc 0.25 (band), 1.0, 0.0, 0.5 (band)
MAIN_PATTERN = {
    RECORDS[0].prompt: [1, 0, 0, 0],
    RECORDS[1].prompt: [1, 1, 1, 1],
    RECORDS[2].prompt: [0, 0, 0, 0],
    RECORDS[3].prompt: [0, 1, 1, 0],
}
MAIN_SUCCESS = torch.tensor([s for r in RECORDS for s in MAIN_PATTERN[r.prompt]], dtype=torch.bool)


def revision_even_right(prompt: str, j: int) -> bool:
    return j % 2 == 0


def make_script(revision_rule=revision_even_right):
    def script(prompt: str, j: int, seed: int) -> str:
        record = problem_of(prompt, RECORDS)
        if prompt == record.prompt:  # a first attempt
            return answer(record.reference, bool(MAIN_PATTERN[prompt][j]))
        return answer(record.reference, revision_rule(prompt, j))  # a revision

    return script


def algo(name="cipo", **correction) -> AlgorithmConfig:
    defaults = dict(enabled=name != "grpo", num_anchors=2, samples_per_anchor=2)
    return AlgorithmConfig(name=name, group_size=G, correction=CorrectionConfig(**{**defaults, **correction}))


def run(tokenizer, algorithm, replay_ratio=0.5, template=TEMPLATE, revision_rule=revision_even_right, seed=5):
    """(the round's RolloutBatch, the engine)"""
    result, engine = run_round(tokenizer, algorithm, replay_ratio, template, revision_rule, seed)
    return result.batch, engine


def run_round(tokenizer, algorithm, replay_ratio=0.5, template=TEMPLATE, revision_rule=revision_even_right, seed=5):
    """(the RoundResult, the engine)"""
    engine = ScriptedEngine(tokenizer, make_script(revision_rule))
    result = collect_round(
        engine,
        tokenizer,
        ExactIntegerVerifier(),
        RECORDS,
        algorithm,
        SAMPLING,
        template,
        replay_ratio,
        seed=seed,
        step=3,
    )
    return result, engine


def decode_rows(tokenizer, batch):
    rows = []
    for ids, mask in zip(batch.input_ids, batch.attention_mask):
        rows.append(tokenizer.decode(ids[mask.bool()].tolist(), skip_special_tokens=True))
    return rows


def test_main_rows_first_and_advantages(built_tokenizer):
    batch, engine = run(built_tokenizer, algo())
    n_main = len(RECORDS) * G
    assert len(batch) == n_main + 2 * 2
    assert batch.step == 3
    assert not batch.is_correction[:n_main].any() and batch.is_correction[n_main:].all()
    rewards = MAIN_SUCCESS.float()
    torch.testing.assert_close(batch.advantages[:n_main], group_advantages(rewards, G))
    assert batch.advantages[:n_main].abs().sum() > 0  # mixed groups carry signal
    # main row i is record i // G's prompt followed by its j-th scripted attempt
    rows = decode_rows(built_tokenizer, batch)
    for i in range(n_main):
        record = RECORDS[i // G]
        assert rows[i] == record.prompt + answer(record.reference, bool(MAIN_SUCCESS[i]))
    # the engine's first call: the prompts in order, G samples, the round's seed
    prompts, n, settings, seed = engine.calls[0]
    assert prompts == [r.prompt for r in RECORDS] and n == G and settings == SAMPLING and seed == 5
    assert not batch.sft_mask.any()


def test_grpo_has_no_correction_rows(built_tokenizer):
    result, engine = run_round(built_tokenizer, algo("grpo"))
    batch, metrics = result.batch, result.counts.metrics()
    assert len(batch) == len(RECORDS) * G
    assert not batch.is_correction.any()
    assert len(engine.calls) == 1
    assert metrics["correction/num_anchors"] == 0.0
    assert "correction/fix_rate" not in metrics
    # samples fall back to first attempts
    assert result.samples and set(result.samples[0]) == {"prompt", "attempt", "attempt_verdict"}


def test_num_anchors_zero_is_grpo_too(built_tokenizer):
    batch, engine = run(built_tokenizer, algo(num_anchors=0))
    assert len(batch) == len(RECORDS) * G and len(engine.calls) == 1


def _anchor_prompts(engine) -> list[str]:
    assert len(engine.calls) == 2
    prompts, n, _, seed = engine.calls[1]
    assert n == 2 and seed == engine.calls[0][3] + 1  # revisions use the round's seed + 1
    return prompts


def _expected_correction_prompts(template, rows):
    return {
        template.format(
            problem=RECORDS[i // G].prompt, attempt=answer(RECORDS[i // G].reference, bool(MAIN_SUCCESS[i]))
        )
        for i in rows
    }


def test_anchors_come_from_the_band_and_prompts_use_the_template(built_tokenizer):
    for seed in range(6):
        result, engine = run_round(built_tokenizer, algo(num_anchors=4), seed=seed)
        batch = result.batch
        prompts = _anchor_prompts(engine)
        assert len(prompts) == 4
        band_rows = [0, 1, 2, 3, 12, 13, 14, 15]  # prompts 0 and 3: acc 0.25 and 0.5
        possible = _expected_correction_prompts(TEMPLATE, band_rows)
        assert set(prompts) <= possible, prompts
        # replay 0.5 of 4: two right attempts (rows 0, 13 or 14), two failed ones
        verdicts = [p.split("Ans:")[-1].split("\n")[0] for p in prompts]
        right = sum(problem_of(p, RECORDS).reference == v for p, v in zip(prompts, verdicts))
        assert right == 2
        assert result.counts.metrics()["correction/frac_anchors_in_band"] == 1.0
        # correction rows: the correction prompt + the revision, M per anchor, anchor order
        rows = decode_rows(built_tokenizer, batch)[len(RECORDS) * G :]
        for k, prompt in enumerate(prompts):
            reference = problem_of(prompt, RECORDS).reference
            assert rows[2 * k] == prompt + answer(reference, True)
            assert rows[2 * k + 1] == prompt + answer(reference, False)


def test_uniform_anchors_may_leave_the_band(built_tokenizer):
    out_of_band = set()
    for seed in range(10):
        _, engine = run(built_tokenizer, algo(num_anchors=2, anchor_preference="uniform"), seed=seed)
        for prompt in _anchor_prompts(engine):
            out_of_band.add(problem_of(prompt, RECORDS).prompt in (RECORDS[1].prompt, RECORDS[2].prompt))
    assert True in out_of_band


@pytest.mark.parametrize("replay_ratio, right_expected", [(0.0, 0), (1.0, 2)])
def test_replay_ratio_extremes(built_tokenizer, replay_ratio, right_expected):
    result, engine = run_round(built_tokenizer, algo(), replay_ratio=replay_ratio)
    metrics = result.counts.metrics()
    assert metrics["correction/num_correct_anchors"] == right_expected
    assert metrics["correction/num_failed_anchors"] == 2 - right_expected


def _anchor_verdicts(prompts) -> torch.Tensor:
    """(K*2,) float: each revision's anchor was right."""
    anchor_right = []
    for prompt in prompts:
        reference = problem_of(prompt, RECORDS).reference
        attempt_answer = prompt.split("Ans:")[-1].split("\n")[0]
        anchor_right += [attempt_answer == reference] * 2
    return torch.tensor(anchor_right, dtype=torch.float32)


@pytest.mark.parametrize("penalty", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("method", ["grpo", "dr_grpo", "rloo"])
def test_correction_advantages_per_anchor_minus_the_breakage_penalty(built_tokenizer, penalty, method):
    """Default scoring: each anchor's M revisions normalised on their own, then -lambda on every
    revision that broke a right anchor (it cannot cancel there)."""
    algorithm = dataclasses.replace(algo(num_anchors=4, penalty=penalty), advantage=method)
    result, engine = run_round(built_tokenizer, algorithm)
    s_a = _anchor_verdicts(_anchor_prompts(engine))
    s_c = torch.tensor([1.0, 0.0] * 4)
    expected = group_advantages(s_c, 2, method) - penalty * s_a * (1 - s_c)
    torch.testing.assert_close(result.batch.advantages[len(RECORDS) * G :], expected)
    assert result.counts.metrics()["correction/reward_mean"] == pytest.approx(0.5)  # the verifier's reward


def test_published_shaping_is_in_the_reward(built_tokenizer):
    algorithm = algo(num_anchors=4, penalty=1.0, shaping="reward", std_scope="batch")
    result, engine = run_round(built_tokenizer, algorithm)
    s_a = _anchor_verdicts(_anchor_prompts(engine))
    shaped = torch.tensor([1.0, 0.0] * 4) - s_a * torch.tensor([0.0, 1.0] * 4)
    torch.testing.assert_close(
        result.batch.advantages[len(RECORDS) * G :], group_advantages(shaped, 2, std_scope="batch")
    )
    assert result.counts.metrics()["correction/reward_mean"] == pytest.approx(float(shaped.mean()))


def test_breaking_a_right_anchor_costs_lambda_and_nothing_else_changes(built_tokenizer):
    def corr_adv(penalty):
        batch, engine = run(built_tokenizer, algo(num_anchors=4, penalty=penalty))
        return batch.advantages[len(RECORDS) * G :], _anchor_verdicts(_anchor_prompts(engine))

    plain, s_a = corr_adv(0.0)
    shaped, s_a2 = corr_adv(1.5)
    assert torch.equal(s_a, s_a2) and s_a.any() and (~s_a.bool()).any()
    broken = s_a.bool() & torch.tensor([False, True] * 4)
    torch.testing.assert_close(shaped - plain, -1.5 * broken.float())


def test_sft_objective_keeps_only_successful_corrections(built_tokenizer):
    batch, engine = run(built_tokenizer, algo(num_anchors=2, objective="sft"))
    n_main = len(RECORDS) * G
    prompts = _anchor_prompts(engine)
    assert len(batch) == n_main + len(prompts)  # one of the two revisions per anchor is right
    assert batch.sft_mask[n_main:].all() and not batch.sft_mask[:n_main].any()
    assert batch.is_correction[n_main:].all()
    assert (batch.advantages[n_main:] == 0).all()
    rows = decode_rows(built_tokenizer, batch)[n_main:]
    for prompt, row in zip(prompts, rows):
        assert row == prompt + answer(problem_of(prompt, RECORDS).reference, True)
    assert (batch.loss_mask[n_main:].sum(dim=1) > 0).all()
    # the main stream is untouched by the correction objective
    torch.testing.assert_close(batch.advantages[:n_main], group_advantages(MAIN_SUCCESS.float(), G))


def test_sft_objective_with_no_successful_revision_adds_no_rows(built_tokenizer):
    batch, _ = run(built_tokenizer, algo(objective="sft"), revision_rule=lambda p, j: False)
    assert len(batch) == len(RECORDS) * G and not batch.is_correction.any()


def test_reveal_verdict_template_passes_verdicts(built_tokenizer):
    batch, engine = run(built_tokenizer, algo(num_anchors=4), template=VERDICT_TEMPLATE)
    prompts = _anchor_prompts(engine)
    for prompt in prompts:
        record = problem_of(prompt, RECORDS)
        attempt_answer = prompt.split("Ans:")[-1].split("\n")[0]
        verdict = "correct" if attempt_answer == record.reference else "incorrect"
        assert f"That answer is {verdict}. Check:" in prompt
    assert {"correct", "incorrect"} == {p.split("That answer is ")[1].split(".")[0] for p in prompts}
    rows = list(range(len(RECORDS) * G))
    assert set(prompts) <= {
        VERDICT_TEMPLATE.format(
            problem=RECORDS[i // G].prompt,
            attempt=answer(RECORDS[i // G].reference, bool(MAIN_SUCCESS[i])),
            verdict="correct" if MAIN_SUCCESS[i] else "incorrect",
        )
        for i in rows
    }


class FeedbackVerifier(ExactIntegerVerifier):
    """Feedback that names the completion, so a prompt shows whose feedback it carries."""

    def __call__(self, completions, references):
        results = super().__call__(completions, references)
        return [dataclasses.replace(r, feedback=f"fb[{c}]") for r, c in zip(results, completions)]


@pytest.mark.parametrize("template", [TEMPLATE, "{problem}{attempt}\nTests: {feedback}\nCheck:\nA:"])
def test_feedback_goes_into_the_prompt_only_when_the_template_asks(built_tokenizer, template):
    engine = ScriptedEngine(built_tokenizer, make_script())
    collect_round(
        engine, built_tokenizer, FeedbackVerifier(), RECORDS, algo(num_anchors=4), SAMPLING, template, 0.5, 5, 0
    )
    prompts = _anchor_prompts(engine)
    assert len(prompts) == 4
    for prompt in prompts:
        attempt = prompt.split("\nCheck:")[0].split("\nTests:")[0][len(problem_of(prompt, RECORDS).prompt) :]
        if "{feedback}" in template:  # the anchor's own feedback, not another row's
            assert prompt == template.format(
                problem=problem_of(prompt, RECORDS).prompt, attempt=attempt, feedback=f"fb[{attempt}]"
            )
        else:
            assert "fb[" not in prompt


def test_metrics(built_tokenizer):
    result, engine = run_round(built_tokenizer, algo(num_anchors=4), replay_ratio=0.5)
    batch, m = result.batch, result.counts.metrics()
    for key in (
        "rollout/reward_mean",
        "rollout/accuracy",
        "rollout/frac_all_correct",
        "rollout/frac_all_wrong",
        "rollout/frac_mixed",
        "rollout/frac_zero_std",
        "rollout/completion_len_mean",
        "correction/num_anchors",
        "correction/fix_rate",
        "correction/retention",
        "correction/break_rate",
        "correction/accuracy",
        "time/generate_s",
        "time/verify_s",
        "throughput/tokens_per_s",
        "rollout/generated_tokens",
    ):
        assert key in m, key
    assert m["rollout/accuracy"] == pytest.approx(7 / 16)
    assert m["rollout/reward_mean"] == pytest.approx(7 / 16)
    assert m["rollout/frac_all_correct"] == 0.25 and m["rollout/frac_all_wrong"] == 0.25
    assert m["rollout/frac_mixed"] == 0.5 and m["rollout/frac_zero_std"] == 0.5
    assert m["verify/status_ok"] == 7 and m["verify/status_wrong"] == 9
    assert m["correction/num_anchors"] == 4
    # every anchor gets one right and one wrong revision
    assert m["correction/fix_rate"] == 0.5 and m["correction/retention"] == 0.5
    assert m["correction/break_rate"] == 0.5 and m["correction/accuracy"] == 0.5
    lengths = [
        len(c)
        for c in (answer(r.reference, bool(s)) for r, s in zip([x for x in RECORDS for _ in range(G)], MAIN_SUCCESS))
    ]
    assert m["rollout/completion_len_mean"] == pytest.approx(sum(lengths) / len(lengths) + 1)  # + EOS
    generated = batch.loss_mask.sum().item()
    assert m["rollout/generated_tokens"] == generated
    assert len(result.samples) == 4
    assert set(result.samples[0]) == {"prompt", "attempt", "attempt_verdict", "correction", "correction_verdict"}


class SkippingVerifier(ExactIntegerVerifier):
    """Reference '?' means an unparseable gold answer: a counted skip, never a reward."""

    def __init__(self, status: VerifyStatus = VerifyStatus.SKIPPED) -> None:
        super().__init__()
        self.status = status

    def __call__(self, completions, references):
        return [
            VerifierResult(False, 0.0, self.status) if ref == "?" else result
            for result, ref in zip(
                super().__call__(completions, [r if r != "?" else "0" for r in references]), references
            )
        ]


@pytest.mark.parametrize("status", [VerifyStatus.SKIPPED, VerifyStatus.UNPARSEABLE_GOLD])
def test_skipped_group_is_dropped_from_the_loss(built_tokenizer, status):
    records = [RECORDS[0], Record(id="bad", prompt="Q:1+1\nA:", reference="?")]

    def script(prompt, j, seed):
        return answer("2", j % 2 == 0)

    engine = ScriptedEngine(built_tokenizer, script)
    result = collect_round(
        engine,
        built_tokenizer,
        SkippingVerifier(status),
        records,
        algo(num_anchors=4),
        SAMPLING,
        TEMPLATE,
        0.0,  # failed-only: the skipped problem's rows (all unsuccessful) would otherwise qualify
        seed=0,
        step=0,
    )
    batch = result.batch
    bad_rows = slice(G, 2 * G)
    assert batch.loss_mask[bad_rows].sum() == 0
    assert (batch.advantages[bad_rows] == 0).all()
    assert result.counts.metrics()[f"verify/status_{status.value}"] == G
    # no anchor comes from the skipped problem
    assert all(not p.startswith("Q:1+1\nA:") for p in engine.calls[1][0])
    # the anchors come from the valid problem (before, the skipped group's were chosen, then dropped)
    assert len(engine.calls[1][0]) == 4 and result.counts.anchors == 4  # all 4 (failed) attempts of it


# ---------------------------------------------------------------- transplant, replay evidence
def test_transplant_trains_a_fixed_revision_as_an_answer_to_the_original_prompt(built_tokenizer):
    result, engine = run_round(built_tokenizer, algo(num_anchors=4, transplant=True))
    batch, prompts = result.batch, _anchor_prompts(engine)
    n_main = len(RECORDS) * G
    failed = [p for p, right in zip(prompts, _anchor_verdicts(prompts)[::2].tolist()) if not right]
    assert failed and result.counts.transplanted == len(failed)  # each failed anchor: revision 0 is right
    moved = slice(n_main, n_main + len(failed))
    assert batch.is_transplant[moved].all() and not batch.is_transplant[:n_main].any()
    assert not batch.is_transplant[n_main + len(failed) :].any() and not batch.is_correction[moved].any()
    rows = decode_rows(built_tokenizer, batch)[moved]
    for prompt, row in zip(failed, rows):  # the original prompt, then the fixed revision
        record = problem_of(prompt, RECORDS)
        assert row == record.prompt + answer(record.reference, True)
    # the receiving groups are normalised over G + their transplants: the transplanted rows lead
    assert (batch.advantages[moved] > 0).all()
    without, _ = run(built_tokenizer, algo(num_anchors=4))
    receiving = {RECORDS.index(problem_of(p, RECORDS)) for p in failed}
    for g in range(len(RECORDS)):
        same = torch.equal(batch.advantages[g * G : (g + 1) * G], without.advantages[g * G : (g + 1) * G])
        assert same == (g not in receiving)
    assert result.counts.metrics()["correction/num_transplanted"] == len(failed)


def test_transplant_off_adds_no_rows(built_tokenizer):
    batch, _ = run(built_tokenizer, algo(num_anchors=4))
    assert not batch.is_transplant.any() and len(batch) == len(RECORDS) * G + 8


def test_the_round_reports_what_re_solving_would_keep_and_the_anchors_pass_rates(built_tokenizer):
    result, engine = run_round(built_tokenizer, algo(num_anchors=4), replay_ratio=0.5)
    counts, prompts = result.counts, _anchor_prompts(engine)
    right = [problem_of(p, RECORDS) for p, ok in zip(prompts, _anchor_verdicts(prompts)[::2].tolist()) if ok]
    others = sum(sum(MAIN_PATTERN[r.prompt]) - 1 for r in right)  # the other G - 1 samples of each
    assert (counts.resolve_correct, counts.resolve_samples) == (others, len(right) * (G - 1))
    evidence = counts.retention_counts()
    assert (evidence.kept, evidence.revised) == (counts.outcomes.kept, counts.outcomes.from_right)
    m = counts.metrics()
    assert m["correction/resolve_rate"] == pytest.approx(others / (len(right) * (G - 1)))
    # closeness: anchors from the prompts with pass rates 1/2 and 1/4 (buckets mid and low)
    shares = {b: m[f"correction/anchor_share_pass_{b}"] for b in ("0", "low", "mid", "high", "1")}
    assert sum(shares.values()) == pytest.approx(1.0) and shares["0"] == shares["1"] == 0.0
    assert run_round(built_tokenizer, algo("grpo"))[0].counts.retention_counts() is None


def test_transplant_as_an_inline_check_continues_the_attempt(built_tokenizer):
    """data.transplant_as=inline_check: the row is the prompt + the failed attempt (context), then
    "\\nCheck:" + the fixed revision (trained): a first attempt that checks itself."""
    engine = ScriptedEngine(built_tokenizer, make_script())
    template = "{problem}{attempt}\nCheck:"
    result = collect_round(
        engine, built_tokenizer, ExactIntegerVerifier(), RECORDS, algo(num_anchors=4, transplant=True), SAMPLING,
        template, 0.5, seed=5, step=0, transplant_inline=True,
    )  # fmt: skip
    batch, prompts = result.batch, _anchor_prompts(engine)
    n_main = len(RECORDS) * G
    failed = [p for p, right in zip(prompts, _anchor_verdicts(prompts)[::2].tolist()) if not right]
    moved = range(n_main, n_main + len(failed))
    assert failed and batch.is_transplant[n_main : n_main + len(failed)].all()
    rows = decode_rows(built_tokenizer, batch)
    for prompt, i in zip(failed, moved):
        record = problem_of(prompt, RECORDS)
        assert rows[i] == prompt + answer(record.reference, True)  # = the correction episode's text
        trained = batch.input_ids[i][batch.loss_mask[i].bool()].tolist()
        assert built_tokenizer.decode(trained, skip_special_tokens=True) == "\nCheck:" + answer(record.reference, True)
