"""Data-parallel scaling of a ReST-EM round on this machine, and what it projects for the paper's setting.

    bash scripts/run.sh python benchmarks/scaling.py --passages 8

The same one-round `fit` (conf/demo.yaml: k=3 self-edits per passage, batched inner loops, the
log-likelihood reward; no held-out evaluation) runs four times, each from a fresh run directory, one
after another in this benchmark:
- 1 rank, 1 thread: the per-rank baseline that speed-up and parallel efficiency are measured against;
- 1 rank, 2 threads: one process using the whole 2-core CPU, the default;
- 2 ranks, 1 thread each (`torchrun --nproc_per_node=2`, gloo): the same cores as data-parallel ranks;
- the same 2 ranks with the M-step under FSDP (`outer.strategy=fsdp`) instead of DDP.
Times are the main rank's phases (round_1/phases.json): a sharded phase ends when every rank has
finished its share, as the ranks gather there; the M-step's peak is the main rank's resident memory.
The runs must write the same self-edits and rewards (checked and printed), or the comparison would be of
different work; the FSDP run's merged policy is compared with the DDP run's.

The projection for the paper's round (50 passages x 5 self-edits x 3 seeds = 750 inner loops, 30-45 s
each on a 7B model on one H100, SEAL.md) assumes one inner loop at a time per GPU and the parallel
efficiency measured here for the inner loops; it counts the loops of the busiest rank (ranks share whole
loops), and nothing for sampling and the M-step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from seal_lightning.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAPER_LOOPS, PAPER_LOOP_S = 750, (30.0, 45.0)


def run_fit(run_dir: Path, ranks: int, threads: int, overrides: list[str]) -> float:
    """One fresh `fit` round; its wall time in seconds (`overrides` may set `outer.strategy`)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [*(launcher if ranks > 1 else [sys.executable]), "-m", "seal_lightning", "fit", *overrides]
    started = time.perf_counter()
    done = subprocess.run([*command, f"run_dir={run_dir}"], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"fit with {ranks} ranks x {threads} threads failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def phases(run_dir: Path) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads((run_dir / "round_1" / "phases.json").read_text())}


def policy_gap(first: Path, second: Path) -> float:
    """The largest difference between two runs' merged policies."""
    a, b = (load_file(run / "round_1" / "policy" / "model.safetensors") for run in (first, second))
    return max(float((a[key] - b[key]).abs().max()) for key in a)


def results(run_dir: Path) -> tuple[object, dict]:
    store = RunStore(run_dir)
    rewards = {(r["item"], r["sample"], r["seed"]): r["reward"] for r in store.read_jsonl("round_1/scores.jsonl")}
    return store.read_json("round_1/selfedits.json"), rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=8, help="built-in passages in the round")
    args = parser.parse_args()
    overrides = [
        "--config", "conf/demo.yaml", "outer.rounds=1", f"data.per_round={args.passages}", "heldout.enabled=false",
    ]  # fmt: skip
    settings = [(1, 1, "ddp"), (1, 2, "ddp"), (2, 1, "ddp"), (2, 1, "fsdp")]
    scratch = Path(tempfile.mkdtemp(prefix="seal-scaling-"))
    measured = {}
    try:
        for ranks, threads, strategy in settings:
            run_dir = scratch / f"{ranks}x{threads}{strategy}"
            wall = run_fit(run_dir, ranks, threads, [*overrides, f"outer.strategy={strategy}"])
            measured[(ranks, threads, strategy)] = (wall, phases(run_dir), results(run_dir))
        fsdp_gap = policy_gap(scratch / "2x1ddp", scratch / "2x1fsdp")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    selfedits, rewards = measured[(1, 1, "ddp")][2]
    loops = len(rewards)
    same = all(m[2][0] == selfedits for m in measured.values())
    print(f"one round of conf/demo.yaml on {args.passages} passages: {loops} inner loops; same self-edits in all "
          f"runs: {'yes' if same else 'NO'}; rewards against 1 x 1 in the last column")  # fmt: skip
    base_rate = loops / measured[(1, 1, "ddp")][1]["inner_loops"]["seconds"] * 60
    default_rate = loops / measured[(1, 2, "ddp")][1]["inner_loops"]["seconds"] * 60
    print(f"{'ranks x threads':>20} {'sampling s':>11} {'inner loops s':>14} {'loops/min':>10} {'vs 1x2':>7} "
          f"{'speed-up vs 1x1':>16} {'efficiency':>11} {'M-step s':>9} {'M-step GiB':>11} {'round s':>8} "
          f"{'reward diff':>12}")  # fmt: skip
    for (ranks, threads, strategy), (wall, phase, (_, ran)) in measured.items():
        rate = loops / phase["inner_loops"]["seconds"] * 60
        speedup = rate / base_rate
        gap = max(abs(ran[key] - rewards[key]) for key in rewards)
        label = f"{ranks} x {threads}" + (f" {strategy}" if ranks > 1 else "")
        print(f"{label:>20} {phase['sampling']['seconds']:>11.1f} {phase['inner_loops']['seconds']:>14.1f} "
              f"{rate:>10.2f} {rate / default_rate:>6.2f}x {speedup:>15.2f}x {speedup / (ranks * threads):>11.0%} "
              f"{phase['mstep']['seconds']:>9.1f} {phase['mstep']['peak_rss_gib']:>11.2f} {wall:>8.0f} "
              f"{gap:>12.1e}")  # fmt: skip
    print(f"merged policies, 2 x 1 fsdp against 2 x 1 ddp: largest difference {fsdp_gap:.1e}")
    efficiency = loops / measured[(2, 1, "ddp")][1]["inner_loops"]["seconds"] * 60 / base_rate / 2
    print(
        f"\nprojected inner loops of the paper's round ({PAPER_LOOPS} loops, {PAPER_LOOP_S[0]:.0f}-"
        f"{PAPER_LOOP_S[1]:.0f} s each on one H100), at the 2-rank efficiency measured here ({efficiency:.0%}):"
    )
    for gpus in (1, 2, 8, 64):
        busiest = math.ceil(PAPER_LOOPS / gpus)
        scale = 1 if gpus == 1 else efficiency
        low, high = (busiest * s / scale / 3600 for s in PAPER_LOOP_S)
        print(f"{gpus:>4} GPUs: {busiest:>4} loops on the busiest rank, {low:5.2f}-{high:5.2f} h")


if __name__ == "__main__":
    main()
