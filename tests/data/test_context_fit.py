"""Prompts that cannot fit the context are dropped (counted) before training."""

from __future__ import annotations

import pytest

from cipo.data.context_fit import drop_overlong_prompts, positions_needed
from cipo.data.datamodule import PromptDataModule
from cipo.types import Record

TEMPLATE = "{problem}{attempt}\nCheck:\nA:"


def _datamodule(prompts: list[str]) -> PromptDataModule:
    records = [Record(f"r{i}", prompt, "1") for i, prompt in enumerate(prompts)]
    datamodule = PromptDataModule(lambda: records, lambda: records[:1], 2, TEMPLATE, TEMPLATE + "{verdict}")
    datamodule.setup("fit")
    return datamodule


def test_positions_needed():
    assert positions_needed(10, 32, None) == 42  # no correction stream
    assert positions_needed(10, 32, 9) == 10 + 64 + 9


def test_only_the_overlong_prompts_go_and_the_sampler_still_works(built_tokenizer, caplog):
    datamodule = _datamodule(["Q:1\nA:", "Q:" + "1+" * 60 + "1\nA:", "Q:2\nA:", "Q:3\nA:"])
    assert drop_overlong_prompts(built_tokenizer, 100, datamodule, 16, [TEMPLATE]) == 1
    assert [r.id for r in datamodule.train_records] == ["r0", "r2", "r3"]
    assert "dropped 1 train and 0 held-out prompts" in caplog.text and "['r1']" in caplog.text
    drawn = {r.id for _ in range(3) for r in datamodule.next_prompts()}
    assert drawn == {"r0", "r2", "r3"}
    assert drop_overlong_prompts(built_tokenizer, None, datamodule, 16, [TEMPLATE]) == 0  # no known limit


def test_nothing_fits_names_the_setting(built_tokenizer):
    datamodule = _datamodule(["Q:1\nA:", "Q:2\nA:"])
    with pytest.raises(ValueError, match=r"no train prompt fits.*rollout\.max_new_tokens=40 x 2"):
        drop_overlong_prompts(built_tokenizer, 64, datamodule, 40, [TEMPLATE])
