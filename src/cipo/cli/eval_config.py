"""The configuration ``cipo-eval`` runs with, and which weights it evaluates.

With ``run_dir``, the run's own ``.hydra/config.yaml`` supplies the model / data / verifier /
rollout sections (what the run trained with), and the user's command line still wins: a group
choice (``data=other``) takes that group's file instead, a key (``data.heldout.num_records=64``,
``~rollout.top_p``) is applied on top of the run's section. Without ``run_dir`` the sections
come from ``conf/eval.yaml``'s defaults as usual.

Weights: ``ckpt`` (a ``.ckpt`` path, a file name in ``<run_dir>/checkpoints``, or ``last``)
loads the policy weights of a Lightning checkpoint into the model built from the model section;
otherwise a run's exported ``<run_dir>/policy``; otherwise ``model.path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

RUN_SECTIONS = ("model", "data", "verifier", "rollout")


def read_run_config(run_dir: str | Path) -> DictConfig:
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"run_dir={str(run_dir)!r}: no .hydra/config.yaml there; point run_dir at a cipo-train run folder "
            "(logs/<task_name>/runs/<timestamp> or one job folder of a multirun)"
        )
    run_cfg = OmegaConf.load(path)
    missing = [section for section in RUN_SECTIONS if section not in run_cfg]
    if missing:
        raise ValueError(f"{path}: no {missing} section(s); is this a cipo-train run folder?")
    return run_cfg


def apply_run_sections(cfg: DictConfig, run_cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with the run's sections, then the user's ``overrides`` of them re-applied.

    ``cfg`` is the composed eval config (overrides already applied by Hydra), so an overridden
    key's value is copied from it: Hydra has parsed and typed it already.
    """
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    chosen = {o.key_or_group for o in parsed if o.key_or_group in RUN_SECTIONS}
    merged = cfg.copy()
    with open_dict(merged):
        for section in RUN_SECTIONS:
            if section not in chosen:
                merged[section] = run_cfg[section]
        for override in parsed:
            key = override.key_or_group
            section = key.split(".", 1)[0]
            if section in chosen or section not in RUN_SECTIONS or "." not in key:
                continue
            if override.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(merged, parent)
                if node is not None and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(merged, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
    return merged


@dataclass(frozen=True)
class PolicySource:
    """``model_path`` is what ``load_policy`` builds; ``ckpt`` (if any) overwrites its weights."""

    model_path: str
    ckpt: Path | None
    label: str


def resolve_checkpoint(ckpt: str, run_dir: str | Path | None) -> Path:
    """A path to an existing ``.ckpt`` file: as given, or inside ``<run_dir>/checkpoints``."""
    candidates = [Path(ckpt).expanduser()]
    if run_dir is not None:
        folder = Path(run_dir) / "checkpoints"
        name = "last.ckpt" if ckpt == "last" else ckpt
        candidates += [folder / name, folder / f"{name}.ckpt"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"ckpt={ckpt!r}: no checkpoint file at {tried}")


def policy_source(cfg: DictConfig, overrides: list[str]) -> PolicySource:
    run_dir = cfg.get("run_dir")
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    model_chosen = any(o.key_or_group in ("model", "model.path") for o in parsed)
    if cfg.get("ckpt"):
        ckpt = resolve_checkpoint(str(cfg.ckpt), run_dir)
        return PolicySource(str(cfg.model.path), ckpt, f"{ckpt} (weights) into {cfg.model.path}")
    if run_dir and not model_chosen:
        exported = Path(run_dir) / "policy"
        if not (exported / "config.json").is_file():
            raise FileNotFoundError(
                f"run_dir={str(run_dir)!r} has no exported policy ({exported}/config.json): the run stopped "
                "before its end or ran with export_policy=false. Evaluate a checkpoint instead: ckpt=last"
            )
        return PolicySource(str(exported), None, str(exported))
    return PolicySource(str(cfg.model.path), None, str(cfg.model.path))
