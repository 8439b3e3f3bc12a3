"""End to end: a tiny `fit` on the real built-in model, tracked in a real MLflow sqlite store."""

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from seal_lightning.cli import main
from seal_lightning.config import ModelConfig
from seal_lightning.models import load_model

pytestmark = pytest.mark.slow

TINY = [
    "data.limit=2",
    "sampler.k=2",
    "sampler.max_new_tokens=24",
    "inner.epochs=2",
    "inner.seeds=1",
    "outer.rounds=1",
    "outer.epochs=1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fit") / "run"
    assert main(["fit", f"run_dir={run_dir}", *TINY]) == 0
    return run_dir


def test_fit_writes_every_step(run_dir):
    round_dir = run_dir / "round_1"
    assert len(json.loads((round_dir / "selfedits.json").read_text())) == 2
    assert len((round_dir / "scores.jsonl").read_text().splitlines()) == 4
    assert len(json.loads((round_dir / "kept.json").read_text())) == 2
    assert (round_dir / "adapter" / "adapter_config.json").is_file()
    assert json.loads((round_dir / "summary.json").read_text())["selfedits"] == 4


def test_mlflow_holds_nested_runs_with_metrics_and_artifacts(run_dir):
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seal-lightning")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"fit", "round_1"}
    parent, child = runs["fit"], runs["round_1"]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params["inner.lora.rank"] == "32"
    for metric in (
        "baseline",
        "mean_reward",
        "max_reward",
        "mean_gain",
        "kept_fraction",
        "mstep_loss",
        "wall_time_s",
    ):
        assert metric in child.data.metrics, metric
    assert any(key.startswith("mstep") for key in child.data.metrics)  # Lightning's MLFlowLogger curve
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "round_1")}
    assert {
        "round_1/selfedits_scored.jsonl",
        "round_1/kept.json",
        "round_1/adapter",
        "round_1/policy",
    } <= artifacts


def test_merged_policy_loads_and_differs_from_base(run_dir, policy):
    merged = load_model(ModelConfig(), str(run_dir / "round_1" / "policy"))
    base, new = policy.state_dict(), merged.state_dict()
    assert base.keys() == new.keys()
    assert not all(torch.equal(base[k], new[k]) for k in base)
    assert not any("lora" in name for name in new)


def test_rerun_repeats_no_work(run_dir, capsys):
    scores = (run_dir / "round_1" / "scores.jsonl").read_text()
    policy_mtime = (run_dir / "round_1" / "policy" / "model.safetensors").stat().st_mtime_ns
    assert main(["fit", f"run_dir={run_dir}", *TINY]) == 0
    assert "round 1: already finished, skipped" in capsys.readouterr().out
    assert (run_dir / "round_1" / "scores.jsonl").read_text() == scores
    assert (run_dir / "round_1" / "policy" / "model.safetensors").stat().st_mtime_ns == policy_mtime


def test_interrupted_round_resumes_from_the_last_finished_score(run_dir, tmp_path, capsys):
    """Cut the run back to 'crashed after the first inner loop': only the missing three are redone."""
    import shutil

    crashed = tmp_path / "crashed"
    shutil.copytree(run_dir, crashed, ignore=shutil.ignore_patterns("policy", "adapter", "summary.json", "kept.json"))
    scores = crashed / "round_1" / "scores.jsonl"
    first = scores.read_text().splitlines()[0]
    scores.write_text(first + "\n" + '{"passage": "trunc')  # the second loop died mid-write
    assert main(["fit", f"run_dir={crashed}", *TINY]) == 0
    lines = scores.read_text().splitlines()
    assert lines[0] == first
    assert len([line for line in lines if line.endswith("}")]) == 4
    assert "1/4" in capsys.readouterr().err  # the progress bar starts after the finished loop


def test_other_settings_on_the_same_run_dir_are_refused(run_dir, capsys):
    assert main(["fit", f"run_dir={run_dir}", *TINY, "inner.lr=0.5"]) == 2
    assert "inner.lr" in capsys.readouterr().err


def test_fit_with_vllm_sampling_and_batched_inner_loop(tmp_path, capsys):
    """The fast path end to end: one vLLM engine across two rounds (reloaded with round 1's policy)."""
    pytest.importorskip("vllm", reason="vLLM is not installed")
    run_dir = tmp_path / "fast"
    argv = ["fit", f"run_dir={run_dir}", *TINY, "outer.rounds=2", "sampler=vllm", "inner.batched=true"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "round 2/2" in out
    for round_index in (1, 2):
        assert len((run_dir / f"round_{round_index}" / "scores.jsonl").read_text().splitlines()) == 4
    first, second = (json.loads((run_dir / f"round_{r}" / "selfedits.json").read_text()) for r in (1, 2))
    assert first.keys() == second.keys() and first != second


def test_fit_arc_round_on_builtin_tasks(tmp_path, capsys):
    """The second domain through the same outer loop: one task, two tool-call self-edits, resumable."""
    run_dir = tmp_path / "arc"
    argv = [
        "fit",
        "domain=arc",
        f"run_dir={run_dir}",
        "arc.tasks=[6150a2bd]",
        "arc.max_examples=4",
        "sampler.k=2",
        "outer.rounds=1",
        "outer.epochs=1",
    ]
    assert main(argv) == 0
    assert "round 1/1: 2 self-edits on 1 items" in capsys.readouterr().out
    scored = [json.loads(line) for line in (run_dir / "round_1" / "selfedits_scored.jsonl").read_text().splitlines()]
    assert [s["item"] for s in scored] == ["6150a2bd", "6150a2bd"]
    assert all(0.0 <= s["reward"] <= 1.0 for s in scored)
    assert all(s["error"] is None or s["reward"] == s["baseline"] for s in scored)
    assert (run_dir / "round_1" / "policy" / "model.safetensors").is_file()
    assert main(argv) == 0
    assert "round 1: already finished, skipped" in capsys.readouterr().out
