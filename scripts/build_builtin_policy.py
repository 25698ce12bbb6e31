"""Build a built-in policy: a small Llama warm-started by supervised training on a built-in task.

    python scripts/build_builtin_policy.py                  # writes src/cipo/assets/builtin_policy
    python scripts/build_builtin_policy.py --task missing_operand   # src/cipo/assets/missing_operand_policy
    python scripts/build_builtin_policy.py --max-steps 50 --out /tmp/p   # a quick smoke build

Deterministic for a given torch version and thread count (``--threads``, default 1, so the
result does not depend on the machine's core count).

The examples (plain, inline check, correction; ``warm_start_examples.py``) come from one
deterministic stream per task. For the arithmetic task previous attempts are wrong in the ways
the policy is (an arithmetic slip carried forward, a mis-copied operand, a final answer that
disagrees with the chain, a truncated chain); for the missing-operand task they are wrong
guesses, mostly with a faithful chain whose last value misses the given result. Later in
training, half of the previous attempts are the model's own samples, so the correction format
sees the error distribution that RL will hand it.

RL needs a policy that is right on some samples and wrong on others: a fully trained model
leaves nothing to learn, an untrained one never earns a reward. So training stops as soon as
sampled (T=1) accuracy on a fixed *train-split* probe reaches ``--target-accuracy`` (checked
every ``--check-every`` steps; the held-out split is never used to decide anything), or at
``--max-steps``. The held-out report (sampled and greedy accuracy, pass@k, share of mixed
groups, chance level, self-correction fix rate / retention, and for tasks with inline checks
the share of first attempts that check themselves) is written next to the weights as
``warm_start_report.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from cipo.models.builtin import build_config, build_tokenizer
from cipo.rollout.engine import SamplingSettings
from cipo.rollout.evaluate import evaluate_records, generate_results, summarize
from cipo.rollout.hf_engine import HFEngine
from cipo.tasks.missing_operand import CHECK
from cipo.verifiers.exact_answer import ExactIntegerVerifier
from warm_start_examples import CURRICULA, TASKS, ExampleStream, corrupted_solution  # noqa: F401 (tests use it)

ASSETS = Path(__file__).resolve().parents[1] / "src" / "cipo" / "assets"
DEFAULT_OUT = {"arithmetic": ASSETS / "builtin_policy", "missing_operand": ASSETS / "missing_operand_policy"}
DEFAULT_LEVELS = {"arithmetic": "1,2,3,4,5,6", "missing_operand": "1,2,3,4"}
# sampled probe accuracy at which the warm start stops; the missing-operand policy stops earlier, where
# its forced self-correction already works (fix rate ~3x chance in a probe build) and RL has room left
DEFAULT_TARGET = {"arithmetic": 0.4, "missing_operand": 0.3}
MAX_NEW_TOKENS = 96


def collate(pairs: list[tuple[str, object]], tokenizer) -> dict[str, torch.Tensor]:
    """Right-padded ids with labels only on the target (and its EOS). A target is a string, or a
    tuple of (text, trained) segments whose untrained text is in the row but not in the loss."""
    rows, labels = [], []
    for context, target in pairs:
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        segments = [(target, True)] if isinstance(target, str) else target
        target_ids, target_labels = [], []
        for text, trained in segments:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            target_ids += ids
            target_labels += ids if trained else [-100] * len(ids)
        rows.append(context_ids + target_ids + [tokenizer.eos_token_id])
        labels.append([-100] * len(context_ids) + target_labels + [tokenizer.eos_token_id])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([l + [-100] * (width - len(l)) for l in labels]),
    }


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def evaluate_policy(model, tokenizer, curriculum, records, seed: int) -> dict[str, float]:
    """Sampled (T=1, 8 per problem) and greedy accuracy, pass@k, and one self-correction round;
    for a task with inline checks also the share of first attempts that check themselves and
    the accuracy of those."""
    engine = HFEngine(model, tokenizer, batch_size=256)
    settings = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS)
    results = generate_results(
        engine, records, ExactIntegerVerifier(), settings, 8, seed, curriculum.template, rounds=1, greedy=True
    )
    levels = sorted({int(r.meta["level"]) for r in records})
    metrics, _ = summarize(results, 8, None, levels, [r.reference for r in records], rounds=1, greedy=True)
    if curriculum.inline_check_share > 0:
        checked = [v for result in results for v in result.samples if f"\n{CHECK}\n" in v.text]
        metrics["frac_inline_check"] = len(checked) / (8 * len(records))
        if checked:
            metrics["accuracy_with_inline_check"] = sum(v.success for v in checked) / len(checked)
    return {name: round(value, 4) for name, value in metrics.items()}


def probe_accuracy(model, tokenizer, probe, step: int) -> float:
    """Sampled accuracy on a fixed train-split probe: the stopping rule's only input."""
    metrics = evaluate_records(
        HFEngine(model, tokenizer, batch_size=256),
        probe,
        ExactIntegerVerifier(),
        SamplingSettings(max_new_tokens=MAX_NEW_TOKENS),
        num_samples=2,
        seed=0,
    )
    model.train()
    print(f"step {step:5d} probe accuracy {metrics['accuracy']:.3f}", flush=True)
    return metrics["accuracy"]


def refresh_own_attempts(model, tokenizer, stream: ExampleStream, seed: int, count: int) -> None:
    records = stream.curriculum.records("train", count, seed=seed, unique=False)
    samples = HFEngine(model, tokenizer, batch_size=256).generate(
        [r.prompt for r in records], 1, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS), seed=seed
    )
    stream.own_attempts = [(stream.curriculum.problem_of(r), s[0].text) for r, s in zip(records, samples)]
    model.train()


def check_tokenizer_round_trip(folder: Path, tokenizer, text: str) -> None:
    """AutoTokenizer (what every tool loads) must encode exactly like the tokenizer we trained with."""
    loaded = AutoTokenizer.from_pretrained(folder)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    if loaded(text, add_special_tokens=False)["input_ids"] != expected:
        raise RuntimeError(f"AutoTokenizer.from_pretrained({folder}) encodes differently ({type(loaded).__name__})")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(CURRICULA), default="arithmetic")
    parser.add_argument("--out", type=Path, default=None, help="default: the task's folder in src/cipo/assets")
    parser.add_argument("--architecture", default="small")
    parser.add_argument("--levels", default=None, help="numbers of operations, e.g. 1,2,3 (default: the task's)")
    parser.add_argument("--inline-check-share", type=float, default=None, help="tasks with inline checks only")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--target-accuracy", type=float, default=None, help="default: the task's")
    parser.add_argument("--check-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--correction-share", type=float, default=0.3)
    parser.add_argument("--own-attempts-from", type=int, default=300, help="first step using own attempts")
    parser.add_argument("--own-attempts-every", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--eval-problems", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.out = args.out or DEFAULT_OUT[args.task]
    args.levels = args.levels or DEFAULT_LEVELS[args.task]
    args.target_accuracy = args.target_accuracy if args.target_accuracy is not None else DEFAULT_TARGET[args.task]

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = TASKS[args.task](levels=tuple(int(x) for x in args.levels.split(",")))
    curriculum = CURRICULA[args.task](task)
    if args.inline_check_share is not None:
        if curriculum.inline_check_share == 0 and args.inline_check_share > 0:
            parser.error(f"--inline-check-share: the {args.task} task has no inline checks")
        curriculum = dataclasses.replace(curriculum, inline_check_share=args.inline_check_share)
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(build_config(args.architecture, len(tokenizer)))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    stream = ExampleStream(curriculum, args.seed, args.correction_share)
    heldout = curriculum.records("heldout", args.eval_problems, seed=args.seed + 1)
    probe = curriculum.records("train", 128, seed=args.seed + 2)
    print(f"policy: {args.architecture}, {sum(p.numel() for p in model.parameters()):,} parameters")

    started = time.time()
    step = 0
    for step in range(1, args.max_steps + 1):
        if step >= args.own_attempts_from and step % args.own_attempts_every == 0:
            refresh_own_attempts(model, tokenizer, stream, seed=args.seed * 100_003 + step, count=512)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.max_steps, args.lr, args.warmup)
        batch = collate([stream.next() for _ in range(args.batch_size)], tokenizer)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:5d} loss {loss.item():.4f} {time.time() - started:6.0f}s", flush=True)
        if args.eval_every and step % args.eval_every == 0:
            print(json.dumps(evaluate_policy(model, tokenizer, curriculum, heldout, seed=0)), flush=True)
            model.train()
        if step % args.check_every == 0 and probe_accuracy(model, tokenizer, probe, step) >= args.target_accuracy:
            break

    report = evaluate_policy(model, tokenizer, curriculum, heldout, seed=0)
    report.update(
        steps=step, train_seconds=round(time.time() - started, 1), args={k: str(v) for k, v in vars(args).items()}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    check_tokenizer_round_trip(args.out, tokenizer, curriculum.sample_text())
    (args.out / "warm_start_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
