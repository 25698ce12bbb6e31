"""LoRA end to end on the built-in policy (mixed groups, so the adapters get a gradient): adapters
train, checkpoints hold them and resume, the export is a merged model plus the adapter, and cipo-eval
evaluates a LoRA checkpoint with its adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from cipo.cli.evaluate import evaluate
from cipo.cli.train import train
from conftest import compose_eval, compose_train
from fakes import record_rollouts

pytest.importorskip("peft")
LORA = ["model.lora.r=4", "model.lora.alpha=8", "optimizer.lr=1e-2", "validation.every=0"]
IDS = torch.tensor([[5, 17, 30, 12, 9, 44]])


def _train(tmp_path, overrides) -> Path:
    with compose_train([*LORA, *overrides], tmp_path=tmp_path, model_path="builtin") as cfg:
        train(cfg)
        out = Path(cfg.paths.output_dir)
        (out / ".hydra").mkdir(exist_ok=True)  # what Hydra's CLI writes: cipo-eval run_dir= reads it
        OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
        return out


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def test_lora_trains_checkpoints_resumes_and_exports(tmp_path, monkeypatch):
    from peft import PeftModel

    from cipo.models.builtin import builtin_policy_dir

    base_dir = builtin_policy_dir()
    out = _train(tmp_path, ["trainer.max_epochs=2"])
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    adapters = {k: v for k, v in state.items() if "lora_B" in k}
    assert adapters and any(v.abs().sum() > 0 for v in adapters.values())  # B starts at 0: it trained

    seen = record_rollouts(monkeypatch)
    _train(tmp_path, ["trainer.max_epochs=3", "ckpt_path=auto"])
    assert [epoch for epoch, _ in seen] == [2]  # resumed after step 2, with the adapters' optimizer state

    merged = AutoModelForCausalLM.from_pretrained(out / "policy")
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    with_adapter = PeftModel.from_pretrained(base, out / "adapter")
    torch.testing.assert_close(_logits(merged), _logits(with_adapter), atol=1e-5, rtol=1e-5)
    assert (_logits(merged) - _logits(AutoModelForCausalLM.from_pretrained(base_dir))).abs().max() > 1e-4

    # cipo-eval of the last checkpoint (adapters on the run's base model) = of the exported merged policy
    results = []
    for name, extra in (("ckpt", ["ckpt=last"]), ("export", [])):
        overrides = [f"run_dir={out}", "eval.samples=2", "eval.max_problems=3", *extra]
        with compose_eval(overrides, tmp_path=tmp_path / name) as cfg:
            evaluate(cfg, overrides)
            lines = (Path(cfg.paths.output_dir) / "problems.jsonl").read_text().splitlines()
        results.append([json.loads(line)["texts"] for line in lines])
    assert results[0] == results[1]
