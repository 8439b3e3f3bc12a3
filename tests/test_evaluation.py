import json
import math

import pytest

from seal_lightning.cli import main
from seal_lightning.config import load_config
from seal_lightning.evaluation import format_per_item, format_table, mean_stderr, summarize

pytestmark = pytest.mark.slow


def test_mean_and_standard_error():
    mean, stderr = mean_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert stderr == pytest.approx(math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3 / 4))
    assert math.isnan(mean_stderr([1.0])[1])


def test_summarize_and_format():
    records = [
        {"condition": "no_update", "item": "a", "title": "A", "f1": 0.0},
        {"condition": "no_update", "item": "b", "title": "B", "f1": 1.0},
        {"condition": "passage", "item": "a", "title": "A", "f1": 1.0},
    ]
    table = summarize(records, ["f1"])
    assert table["no_update"]["f1"] == (0.5, 0.5)
    text = format_table(table, ["f1"])
    assert "0.500 ± 0.500" in text and text.splitlines()[0].split() == ["condition", "f1"]
    per_item = format_per_item(records, ["f1"]).splitlines()
    assert per_item[0].split() == ["f1", "per", "item", "no_update", "passage"]
    assert per_item[2].split() == ["B", "1.000"]


def test_evaluate_builtin_test_split(tmp_path, capsys):
    argv = [
        "evaluate",
        f"run_dir={tmp_path}",
        "data.limit=2",
        "inner.epochs=3",
        "evaluate.conditions=[no_update,passage]",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("no_update", "passage"))}
    assert set(rows) == {"no_update", "passage"}
    # Training on the passage teaches its (fictional) answers: the log-likelihood must rise.
    loglik = {name: float(row.split()[1]) for name, row in rows.items()}
    assert loglik["passage"] > loglik["no_update"]
    results = list(tmp_path.glob("evaluate/*/results.jsonl"))
    assert len(results) == 1 and len(results[0].read_text().splitlines()) == 4


def test_evaluate_shared_squad_with_external_selfedits(tmp_path, capsys, shared_file):
    data = shared_file("reference/qwen7b_base_selfedits_round1.json")
    argv = [
        "evaluate",
        f"run_dir={tmp_path}",
        f"data.path={data}",
        "data.limit=1",
        "inner.epochs=1",
        "evaluate.metrics=[answer_loglik,f1]",
        "evaluate.conditions=[no_update,passage_external]",
        f"evaluate.external_selfedits={data}",
    ]
    assert main(argv) == 0
    assert "passage_external" in capsys.readouterr().out


def test_evaluate_arc_rows_on_a_builtin_task(tmp_path, capsys):
    """ICL, the standard configuration, the model's own self-edit and a two-configuration oracle."""
    argv = [
        "evaluate",
        "domain=arc",
        f"run_dir={tmp_path}",
        "arc.tasks=[6150a2bd]",
        "arc.max_examples=4",
        "reward.max_new_tokens=16",
        "evaluate.metrics=[token_accuracy,grid_match]",
        "arc.oracle=[" + ",".join(f"'{c}'" for c in ARC_ORACLE) + "]",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rows left out: seal" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert {"icl", "ttt_standard", "ttt_selfedit", "oracle"} <= set(rows)
    assert rows["6150a2bd"][1:] == [rows[c][1] for c in ("icl", "ttt_standard", "ttt_selfedit", "oracle")]
    # The oracle reports the best configuration per task, so it is never below the standard one it includes.
    assert float(rows["oracle"][1]) >= float(rows["ttt_standard"][1])
    (results,) = tmp_path.glob("evaluate/*/results.jsonl")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["condition"] for r in records] == ["icl", "ttt_standard", "ttt_selfedit", "oracle"]
    assert records[1]["error"] is None and records[1]["selfedit"] == load_config(None, ["domain=arc"]).arc.standard


ARC_ORACLE = [
    '{"augmentations": ["basic"], "learning_rate": 5e-4, "epochs": 2, "loss": "outputs"}',
    '{"augmentations": [], "learning_rate": 1e-3, "epochs": 1, "loss": "all"}',
]
