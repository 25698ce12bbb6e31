"""The built-in character tokenizer and architecture configs."""

import pytest
from transformers import AutoModelForCausalLM

from cipo.models.builtin import ARCHITECTURES, CHARSET, EOS, PAD, UNK, build_config
from cipo.tasks.arithmetic import arithmetic_records, solution

TASK_TEXTS = [
    "Q:4+3+4-6\nA:",
    "4+3+4-6=7+4-6=11-6=5\nAns:5",
    "Q:4+3+4-6\nA:4+3+4-6=7+4-6=11-6=6\nAns:6\nCheck:\nA:",
    "Q:1+2\nA:1+2=3\nAns:3\nThat answer is incorrect. Check:\nA:",
    "  leading and trailing spaces  \n\n",
    "{braces} [brackets] ~tilde~ `back` \\slash\\",
]


def _roundtrip(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids, tokenizer.decode(ids)


def test_charset_is_printable_ascii_plus_newline():
    assert len(CHARSET) == 96 and len(set(CHARSET)) == 96
    assert "\n" in CHARSET and " " in CHARSET and "~" in CHARSET


def test_special_ids_and_padding_side(built_tokenizer):
    tok = built_tokenizer
    assert (tok.pad_token, tok.eos_token, tok.unk_token) == (PAD, EOS, UNK)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert len(tok) == 3 + len(CHARSET)
    assert tok.padding_side == "left"
    batch = tok(["ab", "abcd"], padding=True, add_special_tokens=False)
    assert batch["input_ids"][0][:2] == [0, 0]  # left padding
    assert batch["attention_mask"][0] == [0, 0, 1, 1]


def test_every_character_is_one_token_and_roundtrips(built_tokenizer):
    for char in CHARSET:
        ids, text = _roundtrip(built_tokenizer, char)
        assert len(ids) == 1 and ids[0] >= 3, repr(char)
        assert text == char, repr(char)
    ids, text = _roundtrip(built_tokenizer, CHARSET)
    assert ids == list(range(3, 3 + len(CHARSET)))
    assert text == CHARSET


@pytest.mark.parametrize("text", TASK_TEXTS)
def test_task_texts_roundtrip(built_tokenizer, text):
    ids, decoded = _roundtrip(built_tokenizer, text)
    assert len(ids) == len(text)
    assert decoded == text


def test_generated_records_roundtrip(built_tokenizer):
    for record in arithmetic_records("train", 50, seed=0):
        for text in (record.prompt, solution(record.meta["expression"])):
            assert _roundtrip(built_tokenizer, text)[1] == text


def test_unknown_character_maps_to_unk(built_tokenizer):
    ids, _ = _roundtrip(built_tokenizer, "é")
    assert ids == [built_tokenizer.unk_token_id]


# The tokenizer the trainer really uses is the one `load_policy` reads back from disk.
# Regression: while the built-in architecture was Qwen2, transformers 5 substituted
# Qwen2Tokenizer (regex + ByteLevel pre-tokenizer) on load and silently dropped spaces and
# newlines ('Q:4+3\nA:' -> 'Q:4+3A:'); these tests catch any return of that.
def test_saved_and_loaded_tokenizer_roundtrips_charset(tiny_policy):
    _, tokenizer = tiny_policy
    ids, text = _roundtrip(tokenizer, CHARSET)
    assert text == CHARSET
    assert ids == list(range(3, 3 + len(CHARSET)))


@pytest.mark.parametrize("text", TASK_TEXTS)
def test_saved_and_loaded_tokenizer_encodes_like_the_built_one(tiny_policy, built_tokenizer, text):
    _, tokenizer = tiny_policy
    assert _roundtrip(tokenizer, text)[0] == _roundtrip(built_tokenizer, text)[0]


def test_loaded_tokenizer_decodes_generated_ids(tiny_policy, built_tokenizer):
    """Decoding (what the verifier sees) must keep newlines even where encoding does not."""
    _, tokenizer = tiny_policy
    text = "4+3+4-6=7+4-6=11-6=5\nAns:5"
    ids = built_tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1)


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_build_config_shapes(name):
    config = build_config(name, vocab_size=99, max_positions=256)
    shape = ARCHITECTURES[name]
    assert config.hidden_size == shape["hidden_size"]
    assert config.num_hidden_layers == shape["num_hidden_layers"]
    assert config.num_attention_heads == config.num_key_value_heads == shape["num_attention_heads"]
    assert config.vocab_size == 99 and config.max_position_embeddings == 256
    assert config.tie_word_embeddings and config.pad_token_id == 0 and config.eos_token_id == 1
    assert config.hidden_size % config.num_attention_heads == 0


def test_build_config_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_config("huge", vocab_size=99)


def test_tiny_model_saved_folder_loads_with_auto_class(tiny_policy_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    assert model.config.model_type == build_config("tiny", 99).model_type
    assert model.get_input_embeddings().weight.shape[0] == 3 + len(CHARSET)
    # tied embeddings: one tensor serves as input embedding and output head
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
