"""The built-in policy's tokenizer and architecture.

A character-level tokenizer (every printable ASCII character and newline is one token) and a
small Llama causal LM with tied embeddings: both are ordinary transformers objects, saved with
``save_pretrained`` and loadable by any tool that reads a Hugging Face folder (vLLM included).

Why Llama and not Qwen2: transformers 5 maps the ``qwen2`` model type to ``Qwen2Tokenizer``
whatever ``tokenizer_config.json`` says, and that class silently drops the newlines our task
format depends on. For ``llama`` the saved ``TokenizersBackend`` class is honoured, so
``AutoTokenizer`` (and vLLM, which uses it) reproduce our tokenizer exactly.
The trained weights ship in ``cipo/assets/builtin_policy`` (the arithmetic task, ``model.path=builtin``)
and ``cipo/assets/missing_operand_policy`` (``model.path=builtin_missing_operand``), both produced by
``scripts/build_builtin_policy.py``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)
CHARSET = "\n" + "".join(chr(code) for code in range(32, 127))

# Sizes measured on a 2-core CPU (see the build script's docstring for the choice).
ARCHITECTURES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192),
    "small": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384),
    "base": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=6, intermediate_size=576),
}


# model.path names of the shipped policies -> their folders in cipo/assets (one per built-in task)
BUILTIN_POLICIES = {"builtin": "builtin_policy", "builtin_missing_operand": "missing_operand_policy"}


def builtin_policy_dir(name: str = "builtin") -> Path:
    """Folder of a shipped, warm-started policy (inside the installed package)."""
    return Path(str(files("cipo") / "assets" / BUILTIN_POLICIES[name]))


def build_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Character-level fast tokenizer; ids 0..2 are <pad>, </s>, <unk>."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for char in CHARSET:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.padding_side = "left"
    return tokenizer


def build_config(architecture: str, vocab_size: int, max_positions: int = 512) -> LlamaConfig:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    return llama_config(vocab_size, max_positions, **ARCHITECTURES[architecture])


def llama_config(
    vocab_size: int,
    max_positions: int,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
) -> LlamaConfig:
    """A tied-embedding Llama of any shape for the character tokenizer (its pad/eos ids, no GQA)."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
