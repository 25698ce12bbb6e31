"""Every shipped config composes (and builds); each ablation file turns exactly its one knob;
bad input fails before any work with a message that names the key."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from cipo.algorithms.config import AlgorithmConfig
from cipo.cli.train import train
from cipo.data.context_fit import check_task_fits_model
from cipo.data.datamodule import PromptDataModule
from cipo.models.builtin import build_config
from cipo.reporting.study import sequences_per_step
from cipo.settings import check_data_verifier, read_train_settings, sampling_settings
from conftest import CONF_DIR, compose_train

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
GROUP_FILES = [(group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))]
ALGORITHMS = sorted(p.stem for p in (CONF_DIR / "algorithm").glob("*.yaml"))


def _algorithm(cfg) -> AlgorithmConfig:
    return AlgorithmConfig.from_dict(OmegaConf.to_container(cfg.algorithm, resolve=True))


def test_groups_are_found():
    assert {"algorithm", "data", "rollout", "trainer", "model", "logger", "callbacks", "debug"} <= set(GROUPS)
    assert len(ALGORITHMS) >= 8


def _needs_model_path(group: str, name: str) -> bool:
    return (group, name) == ("model", "local") or (group == "experiment" and name.startswith("paper_"))


def _correction_templates(datamodule, tokenizer) -> tuple[str, str]:
    """As given (built-in task) or derived from data.prompt (here with the plain-text character tokenizer)."""
    if datamodule.prompt is None:
        return datamodule.correction_template, datamodule.verdict_template
    formatter = datamodule.prompt.build(tokenizer)
    return formatter.correction_template, formatter.verdict_template


@pytest.mark.parametrize("group, name", GROUP_FILES, ids=[f"{g}/{n}" for g, n in GROUP_FILES])
def test_every_config_composes_and_resolves(group, name, tmp_path, tiny_policy_dir, built_tokenizer):
    overrides = [f"{group}={name}"]
    if _needs_model_path(group, name):
        overrides.append(f"model.path={tiny_policy_dir}")
    with compose_train(overrides, tmp_path=tmp_path, fast=False) as cfg:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # no ??? left, no bad ${}
        assert container["paths"]["output_dir"] == str(tmp_path / "run")
        # the pieces train() builds first must build from every file
        algorithm = _algorithm(cfg)
        settings = sampling_settings(cfg.rollout)
        assert settings.max_new_tokens >= 1 and algorithm.group_size >= 1
        instantiate(cfg.verifier)
        datamodule = instantiate(cfg.data, updates_per_step=algorithm.updates_per_step, _convert_="all")
        assert isinstance(datamodule, PromptDataModule)
        correction_template, verdict_template = _correction_templates(datamodule, built_tokenizer)
        assert "{problem}" in correction_template and "{attempt}" in correction_template
        assert "{verdict}" in verdict_template
        assert cfg.trainer._target_ == "lightning.Trainer"
        for section in ("logger", "callbacks"):
            for key, node in (cfg.get(section) or {}).items():
                assert node is None or "_target_" in node, f"{section}.{key}"


def test_default_data_builds_records_of_both_splits(tmp_path):
    with compose_train(["data.train.num_records=32", "data.heldout.num_records=8"], tmp_path=tmp_path) as cfg:
        datamodule = instantiate(cfg.data, updates_per_step=1, _convert_="all")
        datamodule.setup("fit")
        assert len(datamodule.train_records) == 32 and len(datamodule.heldout_records) == 8
        assert {r.meta["split"] for r in datamodule.heldout_records} == {"heldout"}


DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
SOURCES = sorted(p.stem for p in (CONF_DIR / "data" / "source").glob("*.yaml"))
CODE_DATA = {"humaneval", "livecodebench", "debugbench", "criticbench"}
VERIFIERS = {"math": "cipo.verifiers.math.MathVerifier", "code": "cipo.verifiers.code.CodeVerifier"}


VERIFIER_CONFIGS = {"cipo.verifiers.math.MathVerifier": "math", "cipo.verifiers.code.CodeVerifier": "code"}


@pytest.mark.parametrize("name", DATA)
def test_each_data_config_states_its_verifier_and_a_mismatch_fails_early(name, tmp_path, monkeypatch):
    """The verifier is chosen explicitly (not by defaults-list order): the data config says which
    one its references need, and a run with another one stops before any loading, naming the fix."""
    import cipo.cli.train

    builtin = ("arithmetic", "missing_operand")
    expected = dict.fromkeys(builtin, "cipo.verifiers.exact_answer.ExactIntegerVerifier").get(
        name, VERIFIERS["code" if name in CODE_DATA else "math"]
    )
    monkeypatch.setattr(cipo.cli.train, "build_policy", lambda *a, **k: pytest.fail("loaded before checking"))
    with compose_train([f"data={name}"], tmp_path=tmp_path, fast=False) as cfg:
        assert cfg.data.verifier == expected
        assert cfg.verifier._target_.endswith("ExactIntegerVerifier")  # the default, whatever the data
        if name not in builtin:
            with pytest.raises(ValueError, match=r"data\.verifier: .* written for " + expected.replace(".", r"\.")):
                train(cfg)
    if name not in builtin:
        chosen = [f"data={name}", f"verifier={VERIFIER_CONFIGS[expected]}"]
        with compose_train(chosen, tmp_path=tmp_path, fast=False) as cfg:
            assert cfg.verifier._target_ == expected
            check_data_verifier(cfg.data, cfg.verifier)


@pytest.mark.parametrize("source", SOURCES)
def test_any_source_can_be_the_heldout_split(source, tmp_path):
    overrides = ["data=dapo_math", f"data/source@data.heldout={source}"]
    with compose_train(overrides, tmp_path=tmp_path, fast=False) as cfg:
        heldout = OmegaConf.to_container(cfg.data.heldout, resolve=True)
    assert heldout["_target_"] == "cipo.data.records.load_records" and heldout["name"].startswith(source.split("_")[0])
    assert sum(bool(heldout.get(key)) for key in ("path", "hub", "packaged")) == 1


@pytest.mark.parametrize("name, total", [("humaneval", 164), ("champ", 79)])
def test_packaged_data_sets_up_offline_with_disjoint_splits(name, total, tmp_path, built_tokenizer):
    with compose_train([f"data={name}"], tmp_path=tmp_path, fast=False) as cfg:
        datamodule = instantiate(cfg.data, updates_per_step=1, _convert_="all")
    datamodule.attach_tokenizer(built_tokenizer)
    datamodule.setup("fit")
    train, heldout = datamodule.train_records, datamodule.heldout_records
    assert len(train) + len(heldout) == total and heldout and not {r.id for r in train} & {r.id for r in heldout}
    assert train[0].prompt.endswith(datamodule.prompt.instruction + "\n\n")  # plain: no chat template
    with compose_train([f"data={name}"], tmp_path=tmp_path) as cfg:  # debug=fast caps any source
        assert cfg.data.train.num_records == 64 and cfg.data.heldout.num_records == 8


PAPER = sorted(p.stem for p in (CONF_DIR / "experiment").glob("paper_*.yaml"))


def test_experiments_are_settings_not_algorithms():
    # builtin_matched: 24 prompts per step; smollm2: the real chat model; builtin_missing_operand: the second task
    settings = {"builtin", "builtin_matched", "builtin_missing_operand", "paper_math", "paper_code", "smollm2"}
    assert {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")} == settings
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        assert "override /algorithm" not in path.read_text(), f"{path.name} chooses an algorithm: use algorithm="


@pytest.mark.parametrize("algorithm_name", ["grpo", "cipo"])
@pytest.mark.parametrize("name", PAPER)
def test_paper_experiments(name, algorithm_name, tmp_path):
    with compose_train([f"experiment={name}"], tmp_path=tmp_path, fast=False) as cfg:
        with pytest.raises(Exception, match="model.path"):
            OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=True)  # the path must be given
    overrides = [f"experiment={name}", f"algorithm={algorithm_name}", "model.path=/models/x"]
    with compose_train(overrides, tmp_path=tmp_path, fast=False) as cfg:
        algorithm = _algorithm(cfg)
        domain = name.split("_")[1]
        assert cfg.trainer.max_epochs == 500 and cfg.trainer.precision == "bf16-mixed"
        assert cfg.model.dtype == "bfloat16" and cfg.rollout.engine._target_.endswith("VLLMEngine")
        assert cfg.verifier._target_ == cfg.data.verifier == VERIFIERS[domain]  # chosen, and the one the data needs
        assert algorithm.correction.enabled == (algorithm_name == "cipo") and algorithm.name == algorithm_name
        assert cfg.rollout.temperature == 1.0 and algorithm.clip_low == 0.2 and algorithm.kl_coef == 0.0
        if algorithm.correction.enabled:  # method sheet: M = G, alpha = lambda = 1, band [1/8, 7/8]
            corr = algorithm.correction
            assert corr.samples_per_anchor == algorithm.group_size and corr.coef == 1.0 and corr.penalty == 1.0
            assert (corr.acc_low, corr.acc_high) == (0.125, 0.875) and corr.replay.adaptive
        datamodule = instantiate(cfg.data, updates_per_step=algorithm.updates_per_step, _convert_="all")
        assert datamodule.prompt is not None and datamodule.batch_size >= 1
        read_train_settings(OmegaConf.to_container(cfg, resolve=True))


def test_paper_grpo_and_cipo_differ_only_in_the_algorithm(tmp_path):
    for domain in ("math", "code"):
        configs = {}
        for name in ("grpo", "cipo"):
            overrides = [f"experiment=paper_{domain}", f"algorithm={name}", "model.path=/m"]
            with compose_train(overrides, tmp_path=tmp_path) as cfg:
                configs[name] = OmegaConf.to_container(cfg, resolve=True)
        grpo, cipo = (configs[n] for n in ("grpo", "cipo"))
        assert {k for k in grpo if grpo[k] != cipo[k]} == {"algorithm"}


# ---------------------------------------------------------------- one knob per ablation
def _diff(a, b, prefix="") -> dict[str, tuple]:
    out = {}
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if dataclasses.is_dataclass(x):
            out.update(_diff(x, y, f"{prefix}{field.name}."))
        elif x != y:
            out[f"{prefix}{field.name}"] = (x, y)
    return out


KNOBS = {
    "cipo": {},
    "grpo": {"correction.enabled": False},
    "cipo_failed_only": {"correction.replay.initial": 0.0, "correction.replay.min": 0.0, "correction.replay.max": 0.0},
    "cipo_no_risk": {"correction.penalty": 0.0},
    "cipo_sft_corrections": {"correction.objective": "sft"},
    "cipo_reveal_verdict": {"correction.reveal_verdict": True},
    "cipo_uniform_anchors": {"correction.anchor_preference": "uniform"},
    "cipo_fixed_replay": {"correction.replay.adaptive": False},
    "cipo_band_anchors": {"correction.anchor_preference": "band"},
    "cipo_all_wrong_anchors": {"correction.all_wrong_share": 0.5},
    "cipo_per_stream": {"correction.stream_weighting": "per_stream"},
    "cipo_transplant": {"correction.transplant": True},
    "cipo_progress": {"correction.progress_bonus": 0.5},
    "cipo_published_replay": {"correction.replay.rule": "published", "correction.replay.min": 0.2},
    # every published mechanism at once (docs/method.md): the comparison row of the defaults
    "cipo_published": {
        "correction.stream_weighting": "per_stream",
        "correction.anchor_preference": "band",
        "correction.shaping": "reward",
        "correction.replay.rule": "published",
        "correction.replay.min": 0.2,
    },
}


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_file_turns_the_knob_its_name_says(name, tmp_path):
    with compose_train([], tmp_path=tmp_path, fast=False) as cfg:
        base = _algorithm(cfg)
    with compose_train([f"algorithm={name}"], tmp_path=tmp_path, fast=False) as cfg:
        algorithm = _algorithm(cfg)
    assert algorithm.name == name, "the file's `name:` must match its file name"
    assert name in KNOBS, f"conf/algorithm/{name}.yaml is new: add the knob it turns to KNOBS"
    changed = {key: new for key, (_, new) in _diff(base, algorithm).items() if key != "name"}
    assert changed == KNOBS[name]


def test_debug_fast_is_small(tmp_path):
    with compose_train([], tmp_path=tmp_path) as cfg:
        assert cfg.trainer.max_epochs == 2 and cfg.data.batch_size == 4
        assert cfg.algorithm.group_size == 4 and cfg.rollout.max_new_tokens == 32  # conftest's, for the tiny policy
    with compose_train(["debug=fast"], tmp_path=tmp_path, fast=False) as cfg:
        assert cfg.rollout.max_new_tokens == 96  # the built-in policy's answers fit: no truncation warning


# ------------------------------------------------------------------ bad input, early
@pytest.mark.parametrize(
    "override, match",
    [
        ("+algorithm.foo=1", r"algorithm: unknown key\(s\) \['foo'\]"),
        ("+algorithm.correction.bar=1", r"algorithm\.correction: unknown key\(s\) \['bar'\]"),
        ("algorithm.group_size=-1", r"algorithm\.group_size"),
        ("algorithm.group_size=abc", r"algorithm\.group_size: expected an integer"),
        ("algorithm.correction.penalty=-1", r"algorithm\.correction\.penalty"),
        ("algorithm.correction.objective=dpo", r"algorithm\.correction\.objective"),
        ("algorithm.advantage=ppo", r"algorithm\.advantage"),
        ("algorithm.is_weights_cap=0", r"algorithm\.is_weights_cap: must be null or a number > 0"),
        ("algorithm.is_weights_cap=abc", r"algorithm\.is_weights_cap"),
        ("rollout.top_p=0", r"rollout\.top_p"),
        ("rollout.temperature=-1", r"rollout\.temperature"),
        ("rollout.max_new_tokens=0", r"rollout\.max_new_tokens"),
    ],
)
def test_bad_algorithm_or_rollout_fails_before_any_work(override, match, tmp_path, monkeypatch):
    import cipo.cli.train

    def no_loading(*args, **kwargs):
        raise AssertionError("the policy was loaded before the config was validated")

    monkeypatch.setattr(cipo.cli.train, "build_policy", no_loading)
    with compose_train([override], tmp_path=tmp_path, model_path="/nonexistent") as cfg:
        with pytest.raises(ValueError, match=match):
            train(cfg)
    assert not (tmp_path / "run").exists()


def test_acc_band_inverted_names_both_keys(tmp_path):
    overrides = ["algorithm.correction.acc_low=0.9", "algorithm.correction.acc_high=0.1"]
    with compose_train(overrides, tmp_path=tmp_path) as cfg:
        with pytest.raises(ValueError, match=r"algorithm\.correction\.acc_low/acc_high.*acc_low=0\.9"):
            train(cfg)


def test_bad_batch_size_names_the_key(tmp_path, tiny_policy_dir):
    with compose_train(["data.batch_size=0"], tmp_path=tmp_path, model_path=tiny_policy_dir) as cfg:
        # hydra.utils.instantiate wraps the ValueError; the message still names the key
        with pytest.raises((ValueError, InstantiationException), match=r"data\.batch_size .*must be >= 1, got 0"):
            train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_batch_size_fails_before_loading_the_policy(tmp_path, monkeypatch):
    import cipo.cli.train

    def no_loading(*args, **kwargs):
        raise AssertionError("the policy was loaded before data.* was validated")

    monkeypatch.setattr(cipo.cli.train, "build_policy", no_loading)
    with compose_train(["data.batch_size=0"], tmp_path=tmp_path) as cfg:
        with pytest.raises((ValueError, InstantiationException), match=r"data\.batch_size"):
            train(cfg)


def test_missing_model_names_model_path(tmp_path):
    with compose_train([], tmp_path=tmp_path, model_path="/nonexistent") as cfg:
        with pytest.raises(FileNotFoundError, match=r"model\.path='/nonexistent'"):
            train(cfg)


def test_model_local_without_path_fails(tmp_path):
    with compose_train(["model=local"], tmp_path=tmp_path) as cfg:
        with pytest.raises(Exception, match=r"model\.path|Missing mandatory value"):
            train(cfg)


def test_too_long_generation_for_the_model_names_the_key(tmp_path, tiny_policy_dir):
    with compose_train(["rollout.max_new_tokens=300"], tmp_path=tmp_path, model_path=tiny_policy_dir) as cfg:
        with pytest.raises(ValueError, match=r"rollout\.max_new_tokens=300"):
            train(cfg)


@pytest.mark.parametrize("override", ["algorithm.foo=1", "rollout.nucleus=0.9", "trainer.max_epoch=3"])
def test_override_of_unknown_key_without_plus_fails_at_compose(override, tmp_path):
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].replace(".", r"\.")):
        with compose_train([override], tmp_path=tmp_path):
            pass


def _letters_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate("abcdefg")}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


class _Model:
    def __init__(self, positions: int) -> None:
        self.config = build_config("tiny", 10, max_positions=positions)


def _datamodule(tmp_path):
    with compose_train(["data.train.num_records=16", "data.heldout.num_records=4"], tmp_path=tmp_path) as cfg:
        datamodule = instantiate(cfg.data, updates_per_step=1, _convert_="all")
    datamodule.setup("fit")
    return datamodule


def test_task_model_mismatch_is_reported(tmp_path, built_tokenizer):
    datamodule = _datamodule(tmp_path)
    tokenizer = _letters_tokenizer()
    assert tokenizer.unk_token_id in tokenizer("Q:1+2", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="mismatch"):
        check_task_fits_model(tokenizer, _Model(512), datamodule, max_new_tokens=32)
    check_task_fits_model(built_tokenizer, _Model(512), datamodule, max_new_tokens=32)  # the right one passes
    with pytest.raises(ValueError, match=r"rollout\.max_new_tokens"):
        check_task_fits_model(built_tokenizer, _Model(64), datamodule, max_new_tokens=32)


def _whitespace_dropping_tokenizer() -> PreTrainedTokenizerFast:
    """Knows every task character but silently drops whitespace (no <unk> is ever produced),
    which is what the Qwen2 tokenizer that AutoTokenizer substitutes does to the built-in one."""
    from cipo.models.builtin import build_tokenizer

    tokenizer = build_tokenizer()
    backend = tokenizer.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("", behavior="isolated")]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def test_task_model_mismatch_catches_dropped_characters(tmp_path):
    tokenizer = _whitespace_dropping_tokenizer()
    ids = tokenizer("Q:1+2\nA:", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == "Q:1+2A:"  # the premise
    datamodule = _datamodule(tmp_path)
    at = datamodule.train_records[0].prompt.index("\n")  # the first character the tokenizer loses
    with pytest.raises(ValueError, match=rf"at character {at} .*mismatch"):
        check_task_fits_model(tokenizer, _Model(512), datamodule, max_new_tokens=32)


# ------------------------------------------------------------------ cipo-eval, experiments
@pytest.mark.parametrize("group, name", [g for g in GROUP_FILES if g[0] in ("model", "data", "verifier", "rollout")])
def test_eval_config_composes_with_every_shared_group(group, name, tmp_path, tiny_policy_dir):
    from cipo.cli.evaluate import check_options
    from conftest import compose_eval

    overrides = [f"{group}={name}"] + ([f"model.path={tiny_policy_dir}"] if (group, name) == ("model", "local") else [])
    with compose_eval(overrides, tmp_path=tmp_path) as cfg:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        assert cfg.task_name == "eval" and cfg.run_dir is None and cfg.ckpt is None
        assert check_options(cfg.eval) == [1, 2, 4, 8]
        sampling_settings(cfg.rollout)
        instantiate(cfg.verifier)
        assert isinstance(instantiate(cfg.data, updates_per_step=1, _convert_="all"), PromptDataModule)


@pytest.mark.parametrize("experiment", ["builtin", "builtin_missing_operand"])
def test_builtin_experiment_with_every_algorithm_differs_only_in_the_algorithm(tmp_path, experiment):
    resolved = {}
    for name in ALGORITHMS:
        with compose_train([f"experiment={experiment}", f"algorithm={name}"], tmp_path=tmp_path, fast=False) as cfg:
            container = OmegaConf.to_container(cfg, resolve=True)
            assert container["algorithm"]["name"] == name
            assert container["task_name"] == {"builtin": "builtin_compare"}.get(experiment, experiment)
            assert container["num_threads"] == 1
            read_train_settings(container)
            container.pop("algorithm")
            resolved[name] = container
    first = resolved["cipo"]
    assert first["trainer"]["max_epochs"] == 100 and first["verifier"]["_target_"] == first["data"]["verifier"]
    assert all(other == first for other in resolved.values())  # equal epochs, data, validation ...


def test_matched_grpo_generates_as_many_sequences_per_step_as_cipo(tmp_path):
    counts, resolved = {}, {}
    for setting, algorithm in (("builtin", "cipo"), ("builtin", "grpo"), ("builtin_matched", "grpo")):
        with compose_train([f"experiment={setting}", f"algorithm={algorithm}"], tmp_path=tmp_path, fast=False) as cfg:
            container = OmegaConf.to_container(cfg, resolve=True)
            read_train_settings(container)
            config = container["algorithm"]
            counts[setting, algorithm] = (
                sequences_per_step(container["data"]["batch_size"], config),
                config["group_size"],
            )
            resolved[setting, algorithm] = container
    assert counts["builtin", "cipo"] == (16 * 8 + 8 * 8, 8)
    assert counts["builtin_matched", "grpo"] == counts["builtin", "cipo"]  # equal sequences, equal group size
    assert counts["builtin", "grpo"] == (16 * 8, 8)  # GRPO as shipped: two thirds of CIPO's
    matched, shipped = resolved["builtin_matched", "grpo"], resolved["builtin", "grpo"]
    assert matched["data"].pop("batch_size") == 24 and shipped["data"].pop("batch_size") == 16
    assert matched == shipped  # the batch size is the one difference


def test_the_two_builtin_settings_differ_only_in_task_policy_and_name(tmp_path):
    resolved = {}
    for experiment in ("builtin", "builtin_missing_operand"):
        with compose_train([f"experiment={experiment}"], tmp_path=tmp_path, fast=False) as cfg:
            resolved[experiment] = OmegaConf.to_container(cfg, resolve=True)
    first, second = resolved["builtin"], resolved["builtin_missing_operand"]
    assert {key for key in first if first[key] != second[key]} == {"data", "model", "task_name"}
    assert {key for key in first["model"] if first["model"][key] != second["model"][key]} == {"path"}
    assert second["model"]["path"] == "builtin_missing_operand"
    assert second["data"]["train"]["_target_"] == "cipo.tasks.missing_operand.missing_operand_records"
    assert second["data"]["correction_template"] == "{problem}{attempt}\nCheck:"  # ends where an inline check starts
    assert second["data"]["transplant_as"] == "inline_check" and "transplant_as" not in first["data"]


def test_missing_operand_data_builds_disjoint_splits(tmp_path):
    overrides = ["data=missing_operand", "data.train.num_records=300", "data.heldout.num_records=40"]
    with compose_train(overrides, tmp_path=tmp_path) as cfg:
        datamodule = instantiate(cfg.data, updates_per_step=1, _convert_="all")
    datamodule.setup("fit")
    train, heldout = datamodule.train_records, datamodule.heldout_records
    assert len(train) == 300 and len(heldout) == 40
    assert not {r.meta["expression"] for r in train} & {r.meta["expression"] for r in heldout}
