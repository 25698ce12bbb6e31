"""The three workers of ``parity_vs_trl.py``, each run in a fresh process: cipo training, TRL training, evaluation.

cipo (cipo's venv) runs ``cipo.cli.train`` on the composed config with a probe callback; TRL (its own venv,
only torch, transformers, trl, datasets and cipo's pure modules) runs ``GRPOTrainer`` with a probe
``TrainerCallback``. Both probes save the policy at ``--snapshots`` and measure the update norm (L2 norm of
the parameter change of each optimizer step); the other per-step values are what each side logs itself
(cipo's TensorBoard tags, TRL's ``log_history``), renamed to ``CURVE_FIELDS``. TRL's ``entropy`` is its mean
over micro-batches of each micro-batch's token mean, cipo's the token mean over the step: the same value up
to how the tokens fall into micro-batches. The evaluation worker (cipo's venv) scores saved policies with
``bench_common.heldout_correct``.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench_common import QUIET, compose, heldout_correct, read_events
from bench_vs_trl import cipo_overrides, exact_integer_reward, trl_config_kwargs

CURVE_FIELDS = ("reward", "completion_len", "frac_truncated", "entropy", "grad_norm", "update_norm")
# what each side logs under which name: cipo's TensorBoard tags, TRL's log_history keys
CIPO_TAGS = {
    "reward": "rollout/reward_mean",
    "completion_len": "rollout/completion_len_mean",
    "frac_truncated": "rollout/frac_truncated",
    "entropy": "train/entropy",
    "grad_norm": "train/grad_norm",
}
TRL_KEYS = {
    "reward": "reward",
    "completion_len": "completions/mean_length",
    "frac_truncated": "completions/clipped_ratio",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
}
UPDATE_NORMS: list[float] = []  # the cipo worker's, one per RL step
FRESH_STREAM_OFFSET = (
    1000  # --trl-sampling fresh: TRL's seed (its RNG stream) is the run's seed + this; prompts unchanged
)


def nearby_sampling_seed(seed: int, step: int) -> int:
    """cipo's per-step sampling seed before hashing (rank 0): consecutive steps 7 apart."""
    return seed * 1_000_003 + step * 7 + 1


def cipo_sampling_seed(seed: int, step: int) -> int:
    """The sampling seed cipo's rollout uses at RL step ``step`` (0-based) of a one-process run.

    ``RolloutCallback._seed`` for rank 0, rebuilt here because the TRL venv cannot import Lightning
    (``cipo.rollout.engine`` needs only numpy); tests/scripts/test_parity.py checks that the two agree.
    """
    from cipo.rollout.engine import spread_seed

    return spread_seed(nearby_sampling_seed(seed, step))


def parameter_vector(model):
    import torch

    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def cipo_probe(folder: str, snapshots: list[int]):
    """Lightning callback (config: ``parity_workers.cipo_probe``): update norm per step, policy snapshots."""
    import lightning as L

    class ParityProbe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.before = parameter_vector(pl_module.policy)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            UPDATE_NORMS.append(float((parameter_vector(pl_module.policy) - self.before).norm()))

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch + 1 in snapshots:
                target = Path(folder) / f"policy_step{trainer.current_epoch + 1}"
                pl_module.policy.save_pretrained(target)
                pl_module.tokenizer.save_pretrained(target)

    return ParityProbe()


def sample_on_one_stream(seed: int) -> None:
    """Make every ``HFEngine`` in this process sample from one RNG stream seeded once (as TRL's global RNG),
    instead of reseeding the global RNG from each step's seed: each generate chunk runs on the stream's
    state and leaves the stream where it ended. For ``--cipo-sampling stream``, a swap of the RNG streams."""
    import torch

    from cipo.rollout.hf_engine import HFEngine

    chunk = HFEngine._generate_chunk
    stream = {"state": torch.Generator().manual_seed(seed).get_state()}

    def on_stream(self, *args, **kwargs):
        torch.random.set_rng_state(stream["state"])  # HFEngine.generate restores the caller's state afterwards
        try:
            return chunk(self, *args, **kwargs)
        finally:
            stream["state"] = torch.random.get_rng_state()

    HFEngine._generate_chunk = on_stream


def sample_with_nearby_seeds() -> None:
    """Make ``RolloutCallback`` reseed each step from ``seed x 1,000,003 + 7 x step + 1`` itself, as cipo did
    before it hashed that number (``spread_seed``): seeds 7 apart. For ``--cipo-sampling nearby``, the
    "before" arm of docs/parity.md (one process: rank 0's seeds)."""
    from cipo.callbacks.rollout import RolloutCallback

    RolloutCallback._seed = lambda self, epoch: nearby_sampling_seed(self.seed, epoch)


def cipo_worker(args, folder: Path) -> list[dict]:
    from cipo.cli.train import train
    from parity_workers import UPDATE_NORMS as update_norms  # the module Hydra's callback lives in

    update_norms.clear()
    if args.cipo_sampling == "stream":
        sample_on_one_stream(cipo_sampling_seed(args.seed, 0))
    elif args.cipo_sampling == "nearby":
        sample_with_nearby_seeds()
    probe = [
        "+callbacks.parity_probe._target_=parity_workers.cipo_probe",
        f"+callbacks.parity_probe.folder={folder}",
        f"+callbacks.parity_probe.snapshots=[{','.join(map(str, args.snapshots))}]",
    ]
    cfg = compose([*QUIET, *cipo_overrides(args), "export_policy=false", *probe], folder)
    train(cfg)
    events = read_events(Path(cfg.paths.output_dir) / "tensorboard")
    columns = {name: [value for _, _, value in events[tag]] for name, tag in CIPO_TAGS.items()}
    columns["update_norm"] = list(update_norms)
    return [{name: columns[name][step] for name in CURVE_FIELDS} for step in range(args.steps)]


def trl_worker(args, folder: Path) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from cipo.models.builtin import builtin_policy_dir

    torch.set_num_threads(args.threads)
    policy_dir = str(builtin_policy_dir())
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    update_norms: list[float] = []

    class Probe(TrainerCallback):
        def on_pre_optimizer_step(self, *_, **__):
            self.before = parameter_vector(model)

        def on_optimizer_step(self, *_, **__):
            update_norms.append(float((parameter_vector(model) - self.before).norm()))

        def on_step_end(self, _args, state, *__, **___):
            if state.global_step in args.snapshots:
                model.save_pretrained(folder / f"policy_step{state.global_step}")
                tokenizer.save_pretrained(folder / f"policy_step{state.global_step}")

    config = trl_config_kwargs(args, folder / "trl")
    if args.trl_sampling == "fresh":  # TRL's own RNG stream, seeded elsewhere: a replication with new random numbers
        config["seed"] = args.seed + FRESH_STREAM_OFFSET
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=exact_integer_reward,
        args=GRPOConfig(**config),
        train_dataset=Dataset.from_list(json.loads(Path(args.schedule).read_text())),
        processing_class=tokenizer,
        callbacks=[Probe()],
    )
    if args.trl_sampling == "cipo":  # the same RNG stream as cipo's engine: seeded per step, restored after
        generate = trainer._generate_single_turn

        def seeded_generate(*a, **kw):
            state = torch.random.get_rng_state()
            torch.manual_seed(cipo_sampling_seed(args.seed, trainer.state.global_step))
            try:
                return generate(*a, **kw)
            finally:
                torch.random.set_rng_state(state)

        trainer._generate_single_turn = seeded_generate
    trainer.train()
    history = [row for row in trainer.state.log_history if "reward" in row]
    rows = [{name: float(row.get(key, float("nan"))) for name, key in TRL_KEYS.items()} for row in history]
    for row, norm in zip(rows, update_norms, strict=True):
        row["update_norm"] = norm
    return rows


def eval_worker(args) -> list[dict]:
    """Held-out correct counts of every policy in ``--policies`` (a folder, or ``builtin``: the initial policy)."""
    import torch

    torch.set_num_threads(args.threads)
    return [
        {
            "policy": policy,
            "correct": heldout_correct(
                policy, cipo_overrides(args), args.eval_problems, args.eval_samples, args.max_new_tokens, args.eval_seed
            ),
        }
        for policy in args.policies
    ]


def run_worker(args) -> None:
    """``--worker cipo|trl|eval`` of ``parity_vs_trl.py``: run it, write its JSON into ``--run-dir``."""
    folder = Path(args.run_dir)
    if args.worker == "eval":
        args.eval_seed = int(args.eval_seed)
        (folder / "eval.json").write_text(json.dumps(eval_worker(args)))
        return
    rows = (cipo_worker if args.worker == "cipo" else trl_worker)(args, folder)
    (folder / f"{args.worker}.json").write_text(json.dumps(rows))
