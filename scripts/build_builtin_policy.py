"""Build the built-in policy: a small Llama warm-started by supervised training on the task.

    python scripts/build_builtin_policy.py                  # writes src/cipo/assets/builtin_policy
    python scripts/build_builtin_policy.py --max-steps 50 --out /tmp/p   # a quick smoke build

Deterministic for a given torch version and thread count (``--threads``, default 1, so the
result does not depend on the machine's core count).

The warm start trains two formats from the same examples stream:
- plain:      ``Q:<expr>\\nA:`` -> worked solution;
- correction: ``<the correction template filled with the problem and a previous attempt>`` ->
  the correct worked solution. Previous attempts are right half of the time and, otherwise,
  wrong in one of the ways the policy itself is wrong (an arithmetic slip carried forward, a
  mis-copied operand, a final answer that disagrees with the chain, a truncated chain). Later
  in training, half of the previous attempts are the model's own samples, so the correction
  format sees the error distribution that RL will hand it.

RL needs a policy that is right on some samples and wrong on others: a fully trained model
leaves nothing to learn, an untrained one never earns a reward. So training stops as soon as
sampled (T=1) accuracy on a fixed *train-split* probe reaches ``--target-accuracy`` (checked
every ``--check-every`` steps; the held-out split is never used to decide anything), or at
``--max-steps``. The held-out report (sampled and greedy accuracy, pass@k, share of mixed
groups, chance level, and self-correction fix rate / retention) is written next to the weights
as ``warm_start_report.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from cipo.models.builtin import build_config, build_tokenizer
from cipo.rollout.engine import SamplingSettings
from cipo.rollout.evaluate import evaluate_records
from cipo.rollout.hf_engine import HFEngine
from cipo.tasks.arithmetic import (
    ArithmeticTask,
    random_expression,
    render_expression,
    render_prompt,
    sample_records,
    solution,
    split_of,
    tokenize_expression,
)
from cipo.verifiers.exact_answer import ExactIntegerVerifier

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "cipo" / "assets" / "builtin_policy"
CORRECTION_TEMPLATE = "{problem}{attempt}\nCheck:\nA:"
MAX_NEW_TOKENS = 96


def corrupted_solution(expression: str, rng: random.Random) -> str:
    """A worked solution with one realistic mistake (see the module docstring)."""
    numbers, ops = tokenize_expression(expression)
    kind = rng.choice(("slip", "slip", "copy", "answer", "truncate"))
    chain = [render_expression(numbers, ops)]
    numbers, ops = list(numbers), list(ops)
    num_steps = len(ops)
    if kind == "copy" and num_steps == 1:
        kind = "slip"  # a one-step chain has no operand left to mis-copy
    # a mis-copy needs an operand still to come, so it never happens at the last step
    error_step = rng.randrange(num_steps - 1) if kind == "copy" else rng.randrange(num_steps)
    for step in range(num_steps):
        op = ops.pop(0)
        first, second = numbers.pop(0), numbers.pop(0)
        value = first + second if op == "+" else first - second
        if kind == "slip" and step == error_step:
            value = max(0, value + rng.choice((-2, -1, 1, 2))) or value + 1
        numbers.insert(0, value)
        if kind == "copy" and step == error_step and len(numbers) > 1:
            index = rng.randrange(1, len(numbers))
            numbers[index] = rng.choice([d for d in range(1, 10) if d != numbers[index]])
        chain.append(render_expression(numbers, ops))
    answer = int(chain[-1])
    if kind == "answer":
        answer = max(0, answer + rng.choice((-2, -1, 1, 2))) or answer + 1
    text = "=".join(chain) + f"\nAns:{answer}"
    if kind == "truncate":
        text = text[: rng.randrange(1, max(2, len(text) - 4))]
    return text


class ExampleStream:
    """Endless (context, target) pairs from the train split, deterministic in its seed."""

    def __init__(self, task: ArithmeticTask, seed: int, correction_share: float):
        self.task, self.rng, self.correction_share = task, random.Random(seed), correction_share
        self.own_attempts: list[tuple[str, str]] = []  # (expression, the model's attempt)

    def _train_expression(self) -> str:
        while True:
            expression = random_expression(
                self.rng, self.rng.choice(self.task.levels), self.task.max_operand, self.task.max_value
            )
            if split_of(expression, self.task.heldout_percent) == "train":
                return expression

    def next(self) -> tuple[str, str]:
        if self.rng.random() >= self.correction_share:
            expression = self._train_expression()
            return render_prompt(expression), solution(expression)
        if self.own_attempts and self.rng.random() < 0.5:
            expression, attempt = self.rng.choice(self.own_attempts)
        else:
            expression = self._train_expression()
            attempt = solution(expression) if self.rng.random() < 0.5 else corrupted_solution(expression, self.rng)
        context = CORRECTION_TEMPLATE.format(problem=render_prompt(expression), attempt=attempt)
        return context, solution(expression)


def collate(pairs: list[tuple[str, str]], tokenizer) -> dict[str, torch.Tensor]:
    """Right-padded ids with labels only on the target (and its EOS)."""
    rows, labels = [], []
    for context, target in pairs:
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(context_ids + target_ids)
        labels.append([-100] * len(context_ids) + target_ids)
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


def evaluate_policy(model, tokenizer, records, seed: int) -> dict[str, float]:
    """Sampled (T=1, 8 per problem) and greedy accuracy, pass@k, and one self-correction round."""
    engine = HFEngine(model, tokenizer, batch_size=256)
    settings = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS)
    metrics = evaluate_records(
        engine,
        records,
        ExactIntegerVerifier(),
        settings,
        num_samples=8,
        seed=seed,
        correction_template=CORRECTION_TEMPLATE,
        greedy=True,
    )
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


def refresh_own_attempts(model, tokenizer, stream: ExampleStream, task: ArithmeticTask, seed: int, count: int) -> None:
    records = sample_records(task, "train", count, seed=seed, unique=False)
    samples = HFEngine(model, tokenizer, batch_size=256).generate(
        [r.prompt for r in records], 1, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS), seed=seed
    )
    stream.own_attempts = [(r.meta["expression"], s[0].text) for r, s in zip(records, samples)]
    model.train()


def check_tokenizer_round_trip(folder: Path, tokenizer) -> None:
    """AutoTokenizer (what every tool loads) must encode exactly like the tokenizer we trained with."""
    loaded = AutoTokenizer.from_pretrained(folder)
    text = CORRECTION_TEMPLATE.format(problem=render_prompt("4+3-6"), attempt=solution("4+3-6"))
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    if loaded(text, add_special_tokens=False)["input_ids"] != expected:
        raise RuntimeError(f"AutoTokenizer.from_pretrained({folder}) encodes differently ({type(loaded).__name__})")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--architecture", default="small")
    parser.add_argument("--levels", default="1,2,3,4,5,6")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--target-accuracy", type=float, default=0.4)
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

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = ArithmeticTask(levels=tuple(int(x) for x in args.levels.split(",")))
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(build_config(args.architecture, len(tokenizer)))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    stream = ExampleStream(task, args.seed, args.correction_share)
    heldout = sample_records(task, "heldout", args.eval_problems, seed=args.seed + 1)
    probe = sample_records(task, "train", 128, seed=args.seed + 2)
    print(f"policy: {args.architecture}, {sum(p.numel() for p in model.parameters()):,} parameters")

    started = time.time()
    step = 0
    for step in range(1, args.max_steps + 1):
        if step >= args.own_attempts_from and step % args.own_attempts_every == 0:
            refresh_own_attempts(model, tokenizer, stream, task, seed=args.seed * 100_003 + step, count=512)
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
            print(json.dumps(evaluate_policy(model, tokenizer, heldout, seed=0)), flush=True)
            model.train()
        if step % args.check_every == 0 and probe_accuracy(model, tokenizer, probe, step) >= args.target_accuracy:
            break

    report = evaluate_policy(model, tokenizer, heldout, seed=0)
    report.update(
        steps=step, train_seconds=round(time.time() - started, 1), args={k: str(v) for k, v in vars(args).items()}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    check_tokenizer_round_trip(args.out, tokenizer)
    (args.out / "warm_start_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
