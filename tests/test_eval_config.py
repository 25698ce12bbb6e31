"""cipo-eval's configuration from a run folder: the run's sections, the command line on top."""

import pytest
from omegaconf import OmegaConf

from cipo.cli.eval_config import apply_run_sections, policy_source, read_run_config, resolve_checkpoint

EVAL = {
    "seed": 0,
    "run_dir": "RUN",
    "ckpt": None,
    "model": {"path": "builtin", "dtype": "float32"},
    "data": {"name": "eval-default", "heldout": {"num_records": 128}, "seed": "${seed}"},
    "verifier": {"marker": "Ans:"},
    "rollout": {"max_new_tokens": 96, "top_p": 1.0},
    "eval": {"samples": 8},
}
RUN = {
    "seed": 7,
    "model": {"path": "/models/base", "dtype": "bfloat16"},
    "data": {"name": "run-data", "heldout": {"num_records": 64}, "seed": "${seed}"},
    "verifier": {"marker": "Answer:"},
    "rollout": {"max_new_tokens": 32, "top_p": 0.9},
    "algorithm": {"name": "cipo"},
}


def merged(overrides, **eval_changes):
    cfg = OmegaConf.create({**EVAL, **eval_changes})
    # Hydra has already applied the key overrides to the composed config (a group choice
    # would have swapped in another file's section: here EVAL's own): mimic that.
    for override in overrides:
        key, _, value = override.partition("=")
        if "." in key and not key.startswith("~"):
            OmegaConf.update(cfg, key, int(value) if value.isdigit() else value)
    return apply_run_sections(cfg, OmegaConf.create(RUN), overrides)


def test_run_sections_replace_the_eval_defaults():
    cfg = merged([])
    assert cfg.model.path == "/models/base" and cfg.data.name == "run-data" and cfg.rollout.max_new_tokens == 32
    assert cfg.verifier.marker == "Answer:" and cfg.eval.samples == 8
    assert cfg.data.seed == 0  # interpolations resolve against the eval config (its seed)
    assert "algorithm" not in cfg


def test_command_line_keys_win_over_the_run():
    cfg = merged(["data.heldout.num_records=5", "rollout.top_p=0.5", "eval.samples=2"])
    assert cfg.data.heldout.num_records == 5 and cfg.data.name == "run-data"
    assert cfg.rollout.top_p == "0.5" and cfg.rollout.max_new_tokens == 32
    cfg = merged(["~rollout.top_p"])
    assert "top_p" not in cfg.rollout


def test_a_group_choice_takes_the_composed_section():
    cfg = merged(["data=other", "data.heldout.num_records=3"])
    assert cfg.data.name == "eval-default" and cfg.data.heldout.num_records == 3
    assert cfg.rollout.max_new_tokens == 32  # the other sections still come from the run


def test_policy_source(tmp_path):
    run = tmp_path / "run"
    (run / "policy").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / "checkpoints" / "step0004.ckpt").write_bytes(b"")
    cfg = OmegaConf.create({**EVAL, "run_dir": str(run)})
    with pytest.raises(FileNotFoundError, match=r"no exported policy.*ckpt=last"):
        policy_source(cfg, [])
    (run / "policy" / "config.json").write_text("{}")
    assert policy_source(cfg, []).model_path == str(run / "policy")
    assert policy_source(cfg, ["model.path=/elsewhere"]).model_path == "builtin"  # the user's choice
    for name in ("last", "step0004", "step0004.ckpt", str(run / "checkpoints" / "last.ckpt")):
        source = policy_source(OmegaConf.merge(cfg, {"ckpt": name}), [])
        assert source.ckpt.is_file() and source.model_path == "builtin"
    with pytest.raises(FileNotFoundError, match=r"ckpt='step9' no checkpoint file|ckpt='step9': no checkpoint"):
        resolve_checkpoint("step9", run)


def test_a_folder_without_a_run_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run_dir=.*no \.hydra/config\.yaml"):
        read_run_config(tmp_path)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("eval: {samples: 2}\n")
    with pytest.raises(ValueError, match="cipo-train run folder"):
        read_run_config(tmp_path)
