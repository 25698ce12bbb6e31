"""Load a policy and its tokenizer from a folder (or a Hub name on a networked machine)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from cipo.models.builtin import BUILTIN_POLICIES, builtin_policy_dir
from cipo.models.packaged import PACKAGED_MODELS, packaged_model_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(path: str) -> str:
    """``builtin`` / ``builtin_missing_operand`` -> a shipped policy; a packaged model's name
    (``smollm2``) -> its converted folder (converted on first use, ``models/packaged.py``); a
    path-like string must exist."""
    if path in BUILTIN_POLICIES:
        folder = builtin_policy_dir(path)
        if not (folder / "config.json").exists():
            task = "" if path == "builtin" else " --task " + path.removeprefix("builtin_")
            raise FileNotFoundError(
                f"the built-in policy {path!r} is missing from {folder}; rebuild it with "
                f"`python scripts/build_builtin_policy.py{task}` or reinstall the package"
            )
        return str(folder)
    if path in PACKAGED_MODELS:
        return str(packaged_model_dir(path))
    looks_local = path.startswith(("/", ".", "~")) or Path(path).expanduser().exists()
    if looks_local and not (Path(path).expanduser() / "config.json").exists():
        raise FileNotFoundError(
            f"model.path={path!r}: no config.json there; point model.path at a folder written by "
            "save_pretrained (or a Hub name on a machine with network access)"
        )
    return str(Path(path).expanduser()) if looks_local else path


def load_policy(
    path: str, dtype: str = "float32", trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    resolved = resolve_model_path(path)
    tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
    model.train()  # transformers 5 returns models in eval mode
    return model, tokenizer
