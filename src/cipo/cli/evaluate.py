"""``cipo-eval``: evaluate a run folder, a checkpoint or any model folder on any data config.

``evaluate(cfg, overrides)`` is a plain function (tests call it); ``eval_main`` is the console
script (Hydra CLI, ``conf/eval.yaml``). Generation and scoring are ``rollout/evaluate.py``'s, the
same code as in-training validation. Writes into the Hydra run folder:

    summary.json    settings, the policy evaluated, metrics and the counts behind them, one row
                    per revision round, timings
    problems.jsonl  one line per problem: id, level, prompt, gold answer (reference), n, c,
                    per-sample verdicts and statuses, the revised attempt and each round's
                    verdict (texts and prompt unless save_texts=false)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cipo.cli.command import run_command
from cipo.cli.config_dir import CONFIG_DIR
from cipo.cli.errors import reported_errors
from cipo.cli.eval_config import RUN_SECTIONS, apply_run_sections, policy_source, read_run_config
from cipo.cli.eval_summary import format_summary, outcome_counts, write_outputs
from cipo.cli.help import EVAL
from cipo.data.context_fit import check_task_fits_model
from cipo.metrics import default_ks
from cipo.models.checkpoint import load_policy_weights
from cipo.models.policy import build_policy
from cipo.rollout.evaluate import ATTEMPT_SOURCES, generate_results, summarize
from cipo.settings import check_data_verifier, sampling_settings

log = logging.getLogger(__name__)
SPLITS = ("heldout", "train")


def check_options(options: DictConfig) -> list[int]:
    """Validate ``eval.*`` before any loading; returns the ks."""
    samples, rounds = options.samples, options.rounds
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"eval.samples must be an integer >= 1, got {samples!r}")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"eval.rounds must be an integer >= 0, got {rounds!r}")
    if options.attempts not in ATTEMPT_SOURCES:
        raise ValueError(f"eval.attempts must be one of {ATTEMPT_SOURCES}, got {options.attempts!r}")
    if options.split not in SPLITS:
        raise ValueError(f"eval.split must be one of {SPLITS}, got {options.split!r}")
    if options.correction and rounds < 1:
        raise ValueError("eval.correction=true needs eval.rounds >= 1 (or set eval.correction=false)")
    ks = list(options.ks) if options.ks else default_ks(samples)
    if any(not isinstance(k, int) or not 1 <= k <= samples for k in ks):
        raise ValueError(f"eval.ks={ks}: every k must be an integer in [1, eval.samples={samples}]")
    return ks


def evaluate(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Build the policy, engine and data from ``cfg``; evaluate; write and return the summary.

    ``overrides`` are the command line's (Hydra's ``overrides.task``): with ``run_dir`` they say
    which of the run's settings the user replaced.
    """
    started = time.perf_counter()
    options = cfg.eval
    ks = check_options(options)
    if cfg.get("run_dir"):
        cfg = apply_run_sections(cfg, read_run_config(cfg.run_dir), list(overrides))
    sampling = sampling_settings(cfg.rollout)
    check_data_verifier(cfg.data, cfg.verifier)
    torch.manual_seed(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))

    datamodule = instantiate(cfg.data, updates_per_step=1, _convert_="all")
    datamodule.read_sources()  # a bad data file fails before the policy loads
    source = policy_source(cfg, list(overrides))
    model_config = {**OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=True), "path": source.model_path}
    if source.ckpt is None:  # an exported policy/ folder holds the merged weights: no adapters to add
        model_config.pop("lora", None)
    policy, tokenizer = build_policy(model_config)  # a LoRA run's checkpoint holds adapter weights
    if source.ckpt is not None:
        load_policy_weights(policy, source.ckpt)
    datamodule.attach_tokenizer(tokenizer)  # data.prompt renders prompts with the policy's chat template
    datamodule.setup("fit")
    split = datamodule.heldout_records if options.split == "heldout" else datamodule.train_records
    records = split[: options.max_problems]
    if not records:
        raise ValueError(f"eval.split={options.split}: the data config gives no {options.split} records")
    check_task_fits_model(tokenizer, policy, datamodule, sampling.max_new_tokens)
    device = cfg.get("device", "auto")
    policy.to("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    policy.eval()
    engine = instantiate(cfg.rollout.engine)(model=policy, tokenizer=tokenizer)
    report = engine.sync_weights()
    if report is not None and not report.ok:
        raise RuntimeError(
            f"the engine's and the model's log-probabilities differ by {report.logprob_diff:.3g} > "
            f"rollout.sync_tolerance={report.tolerance:g}: the engine does not run the evaluated weights"
        )
    loaded_s = time.perf_counter() - started

    rounds = options.rounds if options.correction else 0
    try:
        results = generate_results(
            engine,
            records,
            instantiate(cfg.verifier),
            sampling,
            num_samples=options.samples,
            seed=cfg.seed,
            correction_template=datamodule.correction_template if options.correction else None,
            rounds=rounds,
            attempts=options.attempts,
            greedy=options.greedy,
        )
    finally:
        close = getattr(engine, "close", None)  # vLLM: free its memory (several evaluations per process with -m)
        if close is not None:
            close()
    references = [r.reference for r in records]
    metrics, per_round = summarize(results, options.samples, ks, None, references, rounds, options.greedy)
    summary = {
        "policy": source.label,
        "run_dir": cfg.get("run_dir"),
        "ckpt": str(source.ckpt) if source.ckpt else None,
        "split": options.split,
        "num_problems": len(records),
        "settings": {
            **OmegaConf.to_container(options, resolve=True),
            "ks": ks,
            "seed": cfg.seed,
            "engine": cfg.rollout.engine._target_,
            **{key: getattr(sampling, key) for key in ("max_new_tokens", "temperature", "top_p")},
        },
        "metrics": metrics,
        "counts": outcome_counts(results),
        "rounds": per_round,
        "time_s": {"load": loaded_s, "total": time.perf_counter() - started},
        "config": {s: OmegaConf.to_container(cfg[s], resolve=True) for s in RUN_SECTIONS},
    }
    write_outputs(Path(cfg.paths.output_dir), summary, results, records, options.save_texts)
    print(format_summary(summary), flush=True)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _hydra_eval(cfg: DictConfig) -> float:
    with reported_errors("cipo-eval", in_job=True):
        summary = evaluate(cfg, overrides=list(HydraConfig.get().overrides.task))
    return summary["metrics"]["accuracy"]


def eval_main() -> None:
    run_command(EVAL, CONFIG_DIR, _hydra_eval)


if __name__ == "__main__":
    eval_main()
