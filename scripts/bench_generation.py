"""Generation throughput: HFEngine (its own loop, ``decode.sample``), transformers ``generate`` and VLLMEngine,
same prompts and lengths.

    python scripts/bench_generation.py                        # built-in policy + a Qwen2.5-0.5B-shaped model
    python scripts/bench_generation.py --skip-large --prompts 32
    python scripts/bench_generation.py --skip-large --skip-vllm --prompts 16 --n 8 --new-tokens 96 --threads 1
    python scripts/bench_generation.py --large-dtype bfloat16

Models: the shipped built-in policy (``model.path=builtin``), and a randomly initialised model of
Qwen2.5-0.5B's shape (24 layers, hidden 896, MLP 4864, 14 heads / 2 KV heads, vocab 151936,
tied embeddings, qkv bias; ``bench_common.SHAPES``) with a character tokenizer padded to the
vocabulary. Each engine samples ``n`` completions of ``--new-tokens`` tokens for ``--prompts``
arithmetic prompts at temperature 1; the first call warms up and is not timed. Tokens/s counts
the tokens actually generated (the built-in policy stops at EOS).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from bench_common import shaped_policy
from cipo.models.load import DTYPES, load_policy
from cipo.rollout.engine import SamplingSettings
from cipo.rollout.hf_engine import HFEngine
from cipo.tasks.arithmetic import arithmetic_records


def tokens_per_s(engine, prompts: list[str], n: int, settings: SamplingSettings) -> tuple[float, int]:
    engine.generate(prompts[:2], 1, SamplingSettings(max_new_tokens=4), seed=0)  # warm-up
    started = time.perf_counter()
    out = engine.generate(prompts, n, settings, seed=1)
    seconds = time.perf_counter() - started
    tokens = sum(len(c.token_ids) for group in out for c in group)
    return tokens / seconds, tokens


def compare(name: str, model, tokenizer, prompts, n, settings, model_path=None, skip_vllm=False) -> dict[str, float]:
    """tokens/s of HFEngine's own loop (``decode.sample``), of HFEngine through ``model.generate``, and of vLLM."""
    model.eval()
    engine = HFEngine(model, tokenizer, batch_size=len(prompts))
    through_generate = HFEngine(model, tokenizer, batch_size=len(prompts))
    through_generate.use_generate = "measured: transformers generate()"
    hf_rate, hf_tokens = tokens_per_s(engine, prompts, n, settings)
    generate_rate, generate_tokens = tokens_per_s(through_generate, prompts, n, settings)
    line = (
        f"{name:>22}: HFEngine {hf_rate:8.1f} tok/s ({hf_tokens} tokens; "
        f"{'generate()' if engine.use_generate else 'decode.sample'}) | HF generate() {generate_rate:8.1f} tok/s "
        f"({generate_tokens} tokens) | HFEngine/generate {hf_rate / generate_rate:.2f}x"
    )
    rates = {"hf": hf_rate, "generate": generate_rate}
    if not skip_vllm:
        from cipo.rollout.vllm_engine import VLLMEngine

        started = time.perf_counter()
        vllm_engine = VLLMEngine(model, tokenizer, model_path=model_path)
        start_s = time.perf_counter() - started
        report = vllm_engine.sync_weights()
        rates["vllm"], vllm_tokens = tokens_per_s(vllm_engine, prompts, n, settings)
        vllm_engine.close()
        line += (
            f" | vLLM {rates['vllm']:8.1f} tok/s ({vllm_tokens} tokens; start {start_s:.1f} s, sync "
            f"{report.push_s:.2f} s, probe diff {report.logprob_diff:.2g}) | vLLM/HFEngine "
            f"{rates['vllm'] / hf_rate:.2f}x"
        )
    print(line, flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=1, help="samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--large-dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--skip-large", action="store_true", help="only the built-in policy")
    parser.add_argument("--skip-vllm", action="store_true", help="only HFEngine and transformers generate()")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    for key, value in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = [r.prompt for r in arithmetic_records("heldout", args.prompts, seed=0, levels=[1, 2, 3])]
    settings = SamplingSettings(max_new_tokens=args.new_tokens, temperature=1.0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"{args.prompts} prompts x {args.n} samples x up to {args.new_tokens} new tokens, {device}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    model, tokenizer = load_policy("builtin")
    compare("built-in policy", model.to(device), tokenizer, prompts, args.n, settings, skip_vllm=args.skip_vllm)
    if not args.skip_large:
        with tempfile.TemporaryDirectory(prefix="cipo_bench_") as folder:
            model, tokenizer = shaped_policy("qwen2.5-0.5b", folder, args.large_dtype)
            name = f"Qwen2.5-0.5B shape {args.large_dtype}"
            compare(name, model.to(device), tokenizer, prompts, args.n, settings, folder, args.skip_vllm)


if __name__ == "__main__":
    main()
