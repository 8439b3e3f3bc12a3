"""End to end: a tiny `fit` on the real built-in model, tracked in a real MLflow sqlite store."""

import contextlib
import io
import json
import signal
import subprocess
import sys

import mlflow.artifacts
import pytest
import torch
from mlflow.tracking import MlflowClient

from seal_lightning.cli import main
from seal_lightning.config import DataConfig, ModelConfig
from seal_lightning.knowledge.data import load_heldout_passages
from seal_lightning.models import fingerprint, load_model

pytestmark = pytest.mark.slow

TINY = [
    "data.limit=2",
    "data.heldout_limit=2",
    "sampler.k=2",
    "sampler.max_new_tokens=24",
    "inner.epochs=2",
    "inner.seeds=1",
    "outer.rounds=1",
    "outer.epochs=1",
]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fit") / "run"
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        assert main(["fit", f"run_dir={run_dir}", *TINY]) == 0
    return run_dir, capture.getvalue()


@pytest.fixture(scope="module")
def run_dir(fitted):
    return fitted[0]


def test_fit_writes_every_step(run_dir):
    round_dir = run_dir / "round_1"
    assert len(json.loads((round_dir / "selfedits.json").read_text())) == 2
    assert len((round_dir / "scores.jsonl").read_text().splitlines()) == 4
    assert len(json.loads((round_dir / "kept.json").read_text())) == 2
    assert (round_dir / "adapter" / "adapter_config.json").is_file()
    assert json.loads((round_dir / "summary.json").read_text())["selfedits"] == 4


def test_fit_records_each_phase_s_time_and_memory(run_dir):
    phases = json.loads((run_dir / "round_1" / "phases.json").read_text())
    names = [phase["name"] for phase in phases]
    rounds = ["load", "sampling", "inner_loops", "mstep", "save_adapter", "merge", "save_policy", "logging"]
    assert names == [*rounds, "after_round:HeldOutEvaluation"]
    assert all(phase["peak_rss_gib"] >= phase["start_rss_gib"] > 0 for phase in phases)


def test_truncated_selfedits_are_counted_and_kept_with_their_flag(fitted):
    """24 new tokens cut most self-edits: the round line says how many, and the M-step learns them without EOS."""
    run_dir, out = fitted
    selfedits = json.loads((run_dir / "round_1" / "selfedits.json").read_text())
    cut = sum(c["truncated"] for completions in selfedits.values() for c in completions)
    assert cut > 0
    assert f"{cut} cut at sampler.max_new_tokens" in out
    assert json.loads((run_dir / "round_1" / "summary.json").read_text())["truncated"] == cut
    kept = json.loads((run_dir / "round_1" / "kept.json").read_text())
    assert all("truncated" in k for k in kept)


def test_fit_scores_the_starting_model_and_each_round_on_heldout_passages(fitted):
    """Held-out evaluation is part of fit: round 0 and round 1 on passages no round trained on, with the
    change from round 0 paired by passage, printed and logged to MLflow per round."""
    run_dir, out = fitted
    assert "held-out answer_loglik: mean over 2 items no round trained or selected on" in out
    assert "SEAL on held-out items after round 1 (passage_selfedit, answer_loglik)" in out
    table = (run_dir / "heldout" / "table.txt").read_text()
    assert "policy_selfedit_base" in table and "round 1" in table
    heldout = {p.key for p in load_heldout_passages(DataConfig(heldout_limit=2))}
    trained = set(json.loads((run_dir / "round_1" / "selfedits.json").read_text()))
    assert heldout and not heldout & trained
    (round_0,) = run_dir.glob("heldout/round_0-*/results.jsonl")
    (round_1,) = run_dir.glob("heldout/round_1-*/results.jsonl")
    conditions = [{json.loads(line)["condition"] for line in f.read_text().splitlines()} for f in (round_0, round_1)]
    assert conditions == [
        {"no_update", "passage", "passage_selfedit"},
        {"policy_no_update", "policy_selfedit", "policy_selfedit_base"},
    ]
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    (parent,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("seal-lightning").experiment_id])
        if r.info.run_name == "fit"
    ]
    history = client.get_metric_history(parent.info.run_id, "heldout.passage_selfedit.answer_loglik")
    assert sorted(m.step for m in history) == [0, 1]
    change = client.get_metric_history(parent.info.run_id, "heldout.passage_selfedit.answer_loglik.change_low")
    assert [m.step for m in change] == [1]


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
        "round_1/policy.json",
    } <= artifacts
    # The merged policy is recorded by reference: the run directory holds its only copy.
    assert "round_1/policy" not in artifacts
    reference = mlflow.artifacts.load_dict(f"{child.info.artifact_uri}/round_1/policy.json")
    policy = run_dir / "round_1" / "policy"
    assert reference["path"] == str(policy.resolve()) and reference["fingerprint"] == fingerprint(str(policy))
    assert reference["bytes"] == sum(f.stat().st_size for f in policy.iterdir())


def test_merged_policy_loads_and_differs_from_base(run_dir, policy):
    merged = load_model(ModelConfig(), str(run_dir / "round_1" / "policy"))
    base, new = policy.state_dict(), merged.state_dict()
    assert base.keys() == new.keys()
    assert not all(torch.equal(base[k], new[k]) for k in base)
    assert not any("lora" in name for name in new)


def test_rerun_repeats_no_work(run_dir, capsys):
    scores = (run_dir / "round_1" / "scores.jsonl").read_text()
    heldout = {path: path.read_text() for path in run_dir.glob("heldout/*/results.jsonl")}
    policy_mtime = (run_dir / "round_1" / "policy" / "model.safetensors").stat().st_mtime_ns
    assert main(["fit", f"run_dir={run_dir}", *TINY]) == 0
    assert "round 1: already finished, skipped" in capsys.readouterr().out
    assert (run_dir / "round_1" / "scores.jsonl").read_text() == scores
    assert {path: path.read_text() for path in run_dir.glob("heldout/*/results.jsonl")} == heldout
    assert (run_dir / "round_1" / "policy" / "model.safetensors").stat().st_mtime_ns == policy_mtime


def test_more_rounds_never_change_a_finished_rounds_passages(run_dir, capsys):
    """Two passages split over two rounds would give finished round 1 one passage, and round 2 a passage round 1
    trained on: refused in one line before any work, the finished round kept."""
    scores = (run_dir / "round_1" / "scores.jsonl").read_text()
    assert main(["fit", f"run_dir={run_dir}", *TINY, "outer.rounds=2"]) == 2
    captured = capsys.readouterr()
    assert "held-out" not in captured.out and "round_1" not in captured.err  # no work done
    assert captured.err.startswith("seal-lightning: error: ") and captured.err.count("\n") == 1
    assert "started round 1 on other items than the data gives it now" in captured.err
    assert (run_dir / "round_1" / "scores.jsonl").read_text() == scores


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
    """The fast path end to end: one vLLM engine across two rounds (reloaded with round 1's policy), and
    the held-out evaluation through it (on one item: `fitted` checks the held-out table itself)."""
    pytest.importorskip("vllm", reason="vLLM is not installed")
    run_dir = tmp_path / "fast"
    fast = ["sampler=vllm", "inner.batched=true"]
    argv = ["fit", f"run_dir={run_dir}", *TINY, "inner.epochs=1", "data.heldout_limit=1", "outer.rounds=2", *fast]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "round 2/2" in out
    for round_index in (1, 2):  # one passage per round, two self-edits: one stack of two adapters
        assert len((run_dir / f"round_{round_index}" / "scores.jsonl").read_text().splitlines()) == 2
    first, second = (json.loads((run_dir / f"round_{r}" / "selfedits.json").read_text()) for r in (1, 2))
    # Each round on new passages: round 2 is never scored on what round 1's M-step trained on.
    assert first and second and not first.keys() & second.keys()


def test_fit_arc_round_on_builtin_tasks(tmp_path, capsys):
    """The second domain through the same outer loop: one task, two tool-call self-edits, resumable."""
    run_dir = tmp_path / "arc"
    argv = [
        "fit",
        "domain=arc",
        f"run_dir={run_dir}",
        "arc.tasks=[6150a2bd]",
        "data.heldout_limit=1",
        "arc.max_examples=2",
        "arc.standard.epochs=1",
        "heldout.metrics=[token_accuracy]",  # teacher-forced: no grids generated, still the headline metric
        "sampler.k=2",
        "outer.rounds=1",
        "outer.epochs=1",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "round 1/1: 2 self-edits on 1 items" in out
    scored = [json.loads(line) for line in (run_dir / "round_1" / "selfedits_scored.jsonl").read_text().splitlines()]
    assert [s["item"] for s in scored] == ["6150a2bd", "6150a2bd"]
    assert all(0.0 <= s["reward"] <= 1.0 for s in scored)
    assert all(s["error"] is None or s["reward"] == s["baseline"] for s in scored)
    assert (run_dir / "round_1" / "policy" / "model.safetensors").is_file()
    # Held out: the first of the reference's evaluation tasks, never a training task.
    assert "SEAL on held-out items after round 1 (seal, token_accuracy)" in out
    assert main(argv) == 0
    assert "round 1: already finished, skipped" in capsys.readouterr().out


def test_sigterm_stops_fit_with_one_line_and_status_143(tmp_path):
    """`kill` or a scheduler's scancel mid-fit: the command stops at once, says how to resume, and exits
    128 + SIGTERM, wherever the signal lands (inside Lightning's training it had been swallowed)."""
    command = [sys.executable, "-m", "seal_lightning", "fit", f"run_dir={tmp_path / 'run'}", *TINY]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    while b"inner loops" not in seen:  # the progress bar: training (under Lightning) has started
        chunk = process.stderr.read1(4096)
        assert chunk, f"fit ended before its inner loops: {seen.decode()}"
        seen += chunk
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    err = (seen + rest).decode()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    # the last thing written; a progress bar's line may end just before it (tqdm redraws with a bare \r)
    assert err.rstrip().endswith("seal-lightning: stopped by SIGTERM; run the same command again to resume"), err
