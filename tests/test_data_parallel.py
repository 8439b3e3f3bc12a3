"""`fit` and `continual` under `torchrun`, and `evaluate` on 2 tasks started as `srun` starts them: 2 real
processes on gloo give what 1 process gives (the M-step under DDP, and under FSDP in the run that is
killed), and a fit killed under 2 ranks resumes under 1. The fits leave out their held-out evaluation:
it is the `evaluate` machinery (items shared among ranks, self-edits sampled and learned on each), which
the srun test compares across ranks.
Every process runs 1 thread, so the runs do the same arithmetic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from seal_lightning.store import RunStore

pytestmark = pytest.mark.slow

TINY = [
    "data.limit=4",
    "heldout.enabled=false",
    "sampler.k=2",
    "sampler.max_new_tokens=24",
    "inner.epochs=1",  # the ranks share inner loops, not their epochs: one is enough to compare them
    "inner.seeds=1",
    "outer.rounds=2",
    "outer.epochs=1",
    "outer.anchor=10",  # every rank computes its KL on the same batch
]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def seal_command(processes: int, *arguments: str) -> list[str]:
    """`python -m seal_lightning ...`, under `torchrun` with `processes` ranks where there are several."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [*(torchrun if processes > 1 else [sys.executable]), "-m", "seal_lightning", *arguments]


def run_to_end(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=ONE_THREAD, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def fit_command(run_dir: Path, processes: int, *overrides: str) -> list[str]:
    return seal_command(processes, "fit", f"run_dir={run_dir}", *TINY, *overrides)


def fit(run_dir: Path, processes: int, *overrides: str) -> subprocess.CompletedProcess:
    return run_to_end(fit_command(run_dir, processes, *overrides))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("one") / "run"
    fit(run_dir, 1)
    return run_dir


def scores(run_dir: Path, round_index: int) -> dict[tuple, float]:
    records = RunStore(run_dir).read_jsonl(f"round_{round_index}/scores.jsonl")
    return {(r["item"], r["sample"], r["seed"]): r["reward"] for r in records}


def assert_same_results(first: Path, second: Path) -> None:
    for round_index in (1, 2):
        folder_a, folder_b = first / f"round_{round_index}", second / f"round_{round_index}"
        for name in ("selfedits.json", "kept.json"):
            assert json.loads((folder_a / name).read_text()) == json.loads((folder_b / name).read_text()), name
        rewards_a, rewards_b = scores(first, round_index), scores(second, round_index)
        assert rewards_a.keys() == rewards_b.keys()
        assert all(abs(rewards_a[key] - rewards_b[key]) <= 1e-5 for key in rewards_a)
        weights_a = load_file(folder_a / "policy" / "model.safetensors")
        weights_b = load_file(folder_b / "policy" / "model.safetensors")
        assert all((weights_a[k] - weights_b[k]).abs().max() <= 1e-5 for k in weights_a)


def test_two_processes_fit_what_one_process_fits(one_process, tmp_path):
    run_dir = tmp_path / "run"
    done = fit(run_dir, 2)
    assert_same_results(one_process, run_dir)
    # The ranks shared the work: each appended its own inner loops, and both files hold some.
    assert (run_dir / "round_1" / "scores.jsonl").is_file() and (run_dir / "round_1" / "scores.rank1.jsonl").is_file()
    # The main rank printed for both; only it talked to MLflow (one fit run and its two rounds).
    assert done.stdout.count("round 2/2:") == 1
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "seal-lightning"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(
        r.info.run_name
        for r in MlflowClient(f"sqlite:///{one_process / 'mlflow.db'}").search_runs([experiment.experiment_id])
    )
    rounds = {r.info.run_name: r for r in runs}
    assert rounds["round_1"].data.metrics["rank0_loops"] + rounds["round_1"].data.metrics["rank1_loops"] == 4


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc), found before any is killed."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_a_run_killed_under_two_fsdp_ranks_resumes_under_one(one_process, tmp_path):
    """Two ranks with the M-step under FSDP (`outer.strategy=fsdp`: decoder layers sharded, the adapter
    gathered onto the reloaded policy) finish round 1 and are killed (SIGKILL, every process) after round 2's
    first scores; one process resumes. Round 1's FSDP policy and everything after it equal the one-process
    run's, and no finished loop is done twice."""
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen(
        fit_command(run_dir, 2, "outer.strategy=fsdp"),
        env=ONE_THREAD,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first_scores = run_dir / "round_2" / "scores.jsonl"
    deadline = time.monotonic() + 900
    while not (first_scores.is_file() and first_scores.read_text()) and launcher.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for pid in [launcher.pid, *descendants(launcher.pid)]:  # torchrun starts its workers in sessions of their own
        os.kill(pid, signal.SIGKILL)
    launcher.wait()
    assert (run_dir / "round_1" / "summary.json").exists()
    assert not (run_dir / "round_2" / "summary.json").exists()  # killed inside round 2
    finished_before = scores(run_dir, 2)
    assert finished_before
    fit(run_dir, 1)  # outer.strategy may change on resume: one process ignores it
    assert_same_results(one_process, run_dir)
    # The resumed process redid none of the loops the ranks had finished, and wrote no duplicates.
    records = RunStore(run_dir).read_jsonl("round_2/scores.jsonl")
    assert len(records) == len({(r["item"], r["sample"], r["seed"]) for r in records}) == 4
    assert all(scores(run_dir, 2)[key] == reward for key, reward in finished_before.items())


CONTINUAL = [
    "--config",
    "conf/continual.yaml",
    "continual.passages=2",
    "continual.sequences=1",
    "continual.strategy=naive,ewc",
    "inner.epochs=1",
    "sampler.max_new_tokens=32",
]


def continual(run_dir: Path, processes: int) -> None:
    run_to_end(seal_command(processes, "continual", *CONTINUAL, f"run_dir={run_dir}"))


@pytest.mark.xdist_group("data_parallel_alone")  # shares no fixture with this file's fits: the other worker runs it
def test_two_processes_run_the_continual_stream_as_one_does(tmp_path):
    """The ranks share the (strategy, order) sequences (here two: two strategies, one order); each writes the
    ones it ran; the matrices are the same."""
    continual(tmp_path / "one", 1)
    continual(tmp_path / "two", 2)
    for strategy in ("naive", "ewc"):
        name = f"continual/{strategy}/sequence_0.json"
        one, two = (json.loads((tmp_path / run / name).read_text()) for run in ("one", "two"))
        assert one["order"] == two["order"]
        np.testing.assert_allclose(one["matrix"], two["matrix"], rtol=0, atol=1e-5)
        one, two = (
            json.loads((tmp_path / run / f"continual/{strategy}/matrix.json").read_text()) for run in ("one", "two")
        )
        np.testing.assert_allclose(one["per_sequence"], two["per_sequence"], rtol=0, atol=1e-5)


EVALUATE = [
    "evaluate",
    "data.heldout_limit=2",
    "evaluate.conditions=[no_update,passage_selfedit]",  # each rank samples and learns its items' self-edits
    "evaluate.metrics=[answer_loglik]",
    "sampler.max_new_tokens=32",
    "inner.epochs=1",
]


def srun_environment(rank: int, ranks: int, port: int) -> dict[str, str]:
    """The variables `srun` gives each task of a one-node job (Lightning's SLURMEnvironment reads them)."""
    slurm = {"NTASKS": ranks, "PROCID": rank, "LOCALID": rank, "NODEID": 0, "NNODES": 1, "NTASKS_PER_NODE": ranks}
    return {
        **ONE_THREAD,
        **{f"SLURM_{name}": str(value) for name, value in slurm.items()},
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "seal-lightning",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


@pytest.mark.xdist_group("data_parallel_alone")
def test_evaluate_on_two_srun_tasks_gives_the_one_process_table(tmp_path, free_port):
    """`evaluate` shares its items among ranks; here the 2 processes are started the way `srun` starts a
    job's tasks (one process per task, SLURM_* variables, no torchrun), so SLURM's detection is the path."""
    run_to_end(seal_command(1, *EVALUATE, f"run_dir={tmp_path / 'one'}"))
    port = free_port()
    logs = [(tmp_path / f"task{rank}.out", tmp_path / f"task{rank}.err") for rank in range(2)]
    tasks = []
    for rank, (out, err) in enumerate(logs):  # files, not pipes: a task never waits on a full pipe
        with out.open("w") as stdout, err.open("w") as stderr:
            task = seal_command(1, *EVALUATE, f"run_dir={tmp_path / 'two'}")  # srun, not torchrun, starts it
            tasks.append(subprocess.Popen(task, env=srun_environment(rank, 2, port), stdout=stdout, stderr=stderr))
    codes = [task.wait(timeout=900) for task in tasks]
    outputs = [(out.read_text(), err.read_text()) for out, err in logs]
    assert codes == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    (folder_one,) = (tmp_path / "one" / "evaluate").iterdir()
    (folder_two,) = (tmp_path / "two" / "evaluate").iterdir()
    for name in ("table.txt", "per_item.txt"):
        assert (folder_one / name).read_text() == (folder_two / name).read_text(), name
    # Each task scored its own item and wrote its own file; only the main one printed the table.
    assert (folder_two / "results.jsonl").is_file() and (folder_two / "results.rank1.jsonl").is_file()
    assert "no_update" in outputs[0][0] and "no_update" not in outputs[1][0]
