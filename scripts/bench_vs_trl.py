"""Seconds per RL step: cipo (``algorithm=grpo``) vs TRL's ``GRPOTrainer`` on the same work.

    python scripts/bench_vs_trl.py                              # 16 prompts x 8 samples x 96 tokens, 10 steps, 2 rounds
    python scripts/bench_vs_trl.py --steps 20 --repeats 3 --threads 2
    python scripts/bench_vs_trl.py --prompts 8 --group 4 --max-new-tokens 32 --steps 6 --repeats 1   # a quick look
    python scripts/bench_vs_trl.py --shape smollm2-135m --rollouts hf vllm --prompts 4 --group 4 \
        --max-new-tokens 64 --micro-batch 16 --steps 3 --repeats 1         # a real model's shape, random weights

Both sides train the shipped built-in policy (``cipo.models.builtin.builtin_policy_dir()``, fp32) on the
built-in arithmetic task with the same verifier, on exactly the same prompts in the same order (the ones
cipo's data module serves for ``--seed``; TRL gets them as an unshuffled data set), with HF ``generate``,
temperature 1, top-p 1, no top-k, ``--max-new-tokens``, AdamW (lr 2e-4, betas 0.9/0.99, no weight decay,
constant rate), gradient clipping at 1.0, no KL term (beta = 0), no gradient checkpointing, token-mean loss
(cipo ``loss_agg=token_mean`` = TRL ``loss_type="dapo"``), group-std advantages, one optimizer step per
generation (TRL: ``num_iterations=1``, ``steps_per_generation`` = gradient accumulation), and the same
micro-batch (cipo ``module.micro_batch_size`` = TRL ``per_device_train_batch_size``, with gradient
accumulation over the rest of the step's B*G sequences). Each run is a fresh process with ``--threads``
torch threads; runs alternate cipo, TRL, cipo, TRL ... so that machine load hits both alike.

cipo runs through its real entry point, ``cipo.cli.train(cfg)`` with the Hydra config composed from
``conf/`` (checkpoints, validation and the progress bar off; the TensorBoard logger on, as shipped). Its
phase times are the ``time/*`` metrics it logs (generate, verify, forward = logprobs + loss, backward,
optimizer = clip + step). TRL logs no per-phase times to plain files, so this script wraps its methods
(only here): ``_generate_single_turn`` (generate), ``_calculate_rewards`` (verify),
``_get_per_token_logps_and_entropies`` (forward), ``accelerator.backward`` (backward), ``_clip_grad_norm``
and ``optimizer.step`` (optimizer). "other" is the rest of the wall time (data, padding, advantages,
logging, framework overhead).

Seconds per step: wall clock (and the process's CPU time) between the ends of consecutive RL steps (a
Lightning callback for cipo, a ``TrainerCallback`` for TRL), so all overhead counts; the first step
(warm-up) is left out; medians. On a busy machine the CPU-time ratio is the steadier one.
Peak memory: the worker process's maximum RSS. Tokens/s: generated tokens per step over the step's seconds
(end to end) and over the generation phase's seconds.

Held-out accuracy: round r trains seed ``--seed + r`` on both sides; after each run the trained policy is
evaluated by the same code for both sides (``bench_common.heldout_correct``: ``--eval-problems`` held-out
problems x ``--eval-samples``, sampling seed ``bench_common.eval_seed(seed)``). The summary gives each side's
mean over seeds with a 95% interval and flags a difference only when the Welch interval of cipo - TRL
excludes 0: one seed's outcome varies by several points (docs/parity.md), so a single round has no verdict.
The full study (10 seeds, 30 and 100 steps, per-step curves) is ``scripts/parity_vs_trl.py``.

TRL is installed by this script into its own venv (``--trl-venv``, default
``.bench/trl-venv``, git-ignored): ``pip install torch==<ours>`` first, then ``--trl-spec`` with datasets
and accelerate, so its pins never touch cipo's environment.

``--shape`` other than ``builtin`` (``bench_common.SHAPES``, e.g. SmolLM2-135M's: Llama, hidden 576, 30 layers,
9 / 3 heads, vocab 49152, tied embeddings) trains a model of that shape with random weights, saved once and
loaded by every run, fp32, with the character tokenizer padded to its vocabulary. Random weights almost never
sample EOS (about 1 in 49152 per token), so every sample runs to ``--max-new-tokens`` on both sides, and the
reward is ``bench_step.CoinFlipVerifier``'s (a CRC of completion and answer) on both sides: mixed groups,
non-zero advantages, no held-out accuracy. ``--rollouts`` chooses cipo's engines (``hf``: ``rollout=hf``,
HFEngine; ``vllm``: ``rollout=vllm``, the colocated vLLM engine with its weight sync after every step); TRL
always samples with HF ``generate`` (``use_vllm=False``: its venv has no vLLM).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (
    PHASES,
    ROOT,
    SHAPES,
    clock,
    compose,
    eval_seed,
    heldout_correct,
    load_average,
    median,
    peak_rss_mb,
    run_cipo,
    shaped_policy,
    step_summary,
)

TRL_SPEC = "trl==1.16.0"
CIPO_LABELS = {"hf": "cipo", "vllm": "cipo-vllm"}
CONFIGURATIONS = {
    "cipo": "cipo = cipo-train algorithm=grpo rollout=hf (HFEngine: decode.sample, prompt-shared cache)",
    "cipo-vllm": "cipo-vllm = cipo-train algorithm=grpo rollout=vllm (colocated vLLM, weight sync every step)",
    "trl": "trl = TRL GRPOTrainer (HF generate, use_vllm=False)",
    "base": "base = cipo from --baseline-src (rollout=hf)",
}


def add_work_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define one RL step's work, the same on both sides (this script and parity_vs_trl.py)."""
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per RL step (B)")
    parser.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--micro-batch", type=int, default=64, help="sequences per forward/backward, both sides")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.set_defaults(model_path=None)  # the built-in policy (this script's --shape sets another)


def cipo_overrides(args, rollout: str = "hf") -> list[str]:
    chosen = [
        "algorithm=grpo",
        f"rollout={rollout}",
        f"seed={args.seed}",
        f"num_threads={args.threads}",
        f"data.batch_size={args.prompts}",
        f"algorithm.group_size={args.group}",
        "algorithm.loss_agg=token_mean",
        "algorithm.kl_coef=0.0",
        f"rollout.max_new_tokens={args.max_new_tokens}",
        "rollout.temperature=1.0",
        "rollout.top_p=1.0",
        f"module.micro_batch_size={args.micro_batch}",
        f"optimizer.lr={args.lr}",
        f"trainer.max_epochs={args.steps}",
    ]
    if args.model_path:  # a random model of --shape: fp32, coin-flip rewards
        chosen += [f"model.path={args.model_path}", "model.dtype=float32"]
        # importable: scripts/ is on sys.path; data.verifier says the data set is scored by it on purpose
        chosen += ["verifier._target_=bench_step.CoinFlipVerifier", "data.verifier=bench_step.CoinFlipVerifier"]
    return chosen


def cipo_worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    return run_cipo(cipo_overrides(args, args.rollout), Path(args.out).with_suffix(""))  # a folder per run


# --- TRL (runs in its own venv: imports only torch, transformers, trl, datasets and cipo's pure modules) ---


def exact_integer_reward(completions, answer, **_) -> list[float]:
    """TRL's reward-function form of cipo's verifier for the built-in task."""
    from cipo.verifiers.exact_answer import verify_exact_integer

    return [verify_exact_integer(c, a).reward for c, a in zip(completions, answer, strict=True)]


def trl_config_kwargs(args, output_dir: Path) -> dict:
    """``GRPOConfig`` arguments for the same work as ``cipo_overrides(args)`` (see the module docstring)."""
    sequences = args.prompts * args.group
    if sequences % args.micro_batch:
        raise SystemExit(f"--micro-batch {args.micro_batch} must divide prompts x group = {sequences} for TRL")
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=sequences // args.micro_batch,
        num_generations=args.group,
        num_iterations=1,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        learning_rate=args.lr,
        adam_beta1=0.9,
        adam_beta2=0.99,
        weight_decay=0.0,
        optim="adamw_torch",
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        use_vllm=False,
        shuffle_dataset=False,
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=args.seed,
    )


def trl_worker(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from cipo.models.builtin import builtin_policy_dir

    torch.set_num_threads(args.threads)
    out = Path(args.out).with_suffix("")  # a folder per run: <label>/
    schedule = json.loads(Path(args.schedule).read_text())
    dataset = Dataset.from_list(schedule)
    policy_dir = args.model_path or str(builtin_policy_dir())
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)

    def coin_flip_reward(completions, answer, **_) -> list[float]:  # cipo's verifier for --shape runs
        from bench_step import CoinFlipVerifier

        return [result.reward for result in CoinFlipVerifier()(completions, answer)]

    sequences = args.prompts * args.group
    config = GRPOConfig(**trl_config_kwargs(args, out / "trl"))
    phase_s = dict.fromkeys(PHASES, 0.0)
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    step_ends: list[tuple[float, float]] = []

    def timed(function, phase):
        def wrapper(*a, **kw):
            started = time.perf_counter()
            try:
                return function(*a, **kw)
            finally:
                phase_s[phase] += time.perf_counter() - started

        return wrapper

    class Clock(TrainerCallback):
        def on_pre_optimizer_step(self, *_, **__):
            self.started = time.perf_counter()

        def on_optimizer_step(self, *_, **__):
            phase_s["optimizer"] += time.perf_counter() - self.started

        def on_step_end(self, *_, **__):
            step_ends.append(clock())
            for name in PHASES:
                phases[name].append(phase_s[name])
                phase_s[name] = 0.0

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=coin_flip_reward if args.model_path else exact_integer_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer._generate_single_turn = timed(trainer._generate_single_turn, "generate")
    trainer._calculate_rewards = timed(trainer._calculate_rewards, "verify")
    trainer._get_per_token_logps_and_entropies = timed(trainer._get_per_token_logps_and_entropies, "forward")
    trainer.accelerator.backward = timed(trainer.accelerator.backward, "backward")
    trainer._clip_grad_norm = timed(trainer._clip_grad_norm, "optimizer")
    trainer.train()
    history = [row for row in trainer.state.log_history if "reward" in row]
    policy = out / "policy"
    trainer.model.save_pretrained(policy)
    tokenizer.save_pretrained(policy)
    return {
        **step_summary(step_ends, phases),
        "generated_tokens": [row["completions/mean_length"] * sequences for row in history],
        "train_accuracy": [row["reward"] for row in history],
        "peak_rss_mb": peak_rss_mb(),
        "policy": str(policy),
    }


# --- orchestration (cipo's venv) ------------------------------------------------------------


def ensure_trl_venv(venv: Path, spec: str) -> Path:
    """The venv's python, creating the venv and installing TRL there the first time."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import trl"], capture_output=True).returncode == 0:
        return python
    import torch

    print(f"installing {spec} into {venv} (once; a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    if not (venv / "bin" / "pip").exists():  # a venv-in-venv without pip: rebuild from the base interpreter
        subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True)
    torch_version = torch.__version__.split("+")[0]
    pip = [python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch_version}"], check=True)  # first, so TRL cannot pull another torch
    subprocess.run([*pip, spec, "datasets", "accelerate", f"torch=={torch_version}"], check=True)
    return python


def prompt_schedule(args) -> list[dict[str, str]]:
    """The prompts cipo's data module serves over ``--steps`` RL steps, in order."""
    from hydra.utils import instantiate

    cfg = compose(cipo_overrides(args), Path(tempfile.mkdtemp(prefix="cipo_bench_")))
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    records = [record for _ in range(args.steps) for record in datamodule.next_prompts()]
    return [{"prompt": r.prompt, "answer": r.reference} for r in records]


def heldout_accuracy(policy: str, args) -> float:
    """Held-out accuracy of a saved policy (``builtin``: the initial one) under ``args.seed``'s evaluation seed."""
    correct = heldout_correct(
        policy, cipo_overrides(args), args.eval_problems, args.eval_samples, args.max_new_tokens, eval_seed(args.seed)
    )
    return sum(correct) / (len(correct) * args.eval_samples)


def run_worker(
    label: str, kind: str, python: Path, args, folder: Path, schedule: Path, src: Path, rollout: str = "hf"
) -> dict:
    """One run of seed ``args.seed`` in a fresh process; ``src`` is the cipo source tree on its path (TRL: only
    the pure modules)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{label}.json"
    command = [str(python), str(Path(__file__).resolve()), *sys.argv[1:]]
    command += ["--worker", kind, "--out", str(out), "--schedule", str(schedule), "--rollout", rollout]
    command += ["--seed", str(args.seed)]
    if args.model_path:
        command += ["--model-path", args.model_path]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(src))
    load = load_average()
    started = time.perf_counter()
    log = folder / f"{label}.log"
    with open(log, "w") as handle:
        done = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"the {label} worker failed (exit {done.returncode}); its log: {log}")
    result = json.loads(out.read_text())
    result.update(load_before=load, load_after=load_average(), process_s=time.perf_counter() - started)
    return result


def fmt_shares(shares: dict[str, float]) -> str:
    return " ".join(f"{name} {100 * shares.get(name, 0):.0f}%" for name in (*PHASES, "other"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="RL steps per run (the first is warm-up)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds of (cipo, TRL) runs, interleaved; round r trains seed --seed + r"
    )
    add_work_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="the first round's seed")
    parser.add_argument("--eval-problems", type=int, default=256, help="held-out problems; 0: skip the evaluation")
    parser.add_argument("--eval-samples", type=int, default=8, help="samples per held-out problem")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run cipo from this source tree (e.g. an older checkout's src/) as 'base', interleaved",
    )
    parser.add_argument("--trl-venv", type=Path, default=ROOT / ".bench" / "trl-venv")
    parser.add_argument("--trl-spec", default=TRL_SPEC, help="what pip installs for TRL")
    parser.add_argument("--keep", type=Path, default=None, help="keep run folders and logs here")
    parser.add_argument("--shape", default="builtin", choices=["builtin", *SHAPES], help="the policy (see above)")
    parser.add_argument("--rollouts", nargs="+", default=["hf"], choices=["hf", "vllm"], help="cipo's engines")
    parser.add_argument("--worker", choices=("cipo", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--rollout", default="hf", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--schedule", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = cipo_worker(args) if args.worker == "cipo" else trl_worker(args)
        Path(args.out).write_text(json.dumps(result))
        return

    import torch
    import transformers

    trl_python = ensure_trl_venv(args.trl_venv, args.trl_spec)
    trl_version = subprocess.run(
        [trl_python, "-c", "import trl, transformers; print(trl.__version__, transformers.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.split()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cipo_vs_trl_"))
    if not args.keep:  # the runs' checkpoints and policies (GBs at the SmolLM2 shape)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if args.shape != "builtin":
        args.model_path = str(folder / f"policy_{args.shape}")
        model, _ = shaped_policy(args.shape, args.model_path, seed=args.seed)
        print(f"random {args.shape}-shaped policy: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
        del model
        args.eval_problems = 0  # random weights: accuracy means nothing
    print(
        f"{args.prompts} prompts x {args.group} samples x up to {args.max_new_tokens} tokens, micro-batch "
        f"{args.micro_batch}, {args.steps} steps (first = warm-up), {args.repeats} rounds, {args.threads} "
        f"thread(s); torch {torch.__version__}, transformers {transformers.__version__}, TRL {trl_version[0]} "
        f"(transformers {trl_version[1]}); load average {load_average()}; runs in {folder}",
        flush=True,
    )
    # (label, worker kind, python, cipo sources on the path, cipo's rollout engine)
    contestants = [(CIPO_LABELS[r], "cipo", Path(sys.executable), ROOT / "src", r) for r in args.rollouts]
    contestants.append(("trl", "trl", trl_python, ROOT / "src", "hf"))
    if args.baseline_src:
        contestants.insert(0, ("base", "cipo", Path(sys.executable), args.baseline_src.resolve(), "hf"))
    print("configurations: " + "; ".join(CONFIGURATIONS[label] for label, *_ in contestants), flush=True)
    runs: dict[str, list[dict]] = {label: [] for label, *_ in contestants}
    initial = []
    for round_index in range(args.repeats):
        round_args = argparse.Namespace(**{**vars(args), "seed": args.seed + round_index})
        schedule = folder / f"round{round_index}" / "schedule.json"  # the round's seed orders the prompts
        schedule.parent.mkdir(parents=True, exist_ok=True)
        schedule.write_text(json.dumps(prompt_schedule(round_args)))
        for label, kind, python, src, rollout in contestants:
            result = run_worker(label, kind, python, round_args, schedule.parent, schedule, src, rollout)
            if args.eval_problems:
                result["heldout_accuracy"] = heldout_accuracy(result["policy"], round_args)
            runs[label].append(result)
            print(
                f"round {round_index} (seed {round_args.seed}) {label:>9}: median {result['median_step_s']:.3f} "
                f"s/step, CPU "
                f"{result['median_cpu_s']:.3f} s/step (steps {' '.join(f'{s:.2f}' for s in result['step_s'])}); "
                f"{fmt_shares(result['shares'])}; "
                f"peak RSS {result['peak_rss_mb']:.0f} MB; held-out acc "
                f"{result.get('heldout_accuracy', float('nan')):.3f}; load {result['load_before']} -> "
                f"{result['load_after']}",
                flush=True,
            )
        if args.eval_problems:
            initial.append(heldout_accuracy("builtin", round_args))
    print_summary(runs, initial, args)
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "initial_heldout_accuracy": initial, **runs}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))


def print_summary(runs: dict[str, list[dict]], initial: list[float], args) -> None:
    labels = list(runs)
    names = {
        "cipo": "cipo (algorithm=grpo, rollout=hf)",
        "cipo-vllm": "cipo (algorithm=grpo, rollout=vllm)",
        "trl": "TRL GRPOTrainer",
        "base": "cipo baseline (--baseline-src)",
    }

    def row(title: str, cells: list[str]) -> None:
        print(f"| {title} | " + " | ".join(cells) + " |")

    def pooled(label: str, key: str) -> float:
        return median([value for run in runs[label] for value in run[key]])

    def per_run(label: str, key: str) -> float:
        return median([run.get(key, float("nan")) for run in runs[label]])

    step_s = {label: pooled(label, "step_s") for label in labels}
    cpu_s = {label: pooled(label, "cpu_s") for label in labels}
    tokens = {label: median([statistics.mean(r["generated_tokens"]) for r in runs[label]]) for label in labels}
    generate_s = {label: median([r["phase_s"].get("generate", float("nan")) for r in runs[label]]) for label in labels}
    print()
    row("", [names[label] for label in labels])
    print("|---|" + "---|" * len(labels))
    row("median s/step, wall (all rounds)", [f"{step_s[label]:.3f}" for label in labels])
    row(
        "median s/step, wall, per round",
        [" / ".join(f"{r['median_step_s']:.3f}" for r in runs[label]) for label in labels],
    )
    row("median s/step, CPU (all rounds)", [f"{cpu_s[label]:.3f}" for label in labels])
    for phase in (*PHASES, "other"):
        shares = [statistics.mean(r["shares"].get(phase, 0.0) for r in runs[label]) for label in labels]
        row(f"share: {phase}", [f"{100 * share:.0f}%" for share in shares])
    row("peak RSS (MB)", [f"{per_run(label, 'peak_rss_mb'):.0f}" for label in labels])
    row("generated tokens / step", [f"{tokens[label]:.0f}" for label in labels])
    row(
        "tokens/s, whole step (wall / CPU)",
        [f"{tokens[k] / step_s[k]:.0f} / {tokens[k] / cpu_s[k]:.0f}" for k in labels],
    )
    row("tokens/s, generation phase (wall)", [f"{tokens[label] / generate_s[label]:.0f}" for label in labels])
    if args.eval_problems:
        row(
            f"held-out accuracy after {args.steps} steps, per seed",
            [" / ".join(f"{r['heldout_accuracy']:.3f}" for r in runs[label]) for label in labels],
        )
    print()
    for label in [label for label in labels if label.startswith("cipo")] + (["base"] if "base" in runs else []):
        print(
            f"TRL s/step / {label} s/step = {step_s['trl'] / step_s[label]:.2f}x wall, "
            f"{cpu_s['trl'] / cpu_s[label]:.2f}x CPU"
        )
    print(
        "(> 1: cipo is faster; aim 1.5 on the default task.) On a busy machine trust the CPU-time ratio more: "
        "one thread's CPU seconds barely move with other jobs, its wall seconds do."
    )
    if "base" in runs and "cipo" in runs:
        print(
            f"baseline / cipo = {step_s['base'] / step_s['cipo']:.2f}x wall, {cpu_s['base'] / cpu_s['cipo']:.2f}x CPU "
            "(the speed-up of these sources over the baseline)"
        )
    if args.eval_problems and "cipo" in runs:
        from parity_stats import parity_verdict

        accuracies = {label: [r["heldout_accuracy"] for r in runs[label]] for label in labels}
        print(
            f"held-out accuracy ({args.eval_problems} problems x {args.eval_samples} samples) after {args.steps} "
            f"steps, {args.repeats} seed(s) per side; initial policy {statistics.mean(initial):.3f}: "
            + parity_verdict(accuracies["cipo"], accuracies["trl"])
        )


if __name__ == "__main__":
    main()
