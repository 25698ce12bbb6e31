"""Generated blocks in hand-written Markdown: replaced in place, markers kept, bad markers named."""

import pytest

from cipo.reporting.generated_block import markers, replace_generated_block

BEGIN, END = markers("study")
DOC = f"# Results\n\nprose before\n\n{BEGIN}\nold table\n{END}\n\nprose after\n"


def test_only_the_block_changes_and_a_rerun_is_stable():
    once = replace_generated_block(DOC, "study", "| new | table |\n")
    assert once == f"# Results\n\nprose before\n\n{BEGIN}\n| new | table |\n{END}\n\nprose after\n"
    assert replace_generated_block(once, "study", "| new | table |") == once


def test_other_keys_are_left_alone():
    other_begin, other_end = markers("other")
    doc = DOC + f"\n{other_begin}\nkeep me\n{other_end}\n"
    assert "keep me" in replace_generated_block(doc, "study", "x")


@pytest.mark.parametrize(
    "doc, message",
    [
        ("# Results\nno markers\n", "found 0 and 0"),
        (DOC + BEGIN + "\n", "found 2 and 1"),
        (f"{END}\n{BEGIN}\n", "comes before its BEGIN"),
    ],
)
def test_bad_markers_are_errors(doc, message):
    with pytest.raises(ValueError, match=message):
        replace_generated_block(doc, "study", "x")
