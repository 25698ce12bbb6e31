"""PromptDataModule: the stateful prompt sampler, its checkpoint state, the update schedule."""

import pytest

from cipo.data.datamodule import PromptDataModule, UpdateIndices, check_records
from cipo.data.errors import DataError
from cipo.data.prompts import PromptStyle
from cipo.tasks.arithmetic import arithmetic_records
from cipo.types import Record

RECORDS = arithmetic_records("train", 10, seed=0)
HELDOUT = arithmetic_records("heldout", 3, seed=0)


def make(batch_size=4, seed=0, updates_per_step=1, train=RECORDS):
    dm = PromptDataModule(
        train=lambda: list(train),
        heldout=lambda: list(HELDOUT),
        batch_size=batch_size,
        correction_template="{problem}{attempt}",
        verdict_template="{problem}{attempt}{verdict}",
        seed=seed,
        updates_per_step=updates_per_step,
    )
    dm.setup("fit")
    return dm


def ids(records):
    return [r.id for r in records]


def test_each_pass_covers_every_record_once_then_reshuffles():
    dm = make(batch_size=5)
    first_pass = ids(dm.next_prompts()) + ids(dm.next_prompts())
    second_pass = ids(dm.next_prompts()) + ids(dm.next_prompts())
    assert sorted(first_pass) == sorted(second_pass) == sorted(ids(RECORDS))
    assert first_pass != second_pass  # a new permutation each pass
    assert dm.state_dict() == {"pass": 1, "position": 10}


def test_batches_straddle_pass_boundaries():
    dm = make(batch_size=4)
    batches = [ids(dm.next_prompts()) for _ in range(5)]  # 20 prompts = 2 passes of 10
    flat = [i for b in batches for i in b]
    assert all(len(b) == 4 for b in batches)
    assert sorted(flat[:10]) == sorted(flat[10:]) == sorted(ids(RECORDS))


def test_batch_larger_than_the_dataset():
    dm = make(batch_size=25)
    batch = ids(dm.next_prompts())
    assert len(batch) == 25
    assert sorted(batch[:10]) == sorted(ids(RECORDS))


def test_order_is_seeded():
    assert ids(make(seed=0).next_prompts()) == ids(make(seed=0).next_prompts())
    assert ids(make(seed=0, batch_size=10).next_prompts()) != ids(make(seed=1, batch_size=10).next_prompts())


def test_state_dict_round_trip_continues_the_sequence():
    reference = make(batch_size=3)
    for _ in range(4):  # into the second pass
        reference.next_prompts()
    state = reference.state_dict()
    expected = [ids(reference.next_prompts()) for _ in range(4)]

    restored = make(batch_size=3)
    restored.load_state_dict(state)
    assert [ids(restored.next_prompts()) for _ in range(4)] == expected


def test_load_state_before_setup():
    reference = make(batch_size=3)
    reference.next_prompts()
    reference.next_prompts()
    state = reference.state_dict()
    expected = ids(reference.next_prompts())
    fresh = PromptDataModule(lambda: list(RECORDS), lambda: [], 3, "{problem}{attempt}", "{verdict}", seed=0)
    fresh.load_state_dict(state)
    fresh.setup("fit")
    assert ids(fresh.next_prompts()) == expected


def test_setup_is_idempotent():
    calls = []
    dm = PromptDataModule(lambda: calls.append(1) or list(RECORDS), lambda: [], 2, "", "", seed=0)
    dm.setup("fit")
    dm.next_prompts()
    dm.setup("fit")  # Lightning calls setup again inside fit: must not reset the sampler
    assert calls == [1] and dm.state_dict()["position"] == 2


@pytest.mark.parametrize("updates", [1, 3])
def test_train_dataloader_yields_update_indices(updates):
    dm = make(updates_per_step=updates)
    assert [int(i) for i in dm.train_dataloader()] == list(range(updates))
    assert len(UpdateIndices(updates)) == updates


def test_validation():
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        PromptDataModule(lambda: RECORDS, lambda: [], 0, "", "")
    with pytest.raises(ValueError, match="data.train produced no records"):
        make(train=[])
    with pytest.raises(ValueError, match=r"data\.train: record 1 \(id 'b'\) has an empty prompt"):
        check_records([Record("a", "Q", "1"), Record("b", "  ", "1")], "data.train")
    with pytest.raises(ValueError, match="non-string reference"):
        check_records([Record("a", "Q", 1)], "data.heldout")
    assert make().heldout_records == HELDOUT


# ------------------------------------------------------------------ prompt formatting
STYLE = PromptStyle(format="auto", instruction="Answer with a number.", check="Check it.")
CHAT = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def styled(prompt=STYLE, tokenizer=None):
    dm = PromptDataModule(lambda: list(RECORDS), lambda: list(HELDOUT), 4, seed=0, prompt=prompt)
    if tokenizer is not None:
        dm.attach_tokenizer(tokenizer)
    return dm


def test_prompt_style_renders_records_and_derives_templates_at_setup(built_tokenizer):
    built_tokenizer.chat_template = CHAT
    dm = styled(tokenizer=built_tokenizer)
    assert dm.correction_template is None  # derived at setup, with the tokenizer
    dm.setup("fit")
    first = dm.train_records[0]
    assert first.prompt == f"[user] {RECORDS[0].prompt}\n\nAnswer with a number.\n[assistant] "
    assert first.meta["problem_text"] == RECORDS[0].prompt and first.reference == RECORDS[0].reference
    assert dm.heldout_records[0].prompt.startswith(f"[user] {HELDOUT[0].prompt}")
    assert dm.correction_template == "{problem}{attempt}\n[user] Check it.\n[assistant] "
    assert "{verdict}" in dm.verdict_template


def test_plain_style_needs_no_tokenizer_and_templates_are_exclusive():
    dm = styled(PromptStyle(format="plain", check="Check it."))
    dm.setup("fit")
    assert dm.train_records[0].prompt == RECORDS[0].prompt + "\n\n"
    with pytest.raises(ValueError, match="call datamodule.attach_tokenizer"):
        styled().setup("fit")
    with pytest.raises(ValueError, match="data.prompt derives the correction templates"):
        PromptDataModule(lambda: RECORDS, lambda: [], 2, "{problem}{attempt}", "{verdict}", prompt=STYLE)
    with pytest.raises(ValueError, match="data.correction_template and data.verdict_template are required"):
        PromptDataModule(lambda: RECORDS, lambda: [], 2)


def test_read_sources_checks_data_before_any_tokenizer(tmp_path):
    from cipo.data.records import load_records

    (tmp_path / "d.jsonl").write_text('{"prompt": "ok", "answer": "1"}\n{"prompt": "", "answer": "2"}\n')
    source = lambda: load_records(path=str(tmp_path / "d.jsonl"))  # noqa: E731
    dm = PromptDataModule(source, lambda: [], 2, seed=0, prompt=STYLE)
    with pytest.raises(DataError, match=r"^data\.train: .*d\.jsonl line 2: field 'prompt' is empty"):
        dm.read_sources()


def test_a_bad_row_names_the_config_key_that_skips_it_once(tmp_path):
    from functools import partial

    from cipo.data.records import load_records

    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n{"question": \n')
    source = partial(load_records, path=str(path), fields={"prompt": "question"}, reference={"kind": "answer"})
    dm = PromptDataModule(lambda: RECORDS, source, 2, seed=0, prompt=STYLE)
    with pytest.raises(DataError) as info:
        dm.read_sources()
    message = str(info.value)
    assert message.startswith(f"data.heldout: {path} line 2: is not valid JSON")
    assert message.endswith("; or set data.heldout.on_error=skip to drop bad rows with a count")
    assert message.count("on_error") == 1 and info.value.__cause__ is None  # one message, not a chain of two


def test_transplant_form_is_checked():
    templates = dict(correction_template="{problem}{attempt}", verdict_template="{problem}{attempt}{verdict}")
    assert make().transplant_as == "answer"
    with pytest.raises(ValueError, match=r"data\.transplant_as must be one of \('answer', 'inline_check'\)"):
        PromptDataModule(lambda: RECORDS, lambda: HELDOUT, 4, transplant_as="prefix", **templates)
