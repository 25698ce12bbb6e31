"""A mistyped group or key on the command line is named with the closest real one."""

from __future__ import annotations

import pytest

from cipo.cli.override_names import check_override_names, known_names
from conftest import CONF_DIR


def test_known_names_are_the_defaults_groups_and_the_keys():
    groups, keys = known_names(CONF_DIR, "train")
    assert {"algorithm", "data", "model", "rollout", "trainer", "logger", "callbacks", "experiment", "debug"} <= set(
        groups
    )
    assert {"seed", "module", "validation", "checkpoint", "export_policy"} <= set(keys)
    eval_groups, eval_keys = known_names(CONF_DIR, "eval")
    assert "algorithm" not in eval_groups and {"eval", "run_dir", "ckpt"} <= set(eval_keys)


@pytest.mark.parametrize(
    "argument, suggestion",
    [
        ("algoritm=cipo", "did you mean algorithm=cipo?"),
        ("modul.lr=1", "did you mean module.lr=1?"),
        ("~calbacks.progress", "did you mean ~callbacks.progress?"),
        ("tranier=gpu", "did you mean trainer=gpu?"),
    ],
)
def test_a_typo_gets_the_closest_name_and_no_advice_to_append(argument, suggestion):
    with pytest.raises(ValueError) as info:
        check_override_names(["debug=fast", argument], CONF_DIR, "train", "cipo-train")
    message = str(info.value)
    assert suggestion in message and "+" not in message.split(";")[0]
    assert "Groups: algorithm, callbacks, data" in message


def test_valid_overrides_flags_and_additions_pass():
    check_override_names(
        [
            "-m", "algorithm=grpo,cipo", "data/source@data.heldout=aime24", "hydra/launcher=slurm",
            "hydra.run.dir=/x", "+callbacks.extra._target_=x", "++foo=1", "--cfg", "job", "seed=1",
            "--config-path=/x", "~callbacks.progress",
        ],
        CONF_DIR, "train", "cipo-train",
    )  # fmt: skip


def test_eval_does_not_take_training_groups():
    with pytest.raises(ValueError, match=r"algorithm=grpo: cipo-eval has no config group or key 'algorithm'"):
        check_override_names(["algorithm=grpo"], CONF_DIR, "eval", "cipo-eval")
