import json
import weakref

import pytest

from seal_lightning.cli import main
from seal_lightning.config import DataConfig
from seal_lightning.configure import load_config
from seal_lightning.evaluation import EvaluationSettings, Evaluator, Roles
from seal_lightning.knowledge.data import load_heldout_passages
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.runtime import open_runtime

pytestmark = pytest.mark.slow


def table_rows(out: str) -> dict[str, list[str]]:
    """The words of each printed line, by its first word, above the steps (row minus the row above)."""
    table = out.split("row - row above")[0]
    return {line.split()[0]: line.split() for line in table.splitlines() if line.split()}


def test_evaluate_builtin_heldout_split(tmp_path, capsys):
    argv = [
        "evaluate",
        f"run_dir={tmp_path}",
        "data.heldout_limit=2",
        "inner.epochs=3",
        "evaluate.conditions=[no_update,passage]",
        "evaluate.metrics=[answer_loglik]",  # teacher-forced: no answers generated
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert {"no_update", "passage"} <= set(rows)
    # Training on the passage teaches its (fictional) answers: the log-likelihood must rise.
    assert float(rows["passage"][1]) > float(rows["no_update"][1])
    (step,) = [
        words
        for words in map(str.split, out.splitlines())
        if words[:4] == ["passage", "-", "no_update", "answer_loglik"]
    ]
    assert step[4:6] == [rows["no_update"][1], rows["passage"][1]] and step[-1] == "2"
    results = list(tmp_path.glob("evaluate/*/results.jsonl"))
    assert len(results) == 1 and len(results[0].read_text().splitlines()) == 4
    heldout = [p.key for p in load_heldout_passages(DataConfig(heldout_limit=2))]
    assert [json.loads(line)["item"] for line in results[0].read_text().splitlines()[:2]] == heldout
    # Compared with itself, every paired difference is exactly zero.
    assert main(["evaluate", "--compare", str(tmp_path), str(results[0].parent)]) == 0
    compared = capsys.readouterr().out
    assert "no_update" in compared and "+0.000 [+0.000, +0.000]" in compared


class WatchedRoles(Roles):
    """Roles that note, at each model load, which roles' models loaded before are still in memory."""

    def __init__(self, runtime, paths) -> None:
        super().__init__(runtime, paths)
        self.loaded: dict[str, weakref.ref] = {}
        self.alive_at_load: dict[str, list[str]] = {}

    def model(self, role):
        if role not in self.models:
            self.alive_at_load[role] = sorted(name for name, model in self.loaded.items() if model() is not None)
            self.loaded[role] = weakref.ref(super().model(role))
        return super().model(role)


def test_each_model_is_freed_before_the_next_one_loads(tmp_path, tokenizer):
    config = load_config(
        None, [f"run_dir={tmp_path}", "data.heldout_limit=1", "inner.epochs=1", "sampler.max_new_tokens=8"]
    )
    domain = KnowledgeDomain(config, tokenizer)
    conditions = {name: domain.conditions()[name] for name in ("policy_selfedit_base", "no_update", "policy_no_update")}
    items = load_heldout_passages(config.data)
    with open_runtime(config, domain, tokenizer, "evaluate") as runtime:
        path = runtime.model_path()
        roles = WatchedRoles(runtime, {"model": path, "policy": path})
        settings = EvaluationSettings(metrics=["answer_loglik"], seed=0)
        records = Evaluator(runtime, settings, "evaluate/roles").run(conditions, items, roles)
    assert {r["condition"] for r in records} == set(conditions)
    # The policy writes, its row runs and it is freed; then the model loads for the other two rows.
    assert roles.alive_at_load == {"policy": [], "model": []}
    assert all(model() is None for model in roles.loaded.values())


def test_continued_pretraining_absorbs_several_passages_in_one_update(tmp_path, capsys):
    argv = [
        "evaluate",
        f"run_dir={tmp_path}",
        "data.heldout_limit=2",
        "inner.epochs=3",
        "evaluate.cpt_passages=2",
        "evaluate.metrics=[answer_loglik]",
        "evaluate.conditions=[no_update,passage]",
    ]
    assert main(argv) == 0
    assert "continued pretraining on 2 at once" in capsys.readouterr().out
    (results,) = tmp_path.glob("evaluate/*/results.jsonl")
    records = {
        (r["condition"], r["item"]): r["answer_loglik"] for r in map(json.loads, results.read_text().splitlines())
    }
    for key in {item for _, item in records}:
        assert records[("passage", key)] > records[("no_update", key)]


def test_evaluate_refuses_a_policy_trained_on_the_heldout_items(tmp_path, capsys):
    """A trained policy's score on items it was trained or selected on is no result: one line, status 2."""
    passage = load_heldout_passages(DataConfig())[1]
    run = tmp_path / "run"
    (run / "round_1").mkdir(parents=True)
    (run / "round_1" / "selfedits.json").write_text(json.dumps({passage.key: []}))
    argv = ["evaluate", f"run_dir={tmp_path / 'eval'}", f"evaluate.policy={run / 'round_1' / 'policy'}"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert f"held-out item {passage.title!r}" in error and "was trained or selected on" in error
    assert "\n" not in error and not (tmp_path / "eval" / "evaluate").exists()


def test_evaluate_shared_squad_with_external_selfedits(tmp_path, capsys, shared_file):
    data = shared_file("reference/qwen7b_base_selfedits_round1.json")
    argv = [
        "evaluate",
        f"run_dir={tmp_path}",
        f"data.heldout={data}",
        "data.heldout_limit=1",
        "inner.epochs=1",
        "evaluate.metrics=[answer_loglik,f1]",
        "evaluate.conditions=[no_update,passage_external]",
        f"evaluate.external_selfedits={data}",
    ]
    assert main(argv) == 0
    assert "passage_external" in capsys.readouterr().out


def test_evaluate_arc_refuses_a_policy_trained_on_an_evaluation_task(tmp_path, capsys):
    run = tmp_path / "arc"
    (run / "round_1").mkdir(parents=True)
    (run / "round_1" / "selfedits.json").write_text(json.dumps({"68b67ca3": []}))
    argv = ["evaluate", "domain=arc", f"run_dir={tmp_path / 'eval'}", f"evaluate.policy={run / 'round_1' / 'policy'}"]
    assert main(argv) == 2
    assert "held-out item '68b67ca3'" in capsys.readouterr().err


def test_evaluate_arc_rows_on_a_builtin_task(tmp_path, capsys):
    """ICL, the standard configuration, the model's own self-edit and a two-configuration oracle."""
    argv = [
        "evaluate",
        "domain=arc",
        f"run_dir={tmp_path}",
        "arc.eval_tasks=[66e6c45b]",
        "arc.max_examples=2",
        "reward.max_new_tokens=16",
        "evaluate.metrics=[token_accuracy,grid_match]",
        "arc.oracle=[{augmentations: [basic], learning_rate: 5e-4, epochs: 2, loss: outputs},"
        " {augmentations: [], learning_rate: 1e-3, epochs: 1, loss: all}]",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rows left out: seal" in out
    rows = table_rows(out)
    assert {"icl", "ttt_standard", "ttt_selfedit", "oracle"} <= set(rows)
    assert rows["66e6c45b"][1:] == [rows[c][1] for c in ("icl", "ttt_standard", "ttt_selfedit", "oracle")]
    # The oracle reports the best configuration per task, so it is never below the standard one it includes.
    assert float(rows["oracle"][1]) >= float(rows["ttt_standard"][1])
    (results,) = tmp_path.glob("evaluate/*/results.jsonl")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["condition"] for r in records] == ["icl", "ttt_standard", "ttt_selfedit", "oracle"]
    standard = '{"augmentations": ["basic"], "learning_rate": 0.0005, "epochs": 2, "loss": "outputs"}'
    assert records[1]["errors"] == [None] and records[1]["selfedits"] == [standard]
