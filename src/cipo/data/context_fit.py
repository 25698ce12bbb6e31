"""Drop prompts that cannot fit the model's context, counted and reported, before training.

A correction prompt holds the problem, one whole attempt and the template's words, and then
gets a completion of its own, so a prompt of ``p`` tokens needs ``p + 2 * max_new_tokens +
template`` positions when corrections are on (``p + max_new_tokens`` without). A prompt beyond
that would crash generation (or silently wrap positions) mid-run; dropping it at start, with a
warning that says how many and which, keeps a few outliers in a large data set from costing the
run. If nothing fits, that is a setting to change, and the error names it.

``check_task_fits_model`` runs both checks a command makes before any work: the tokenizer must
round-trip the task's prompts (else the model cannot read the task), and the prompts must fit.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def positions_needed(prompt_tokens: int, max_new_tokens: int, template_tokens: int | None) -> int:
    """Context positions one prompt's episodes use (``template_tokens`` None: no correction stream)."""
    if template_tokens is None:
        return prompt_tokens + max_new_tokens
    return prompt_tokens + 2 * max_new_tokens + template_tokens


def drop_overlong_prompts(tokenizer, limit: int | None, datamodule, max_new_tokens: int, templates: list[str]) -> int:
    """Remove records that do not fit ``limit`` positions from ``datamodule``; returns how many went."""
    if limit is None:
        return 0
    template_tokens = None
    if templates:
        empty = [t.format(problem="", attempt="", verdict="wrong", feedback="") for t in templates]
        template_tokens = max(len(ids) for ids in tokenizer(empty, add_special_tokens=False)["input_ids"])
    records = datamodule.train_records + datamodule.heldout_records
    lengths = [len(ids) for ids in tokenizer([r.prompt for r in records], add_special_tokens=False)["input_ids"]]
    too_long = {r.id for r, n in zip(records, lengths) if positions_needed(n, max_new_tokens, template_tokens) > limit}
    if not too_long:
        return 0
    dropped_train, dropped_heldout = datamodule.keep_records(lambda record: record.id not in too_long)
    setting = (
        f"the model's context is {limit} positions; a prompt needs its own tokens + rollout.max_new_tokens="
        f"{max_new_tokens}" + (f" x 2 + {template_tokens} (correction template)" if templates else "")
    )
    if not datamodule.train_records:
        raise ValueError(
            f"no train prompt fits: {setting}. Lower rollout.max_new_tokens or use a model with a longer context"
        )
    log.warning(
        "dropped %d train and %d held-out prompts that do not fit (%s); first ids: %s. Lower "
        "rollout.max_new_tokens to keep them",
        dropped_train,
        dropped_heldout,
        setting,
        sorted(too_long, key=str)[:5],
    )
    return dropped_train + dropped_heldout


def check_task_fits_model(tokenizer, model, datamodule, max_new_tokens: int, corrections: bool = True) -> None:
    """Fail before any work when the model cannot read the task's prompts; drop (and report)
    the prompts too long for its context (all of them: an error naming rollout.max_new_tokens)."""
    records = datamodule.train_records[:64] + datamodule.heldout_records[:16]
    unk = tokenizer.unk_token_id
    for record in records:
        ids = tokenizer(record.prompt, add_special_tokens=False)["input_ids"]
        decoded = tokenizer.decode(ids)
        lost = (unk is not None and unk in ids) or decoded != record.prompt
        if lost:
            # show where the text is lost (a long chat prompt can differ only deep inside)
            at = next((i for i, (a, b) in enumerate(zip(record.prompt, decoded)) if a != b), 0)
            window = slice(max(0, at - 20), at + 20)
            raise ValueError(
                f"model.path's tokenizer does not round-trip data prompt {record.id!r} at character {at} "
                f"({record.prompt[window]!r} -> {decoded[window]!r}): this model cannot read "
                "this task (data / model mismatch)"
            )
    templates = [datamodule.correction_template, datamodule.verdict_template] if corrections else []
    limit = getattr(model.config, "max_position_embeddings", None)
    drop_overlong_prompts(tokenizer, limit, datamodule, max_new_tokens, templates)
