"""Per-phase cost of one cipo RL step at several sizes, and what the correction stream adds (cipo vs grpo).

    python scripts/bench_step.py                        # the full grid below (long: docs/performance.md)
    python scripts/bench_step.py --sizes 5M --groups 8 --lengths 64     # one configuration
    python scripts/bench_step.py --sizes builtin --groups 8 --lengths 96 --prompts 16   # the built-in task as shipped

Grid: ``--sizes`` (random Llama policies with the built-in character tokenizer: ``5M`` = hidden 256 x 6 layers,
``30M`` = hidden 512 x 9 layers; ``builtin`` = the shipped warm-started 0.87M policy) x ``--groups`` (G,
samples per prompt) x ``--lengths`` (completion tokens). Every configuration trains ``--prompts`` prompts
per step with G samples each; cipo adds K = prompts / 2 anchors x M = G revisions (the built-in defaults'
proportions). Both algorithms run through ``cipo.cli.train`` (the shipped path), alternating grpo, cipo,
grpo, cipo ... (``--repeats``), ``--steps`` RL steps each, the first one a warm-up.

Random weights would end samples at random points and earn no reward (all advantages 0). So that the
work is real and the same every step, for random policies (not ``builtin``):
  * the saved policy's ``generation_config.json`` sets ``min_new_tokens`` = the completion length, so every
    sample (and every revision) is exactly that long (generate masks EOS until then);
  * the verifier is a deterministic coin flip on a CRC of the completion (``CoinFlipVerifier`` below), so
    groups are mixed, advantages are non-zero, and the correction stream gets both right and wrong anchors.
    The backward therefore always runs on a loss with a real gradient (``train/grad_norm`` > 0 is checked).

Reported per configuration and algorithm: median seconds of the step (wall and CPU) and of each logged
phase (``time/generate_s``, ``verify_s``, ``forward_s`` = logprobs + loss, ``backward_s``, ``optimizer_s``;
"other" = the rest), generated tokens, trained tokens; then the correction stream's cost: extra wall time
(cipo / grpo - 1) next to extra generated tokens (the same ratio), split into generation and training, and
the per-round CPU ratios' mean with a 95% t interval (``--repeats`` >= 2: on a shared machine one round
of the same code can land anywhere in a +-15-point band, so a single figure is not a measurement).

Last, how close the update runs to the machine's limit: the training forward + backward's achieved rate,
6 x parameters x tokens / seconds, counting either the trained (loss) tokens or the processed tokens (every
token the forward and backward ran: completions plus each shared prompt once, ``compute/processed_tokens``,
the count model-FLOP utilisation uses), next to a matmul peak measured in the same process with the
same threads (``matmul_peak``: the best of several fp32 2048^3 ``torch.mm``, before and after each
configuration). Both in wall seconds (``time/forward_s + backward_s``) and per CPU second
(``time/train_cpu_s``; on a shared machine the CPU figure is the one to trust).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import zlib
from pathlib import Path

from bench_common import PHASES, load_average, median, read_events, run_cipo
from cipo.types import VerifierResult, VerifyStatus

SIZES = {  # hidden, layers, heads, MLP width (head dim 64, tied embeddings)
    "5M": (256, 6, 4, 768),
    "30M": (512, 9, 8, 1536),
}


class CoinFlipVerifier:
    """Reward 1 for half of all completions, chosen by a CRC of the text: deterministic, not salted per process."""

    def __init__(self, marker: str = "Ans:") -> None:
        self.marker = marker

    def __call__(self, completions: list[str], references: list[str]) -> list[VerifierResult]:
        flips = [zlib.crc32(f"{c}|{r}".encode()) % 2 == 1 for c, r in zip(completions, references, strict=True)]
        return [VerifierResult(f, float(f), VerifyStatus.OK if f else VerifyStatus.WRONG) for f in flips]


def random_policy(size: str, length: int, folder: Path) -> tuple[str, int]:
    """A random Llama policy of ``size`` saved to ``folder``; every sample is exactly ``length`` tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    from cipo.models.builtin import build_tokenizer, llama_config

    hidden, layers, heads, mlp = SIZES[size]
    positions = 2 * (length + 64)  # a correction prompt holds a whole attempt (cli.check_task_fits_model)
    tokenizer = build_tokenizer(model_max_length=positions)
    config = llama_config(len(tokenizer), positions, hidden, layers, heads, mlp)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.min_new_tokens = length
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), sum(p.numel() for p in model.parameters())


def matmul_peak(size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """(wall, CPU) GFLOP/s of the best of ``repeats`` fp32 ``size``^3 matmuls, at torch's current threads."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        flops = 2 * size**3 / 1e9
        best_wall = max(best_wall, flops / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, flops / max(time.process_time() - cpu, 1e-9))
    return best_wall, best_cpu


def overrides(args, algorithm: str, model_path: str, group: int, length: int, random: bool) -> list[str]:
    chosen = [
        f"algorithm={algorithm}",
        f"model.path={model_path}",
        f"seed={args.seed}",
        f"num_threads={args.threads}",
        f"data.batch_size={args.prompts}",
        f"algorithm.group_size={group}",
        f"algorithm.correction.num_anchors={max(args.prompts // 2, 1)}",
        f"algorithm.correction.samples_per_anchor={group}",
        f"rollout.max_new_tokens={length}",
        f"module.micro_batch_size={args.micro_batch}",
        f"trainer.max_epochs={args.steps}",
    ]
    if random:
        # importable: scripts/ is on sys.path; data.verifier says the data set is scored by it on purpose
        chosen += ["verifier._target_=bench_step.CoinFlipVerifier", "data.verifier=bench_step.CoinFlipVerifier"]
    return chosen


def run(args, algorithm: str, model_path: str, group: int, length: int, random: bool, folder: Path) -> dict:
    result = run_cipo(overrides(args, algorithm, model_path, group, length, random), folder)
    events = read_events(Path(result["policy"]).parent / "tensorboard")
    grad_norms = [v for _, _, v in events["train/grad_norm"]]
    if not all(g > 0 for g in grad_norms):
        raise SystemExit(f"{algorithm}: a step had no gradient (train/grad_norm {grad_norms}): the timing is not real")
    return result


def summarise(runs: list[dict]) -> dict[str, float]:
    """Medians over repeats of each run's per-step medians (the warm-up step left out)."""
    out = {
        "step_s": median([r["median_step_s"] for r in runs]),
        "cpu_s": median([r["median_cpu_s"] for r in runs]),
        "generated": median([statistics.mean(r["generated_tokens"]) for r in runs]),
        "trained": median([statistics.mean(r["trained_tokens"]) for r in runs]),
        "processed": median([statistics.mean(r["processed_tokens"]) for r in runs]),
        "train_cpu": median([r["train_cpu_s"] for r in runs]),
    }
    for phase in PHASES:
        out[phase] = median([r["phase_s"].get(phase, 0.0) for r in runs])
    out["other"] = out["step_s"] - sum(out[phase] for phase in PHASES)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5M", "30M"], choices=[*SIZES, "builtin"])
    parser.add_argument("--groups", nargs="+", type=int, default=[4, 8, 16], help="samples per prompt (G)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 256], help="completion tokens")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per RL step (B); K = B / 2 anchors")
    parser.add_argument("--steps", type=int, default=2, help="RL steps per run, the first a warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of (grpo, cipo), interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--micro-batch", type=int, default=64, help="module.micro_batch_size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write every run's numbers here (JSON)")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is a warm-up)")

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"{args.prompts} prompts/step, K = {max(args.prompts // 2, 1)} anchors x M = G revisions, {args.steps} steps "
        f"(first = warm-up), {args.repeats} round(s), {args.threads} thread(s), micro-batch {args.micro_batch}; "
        f"load average {load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cipo_bench_step_") as work:  # runs and policies: up to ~600 MB
        rows, raw = run_grid(args, Path(work))
    print_tables(rows)
    if args.out:
        args.out.write_text(json.dumps(raw, indent=1))


def run_grid(args, work: Path) -> tuple[list, list]:
    """Every size x length x group configuration, ``--repeats`` rounds of (grpo, cipo) each: the table rows
    and every run's raw numbers. Run folders and random policies go under ``work``."""
    rows, raw = [], []
    for size in args.sizes:
        for length in args.lengths:
            random = size != "builtin"
            if random:
                model_path, params = random_policy(size, length, work / f"policy_{size}_{length}")
            else:
                model_path, params = "builtin", builtin_parameters()
            for group in args.groups:
                runs: dict[str, list[dict]] = {"grpo": [], "cipo": []}
                loads = [load_average()]
                peaks = [matmul_peak()]
                for round_index in range(args.repeats):
                    for algorithm in ("grpo", "cipo"):
                        folder = work / f"{size}_{length}_{group}_{algorithm}_{round_index}"
                        runs[algorithm].append(run(args, algorithm, model_path, group, length, random, folder))
                        loads.append(load_average())
                peaks.append(matmul_peak())
                summary = {name: summarise(values) for name, values in runs.items()}
                summary["round_extras"] = round_extras(runs)
                summary["peak"] = tuple(max(values) for values in zip(*peaks))  # (wall, CPU) GFLOP/s
                rows.append((size, params, group, length, summary, loads[0], loads[-1]))
                raw.append(dict(size=size, group=group, length=length, runs=runs, loads=loads, peaks=peaks))
                print_row(*rows[-1])
    return rows, raw


def builtin_parameters() -> int:
    from cipo.models.load import load_policy

    model, _ = load_policy("builtin")
    return sum(p.numel() for p in model.parameters())


def print_row(size, params, group, length, summary, load_before, load_after) -> None:
    for name in ("grpo", "cipo"):
        s = summary[name]
        phases = " ".join(f"{phase} {s[phase]:.2f}" for phase in (*PHASES, "other"))
        print(
            f"{size} ({params / 1e6:.1f}M) G={group} L={length} {name}: {s['step_s']:.2f} s/step wall, "
            f"{s['cpu_s']:.2f} CPU; {phases}; generated {s['generated']:.0f}, trained {s['trained']:.0f} tokens; "
            f"load {load_before} -> {load_after}",
            flush=True,
        )


def round_extras(runs: dict[str, list[dict]]) -> list[float]:
    """cipo / grpo - 1 of each round's CPU seconds per step. A round's grpo and cipo runs are back to
    back, so a shared machine's slow and fast spells fall on both; the rounds are then independent units."""
    return [c["median_cpu_s"] / g["median_cpu_s"] - 1 for g, c in zip(runs["grpo"], runs["cipo"], strict=True)]


def mean_interval(values: list[float], level: float = 0.95) -> str:
    """'+m% [+lo%, +hi%] (n rounds)' with a t interval of the mean; the value alone for one round."""
    import numpy as np
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{100 * mean:+.0f}% (1 round)"
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=stats.sem(values))
    return f"{100 * mean:+.0f}% [{100 * low:+.0f}%, {100 * high:+.0f}%] ({len(values)} rounds)"


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def extra(cipo: float, grpo: float) -> str:
    return f"{100 * (cipo / grpo - 1):+.0f}%" if grpo else "n/a"


def print_tables(rows) -> None:
    print("\nPer-phase seconds of one RL step (medians; other = step - phases)\n")
    phases = (*PHASES, "other")
    lines = []
    for size, _, group, length, summary, *_ in rows:
        for name in ("grpo", "cipo"):
            s = summary[name]
            cells = [f"{s[key]:.2f}" for key in ("step_s", "cpu_s", *phases)]
            lines.append([size, str(group), str(length), name, *cells])
    table(["size", "G", "L", "algo", "step s (wall)", "step s (CPU)", *phases], lines)
    print("\nWhat the correction stream adds (cipo / grpo - 1): time next to generated tokens\n")
    lines = []
    for size, _, group, length, summary, *_ in rows:
        g, c = summary["grpo"], summary["cipo"]
        lines.append(
            [
                size,
                str(group),
                str(length),
                extra(c["step_s"], g["step_s"]),
                extra(c["cpu_s"], g["cpu_s"]),
                extra(c["generated"], g["generated"]),
                extra(c["generate"], g["generate"]),
                extra(c["forward"] + c["backward"], g["forward"] + g["backward"]),
                extra(c["trained"], g["trained"]),
                mean_interval(summary["round_extras"]),
            ]
        )
    header = ["size", "G", "L", "wall", "CPU", "generated tokens", "generate s", "forward+backward s", "trained tokens"]
    table(header + ["CPU per round: mean [95% CI]"], lines)
    print(
        "\nTraining forward + backward: 6 x parameters x tokens / seconds, next to the matmul peak "
        "(fp32 2048^3 torch.mm, same process and threads). Tokens: trained = the loss tokens (completions); "
        "processed = every token the forward and backward ran (completions plus each shared prompt once), "
        "the count model-FLOP utilisation uses\n"
    )
    lines = []
    for size, params, group, length, summary, *_ in rows:
        peak_wall, peak_cpu = summary["peak"]
        for name in ("grpo", "cipo"):
            s = summary[name]
            for tokens in ("trained", "processed"):
                flops = 6 * params * s[tokens] / 1e9
                wall = flops / max(s["forward"] + s["backward"], 1e-9)
                cpu = flops / max(s["train_cpu"], 1e-9)
                lines.append(
                    [size, str(group), str(length), name, f"{params / 1e6:.2f}M", f"{s[tokens]:.0f} {tokens}"]
                    + [f"{wall:.1f}", f"{peak_wall:.1f}", f"{100 * wall / peak_wall:.0f}%"]
                    + [f"{cpu:.1f}", f"{peak_cpu:.1f}", f"{100 * cpu / peak_cpu:.0f}%"]
                )
    header = ["size", "G", "L", "algo", "params", "tokens", "GFLOP/s wall", "peak wall", "share"]
    table(header + ["GFLOP per CPU-s", "peak per CPU-s", "share"], lines)


if __name__ == "__main__":
    main()
