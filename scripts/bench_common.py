"""What ``bench_vs_trl.py`` and ``bench_step.py`` share: composing cipo's config, running ``cipo.cli.train``
with a step clock, reading the ``time/*`` metrics it logged, and summarising per-step times.

Stdlib only at import time: the TRL worker (another venv, no Lightning or Hydra) imports it too.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("generate", "verify", "forward", "backward", "optimizer")
STEP_ENDS: list[tuple[float, float]] = []  # (perf_counter, process_time) at the end of every RL step


# Real models' shapes, built with random weights as Llama configs (the same tensors; the qwen2 model type
# would make transformers swap our tokenizer class) for the character tokenizer padded to the vocabulary.
SHAPES = {
    "smollm2-135m": dict(  # SmolLM2-135M(-Instruct): Llama, GQA 9/3, tied embeddings
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        rope_theta=100_000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(  # Qwen2.5-0.5B: GQA 14/2, tied embeddings, qkv bias
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attention_bias=True,
    ),
}


def padded_char_tokenizer(vocab_size: int):
    """The built-in character tokenizer, its vocabulary padded with unused tokens to ``vocab_size``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from cipo.models.builtin import CHARSET, SPECIAL_TOKENS

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for char in CHARSET:
        vocab[char] = len(vocab)
    for index in range(len(vocab), vocab_size):
        vocab[f"<unused{index}>"] = index
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=4096
    )


def shaped_config(shape: str):
    """The LlamaConfig of ``SHAPES[shape]`` with the character tokenizer's special ids."""
    from transformers import LlamaConfig

    return LlamaConfig(pad_token_id=0, eos_token_id=1, bos_token_id=1, **SHAPES[shape])


def shaped_policy(shape: str, folder: str, dtype: str = "float32", seed: int = 0):
    """(model, tokenizer) of ``SHAPES[shape]`` with random weights, saved to ``folder`` (save_pretrained)."""
    import torch
    from transformers import AutoModelForCausalLM

    from cipo.models.load import DTYPES

    tokenizer = padded_char_tokenizer(SHAPES[shape]["vocab_size"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(shaped_config(shape), dtype=DTYPES[dtype])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def step_summary(step_ends: list[tuple[float, float]], phases: dict[str, list[float]]) -> dict:
    """Per-step wall and CPU seconds (between the ends of consecutive steps) and each phase's share of the
    wall time; the first step (warm-up) is left out. ``phases``: {name: seconds at every step}.
    """
    walls = [b[0] - a[0] for a, b in zip(step_ends, step_ends[1:])]
    cpus = [b[1] - a[1] for a, b in zip(step_ends, step_ends[1:])]
    total = sum(walls)
    shares = {name: sum(values[1:]) / total for name, values in phases.items()} if total else {}
    shares["other"] = 1.0 - sum(shares.values()) if shares else float("nan")
    per_step = {name: median(values[1:]) for name, values in phases.items()}
    return {
        "step_s": walls,
        "cpu_s": cpus,
        "median_step_s": median(walls),
        "median_cpu_s": median(cpus),
        "shares": shares,
        "phase_s": per_step,
    }


def step_clock():
    """A Lightning callback that reads the clocks when an RL step ends (config: ``bench_common.step_clock``).

    Added after the rollout callback, so its epoch-end work (weight sync, validation) is inside the step.
    """
    import lightning as L

    class StepClock(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            STEP_ENDS.append(clock())

    return StepClock()


def compose(overrides: list[str], output_dir: Path):
    """``conf/train.yaml`` with ``overrides``, as ``cipo-train`` would hand it to ``cipo.cli.train``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir / "run")
        cfg.paths.log_dir = str(output_dir / "logs")
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


# Checkpoints (TRL's side saves none either), validation and the progress bar off; without
# enable_checkpointing=false Lightning would add its own checkpoint callback and save at every step.
QUIET = [
    "validation.every=0",
    "callbacks.last_checkpoint=null",
    "callbacks.model_checkpoint=null",
    "~callbacks.progress",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_checkpointing=false",
]


def read_events(folder: Path) -> dict[str, list[tuple[int, float, float]]]:
    """{tag: [(step, wall_time, value), ...]} from the TensorBoard files under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float, float]]] = {}
    for events in sorted(folder.glob("**/events.out.tfevents*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag))
    return {tag: sorted(values) for tag, values in out.items()}


def quiet() -> None:
    """Keep the benchmark's own lines readable: no Lightning banners, seed notices or save progress bars."""
    import logging

    import transformers

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def run_cipo(overrides: list[str], output_dir: Path) -> dict:
    """``cipo.cli.train`` on ``conf/train.yaml`` + ``overrides``; step times from the clock, phases from ``time/*``."""
    from cipo.cli.train import train

    quiet()
    STEP_ENDS.clear()
    cfg = compose([*QUIET, *overrides, "+callbacks.bench_clock._target_=bench_common.step_clock"], output_dir)
    train(cfg)
    events = read_events(Path(cfg.paths.output_dir) / "tensorboard")
    values = lambda tag: [v for _, _, v in events.get(tag, [])]  # noqa: E731
    phases = {name: values(f"time/{name}_s") for name in PHASES}
    if "time/old_logprobs_s" in events:
        phases["old_logprobs"] = values("time/old_logprobs_s")
    return {
        **step_summary(list(STEP_ENDS), phases),
        "train_cpu_s": median(values("time/train_cpu_s")[1:]),  # CPU seconds of forward + backward
        "own_step_s": values("time/step_s"),  # cipo's own time/step_s (rollout start to epoch end)
        "generated_tokens": values("rollout/generated_tokens"),
        "trained_tokens": values("train/tokens"),
        # the tokens the training forward ran (prompts once per micro-batch that shares them), per step
        "processed_tokens": [
            b - a for a, b in zip([0.0, *values("compute/processed_tokens")], values("compute/processed_tokens"))
        ],
        "train_accuracy": values("rollout/accuracy"),
        "peak_rss_mb": peak_rss_mb(),
        "policy": str(Path(cfg.paths.output_dir) / "policy"),
    }


def eval_seed(seed: int) -> int:
    """The held-out evaluation's sampling seed for training seed ``seed``: the same for both trainers of a seed
    (a paired comparison), another for every seed (so the evaluation's own noise is inside the seed spread)."""
    return 12345 + 1000 * seed


def heldout_correct(policy: str, overrides: list[str], problems: int, samples: int, max_new_tokens: int, seed: int):
    """Correct answers out of ``samples`` on each of the first ``problems`` held-out problems, for a saved policy.

    One evaluation for every trainer's policy (cipo's and TRL's alike): the held-out split of
    ``conf/train.yaml`` + ``overrides`` (``data.heldout.num_records`` raised to ``problems``), its verifier,
    ``cipo.rollout.evaluate.generate_results`` through HF ``generate`` at temperature 1, top-p 1, sampling
    seed ``seed``. Returns a list of ``problems`` ints.
    """
    import tempfile

    from hydra.utils import instantiate

    from cipo.models.load import load_policy
    from cipo.rollout.engine import SamplingSettings
    from cipo.rollout.evaluate import generate_results
    from cipo.rollout.hf_engine import HFEngine

    cfg = compose([*overrides, f"data.heldout.num_records={problems}"], Path(tempfile.mkdtemp(prefix="cipo_eval_")))
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    records = datamodule.heldout_records[:problems]
    if len(records) < problems:
        raise SystemExit(f"only {len(records)} held-out problems, {problems} asked for")
    model, tokenizer = load_policy(policy)
    results = generate_results(
        HFEngine(model, tokenizer),
        records,
        instantiate(cfg.verifier),
        SamplingSettings(max_new_tokens=max_new_tokens),
        num_samples=samples,
        seed=seed,
    )
    return [result.num_correct for result in results]
