import re
from pathlib import Path

import pytest

from seal_lightning.cli import main
from seal_lightning.configure import load_config, to_flat_dict
from seal_lightning.continual.config import STRATEGIES
from seal_lightning.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers_settings():
    config = load_config()
    assert (config.inner.lora.rank, config.inner.lora.alpha, config.inner.lr, config.inner.epochs) == (
        32,
        64,
        1e-3,
        10,
    )
    assert config.inner.lora.target_modules == ["q_proj", "v_proj"]
    assert (config.outer.lora.rank, config.outer.lora.alpha, config.outer.lr, config.outer.epochs) == (
        64,
        128,
        3e-4,
        2,
    )
    assert (config.sampler.k, config.sampler.temperature, config.sampler.top_p) == (5, 1.0, 0.95)


def test_length_limits_hold_the_papers_data():
    """Passages of ../shared/data reach 416 tokens and their lines 482; 99% of the reference's Qwen2.5-7B
    self-edits fit in 2048 new tokens. Cutting below that would silently drop what the paper trains on."""
    config = load_config()
    assert config.inner.max_length >= 2048 and config.sampler.max_new_tokens >= 2048
    assert config.outer.max_length >= 500 + config.sampler.max_new_tokens
    assert config.sampler.vllm.max_model_len >= 500 + config.sampler.max_new_tokens


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("outer:\n  rounds: 5\ninner:\n  epochs: 3\n")
    config = load_config(str(path), ["outer.rounds=2", "inner.lora.rank=16"])
    assert (config.outer.rounds, config.inner.epochs, config.inner.lora.rank) == (2, 3, 16)


def test_command_defaults_lose_to_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  builtin_split: validation\n")
    assert load_config(None, [], defaults=["data.builtin_split=test"]).data.builtin_split == "test"
    assert load_config(str(path), [], defaults=["data.builtin_split=test"]).data.builtin_split == "validation"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["outer.rounds=abc"], "outer.rounds"),
        (["foo.bar=1"], "Key 'foo'"),
        (["inner.lora.nope=1"], "nope"),
        (["reward.name=bleu"], "answer_loglik, token_accuracy, exact_match, f1, llm_judge"),
        (["continual.strategy=naive,magic"], "continual.strategy names 'magic'; valid strategies: naive, replay"),
        (["continual.strategy=naive,naive"], "names a strategy twice"),
        (["continual.strategy=replay_mix+olora,olora+replay_mix"], "names a strategy twice"),
        (["continual.strategy=naive,olora+magic"], "continual.strategy names 'magic'; valid strategies"),
        (["continual.strategy=naive+olora"], "combine distinct strategies other than naive and routed"),
        (["continual.strategy=olora+olora"], "combine distinct strategies other than naive and routed"),
        (["continual.strategy=replay_mix+routed"], "combine distinct strategies other than naive and routed"),
        (["continual.strategy=replay+replay_mix"], "replay and replay_mix do one job"),
        (["continual.strategy=gate_search+olora+gated"], "gate_search and gated do one job"),
        (["continual.passages=1"], "continual.passages must be at least 2"),
        (["outer.strategy=zero3"], "outer.strategy='zero3' is not one of: ddp, fsdp"),
        (["continual.ewc.mode=separate"], "decay_factor must be set for mode=online and null for mode=separate"),
        (["continual.gated.scales=[1.5]"], "continual.gated.scales must be numbers in (0, 1]"),
        (["continual.replay.policy=fifo"], "continual.replay.policy='fifo' is not one of: balanced, reservoir"),
        (["inner.epochs=0"], "inner.epochs must be positive"),
        (["sampler.vllm.cpu_kv_cache_gib=0"], "sampler.vllm.cpu_kv_cache_gib must be positive"),
        (["evaluate.conditions=[passage_external]"], "external_selfedits"),
        (["rounds"], "key=value"),
        (["domain=vision"], "domain='vision' is not one of: knowledge, arc"),
        (["domain=arc", "reward.name=f1"], "reward.name='f1' is not one of: answer_loglik, token_accuracy, grid_match"),
        (["evaluate.conditions=[oracle]"], "valid entries for domain=knowledge: no_update"),
        (["domain=arc", "evaluate.metrics=[exact_match]"], "valid entries for domain=arc"),
        (["domain=arc", "arc.min_lr=0.1", "arc.max_lr=0.01"], "arc.min_lr=0.1 is above arc.max_lr=0.01"),
        (["domain=arc", "arc.standard.loss=everything"], "arc.standard: ARC choice"),
        (["domain=arc", "arc.oracle=[{augmentations: [flip]}]"], "arc.oracle[0]: ARC choice"),
        (["data.rounds=[a.json]", "data.path=b.json"], "set data.rounds or data.path, not both"),
        (["data.rounds=[]"], "data.rounds is empty"),
        (["data.per_round=0"], "data.per_round must be positive"),
        (["data.reuse_items=true", "data.per_round=3"], "cannot be combined with rounds/per_round"),
        (["heldout.metrics=[bleu]"], "heldout.metrics contains 'bleu'"),
        (["heldout.metrics=[]"], "heldout.metrics is empty"),
        (["heldout.selfedits=0"], "heldout.selfedits must be positive"),
        (["sampler.vllm.tensor_parallel_size=0"], "sampler.vllm.tensor_parallel_size must be positive"),
        (
            ["domain=arc", "evaluate.cpt_passages=4"],
            "evaluate.cpt_passages (continued pretraining) needs a domain whose self-edits are documents",
        ),
        (
            ["domain=arc", "arc.tasks=[6150a2bd,66e6c45b]", "arc.eval_tasks=[66e6c45b]"],
            "arc.tasks and arc.eval_tasks share 66e6c45b",
        ),
    ],
)
def test_bad_config_is_one_clear_line(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_domain_defaults_sit_below_files_and_overrides(tmp_path):
    config = load_config(None, ["domain=arc"])
    assert (config.run_dir, config.reward.name, config.outer.solved_at) == ("runs/arc", "token_accuracy", 1.0)
    assert config.evaluate.conditions == ["icl", "ttt_standard", "ttt_selfedit", "seal", "oracle"]
    path = tmp_path / "c.yaml"
    path.write_text("domain: arc\nrun_dir: elsewhere\n")
    config = load_config(str(path), ["reward.name=grid_match"])
    assert (config.run_dir, config.reward.name, config.sampler.k) == ("elsewhere", "grid_match", 4)
    assert load_config().run_dir == "runs/knowledge"
    paper = load_config(str(REPO / "conf" / "arc_paper.yaml"))
    assert (paper.arc.tasks, paper.arc.max_examples, paper.sampler.k) == (None, 24, 15)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"outer: [unclosed\n", "is not valid YAML: did not find expected ',' or ']' (line 2, column 1)"),
        (b"outer:\n  rounds: 1\n\tepochs: 2\n", "is not valid YAML: found a tab character"),
        (b"- outer\n- inner\n", "must hold a mapping of sections (key: value), not a list"),
        (b"\xff\xfe\x00outer", "is not UTF-8 text"),
        (b"outer:\n  roundz: 2\n", "outer.roundz"),
    ],
)
def test_broken_yaml_file_is_one_line_naming_it(tmp_path, content, expected, capsys):
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    assert main(["fit", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("override", ["outer.rounds=[1", "inner.lora={rank"])
def test_broken_yaml_override_is_one_line_naming_it(override):
    with pytest.raises(ConfigError, match=re.escape(f"override {override!r} is not valid YAML")) as info:
        load_config(None, ["outer.epochs=2", override])
    assert "\n" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match=r"config file not found: nope\.yaml"):
        load_config("nope.yaml")


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "outer.rounds=abc"],
        ["fit", "unknown.key=1"],
        ["fit", "data.path=/no/such/file.json"],
        ["evaluate", "--config", "x.yaml"],
        ["evaluate", "data.heldout=/no/such/file.json"],
        ["evaluate", "--compare", "/no/such/a", "/no/such/b"],
        ["continual", "continual.strategy=ewc", "continual.strategy_dir=/no/such/dir"],
        ["compare", "--experiment", "nope", "run_dir={tmp}/no-such-run"],
    ],
)
def test_cli_errors_exit_2_with_one_line(argv, capsys, tmp_path):
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seal-lightning: error: ")
    assert err.count("\n") == 1


def test_shipped_knowledge_configs_give_every_round_its_own_passages():
    demo = load_config(str(REPO / "conf" / "demo.yaml"))
    assert (demo.data.per_round, demo.outer.rounds, demo.heldout.enabled) == (5, 2, True)
    paper = load_config(str(REPO / "conf" / "knowledge.yaml"))
    assert [Path(p).name for p in paper.data.rounds] == ["train_round1.json", "train_round2.json"]
    assert Path(paper.data.heldout).name == "dev100.json" and paper.data.path is None


def test_print_config(capsys):
    assert main(["fit", "--print-config", "inner.lora.rank=16"]) == 0
    assert "rank: 16" in capsys.readouterr().out


def test_flat_dict_names_nested_keys():
    flat = to_flat_dict(load_config())
    assert flat["inner.lora.rank"] == 32
    assert flat["tracking.tracking_uri"] is None


def test_strategy_files_sit_between_the_schema_and_the_overrides(tmp_path):
    (tmp_path / "ewc.yaml").write_text("ewc_lambda: 5.0\nmode: separate\ndecay_factor: null\n")
    (tmp_path / "replay.yaml").write_text("memory_size: 7\n")
    base = [f"continual.strategy_dir={tmp_path}", "continual.strategy=naive,ewc,replay"]
    config = load_config(None, base, strategy_files=True)
    assert (config.continual.ewc.ewc_lambda, config.continual.ewc.mode) == (5.0, "separate")
    assert config.continual.replay.memory_size == 7
    assert config.continual.strategies == ["naive", "ewc", "replay"]
    assert (
        load_config(None, [*base, "continual.replay.memory_size=9"], strategy_files=True).continual.replay.memory_size
        == 9
    )
    # Other commands never read strategy files.
    assert load_config(None, base).continual.replay.memory_size == 32


def test_a_combined_strategy_reads_every_parts_file(tmp_path):
    (tmp_path / "replay_mix.yaml").write_text("share: 0.25\n")
    (tmp_path / "olora.yaml").write_text("orthogonality: 3.0\n")
    base = [f"continual.strategy_dir={tmp_path}", "continual.strategy=naive,replay_mix + olora"]
    config = load_config(None, base, strategy_files=True).continual
    assert (config.replay_mix.share, config.olora.orthogonality) == (0.25, 3.0)
    assert config.strategies == ["naive", "replay_mix+olora"]


def test_missing_strategy_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"strategy file not found: .*lwf\.yaml"):
        load_config(None, [f"continual.strategy_dir={tmp_path}", "continual.strategy=lwf"], strategy_files=True)


def test_shipped_strategy_files_load():
    every = ",".join(STRATEGIES)
    config = load_config("conf/continual.yaml", [f"continual.strategy={every}"], strategy_files=True)
    assert config.continual.strategies == list(STRATEGIES)
    assert (config.continual.replay_mix.share, config.continual.gate_search.steps) == (0.5, 6)
    for name in ("continual.yaml", "continual_squad.yaml"):
        shipped = load_config(f"conf/{name}", [], strategy_files=True).continual
        assert (shipped.passages, shipped.sequences, shipped.strategies) == (
            8, 4, ["naive", "replay_mix", "olora", "gate_search", "replay_mix+olora", "routed"]
        )  # fmt: skip
