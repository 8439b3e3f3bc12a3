"""Chaos test of resume: kill -9 a command at many moments, rerun it after each kill, and compare the run
directory it finally leaves with the one an uninterrupted run leaves (issue 14).

    python benchmarks/chaos.py fit                   # 2 rounds, a kill in every phase of each (21 kills)
    python benchmarks/chaos.py evaluate --kills 5    # spread over the phases it runs through
    python benchmarks/chaos.py continual --kills 5
    python benchmarks/chaos.py fit --quick           # the CI version (tests/test_chaos.py)

Where each kill landed is read from the process itself, not guessed from the clock: the command runs
under a wrapper that dumps its Python stack on SIGUSR2 (a Python handler calling faulthandler: Lightning
restores Python's view of every signal handler after training, which would undo a C-level one), the
harness polls that stack and sends SIGKILL to the process group when the phase it aims at is running.
Prints "N kills survived, 0 differences" (exit status 0) or every difference (exit status 1).
"""

from __future__ import annotations

import argparse
import linecache
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_compare import compare_run_dirs

REPO = Path(__file__).resolve().parents[1]
WRAPPER = """\
import faulthandler, signal, sys
trace = open(sys.argv[1], "a")
signal.signal(signal.SIGUSR2, lambda *_: faulthandler.dump_traceback(trace, all_threads=True))
trace.write("ready\\n"); trace.flush()
from seal_lightning.cli import main
code = main(sys.argv[2:])
signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # at shutdown Python restores the default action: to end
sys.exit(code)
"""
TINY_FIT = [
    "data.limit=4", "data.heldout_limit=2", "sampler.k=2", "sampler.max_new_tokens=24", "inner.epochs=2",
    "inner.seeds=1", "inner.batched=true", "inner.max_adapters=2", "outer.rounds=2", "outer.epochs=1",
]  # fmt: skip
COMMANDS = {
    "fit": ["fit", *TINY_FIT],
    "evaluate": ["evaluate", "data.heldout_limit=2", "inner.epochs=2", "sampler.max_new_tokens=24"],
    "continual": [
        "continual", "continual.passages=3", "continual.sequences=1", "continual.strategy=naive,replay",
        "inner.epochs=2", "sampler.max_new_tokens=24", f"continual.strategy_dir={REPO / 'conf' / 'strategies'}",
    ],
}  # fmt: skip
QUICK_FIT = [
    "fit", "data.limit=2", "heldout.enabled=false", "sampler.k=2", "sampler.max_new_tokens=16", "inner.epochs=1",
    "inner.seeds=1", "inner.batched=true", "inner.max_adapters=1", "outer.rounds=2", "outer.epochs=1",
]  # fmt: skip
# A round's phases in the order they run; fit aims one kill at each, in each round.
ROUND_PHASES = [
    "held-out evaluation", "policy load", "MLflow run start", "sampling", "inner loops", "baseline scoring",
    "M-step training", "adapter save", "merge", "policy save", "MLflow logging",
]  # fmt: skip
QUICK_TARGETS = [(0, "inner loops"), (0, "policy save"), (1, "sampling")]
CONTINUAL_PHASES = {
    "selfedits": "sampling", "learn": "continual step training", "accuracy_row": "continual accuracy row",
    "run_sequence": "continual between steps", "track": "MLflow logging", "save_strategy_figure": "continual figure",
}  # fmt: skip
# Seen both before and after a command's work, so no place in its order: evaluate and continual aim elsewhere.
OUTSIDE_WORK = ("start-up", "MLflow run start")
LONG_PHASES = {"held-out evaluation", "sampling", "inner loops", "M-step training"}
POLL_S = 0.02


@dataclass
class Kill:
    after_s: float
    phase: str


def classify(frames: list[tuple[str, int, str]]) -> str:
    """The phase a main-thread stack (innermost first, as (file, line, function)) is in."""
    ours = [(Path(f).name, Path(f).parent.name, line, fn) for f, line, fn in frames if "seal_lightning" in f]
    if not ours:
        return "start-up"
    if any(name == "heldout.py" for name, *_ in ours):
        return "held-out evaluation"
    callers = [linecache.getline(f, line) for f, line, _ in frames if "seal_lightning" in f]
    for index, (name, package, _line, function) in enumerate(ours):
        caller = next((text for text in callers[index + 1 :] if "self." in text), "")
        if name == "tracking.py":
            in_round = any(fn == "run_round" for *_, fn in ours)
            return "MLflow logging" if in_round and "tracker.run" not in caller else "MLflow run start"
        if name == "mstep.py":
            return "merge" if function == "merged" else "M-step training"
        if name == "store.py" and function == "write_dir":
            return "adapter save" if "adapter" in caller else "policy save" if "policy" in caller else "store write"
        if name == "outer.py" and function == "write":
            return "policy save"
        if package == "sampling" or function in ("sample_selfedits", "sampled"):
            return "sampling"
        if name == "inner.py" and function in ("baseline", "unadapted"):
            return "baseline scoring"
        if name in ("inner.py", "multilora.py"):
            return "inner loops"
        if name == "models.py":
            return "policy load"
        if name == "outer.py":
            return "between rounds"
        if package == "continual" and function in CONTINUAL_PHASES:
            return CONTINUAL_PHASES[function]
        if name == "evaluation.py":
            return f"evaluate {function}"
    return "start-up"


def main_thread_stack(dump: str) -> list[tuple[str, int, str]]:
    """The stack in a faulthandler dump that runs our code: only the main thread does."""
    for stack in re.split(r"\n(?=(?:Current thread|Thread) 0x)", dump):
        frames = [(f, int(line), fn) for f, line, fn in re.findall(r'File "([^"]+)", line (\d+) in (\S+)', stack)]
        if any("seal_lightning" in f for f, _, _ in frames):
            return frames
    return []


class Probe:
    """A command running under the stack-dumping wrapper, in its own process group."""

    def __init__(self, argv: list[str], log: Path, trace: Path) -> None:
        self.trace = trace
        trace.write_text("")
        self.started = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(trace), *argv],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def phase(self) -> str | None:
        """Where the command is now; None before the wrapper can take the signal or once it has exited."""
        if self.process.poll() is not None or "ready" not in self.trace.read_text()[:16]:
            return None
        size = self.trace.stat().st_size
        os.kill(self.process.pid, signal.SIGUSR2)
        # The handler writes the whole dump at once; it is complete when the file stops growing.
        last, deadline = size, time.monotonic() + 1.0
        while time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.005)
            now = self.trace.stat().st_size
            if now > size and now == last:
                return classify(main_thread_stack(self.trace.read_text()[size:]))
            last = now
        return None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def finished_rounds(run_dir: Path) -> int:
    return len(list(run_dir.glob("round_*/summary.json")))


def run_to_end(argv: list[str], run_dir: Path, log: Path) -> tuple[float, list[str]]:
    """Run once without a kill; the seconds it took and the phases seen at about 2 Hz."""
    probe = Probe([*argv, f"run_dir={run_dir}"], log, run_dir.parent / f"{run_dir.name}.trace")
    phases = []
    while probe.process.poll() is None:
        phases.append(probe.phase() or "")
        time.sleep(0.5)
    if probe.process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed (exit {probe.process.returncode}); see {log}")
    return probe.elapsed(), phases


def kill_when(probe: Probe, aimed: Callable[[str], bool], delay: Callable[[], float]) -> Kill | None:
    """Kill once the phase running is one `aimed` accepts; in a long phase after a random `delay`,
    checked again just before (a brief pass through it is not a kill in it)."""
    while probe.process.poll() is None:
        phase = probe.phase()
        if phase is not None and aimed(phase) and phase in LONG_PHASES:
            time.sleep(delay())
            phase = probe.phase()
        if phase is not None and aimed(phase):
            probe.kill()
            return Kill(round(probe.elapsed(), 1), phase)
        time.sleep(POLL_S)
    return None


def aimed_kill(probe: Probe, run_dir: Path, target: tuple[int, str], delay: Callable[[], float]) -> Kill | None:
    """Kill once the target (finished rounds, phase) runs. A phase too short to be seen is passed over,
    so the kill lands in the next phase of that round that is, or at once if the run has left the round."""
    rounds, wanted = target

    def aimed(phase: str) -> bool:
        done = finished_rounds(run_dir)
        return (done == rounds and reached(phase, wanted)) or done > rounds

    return kill_when(probe, aimed, delay)


def reached(phase: str, wanted: str) -> bool:
    """`phase` is `wanted` or comes after it in a round. The first two phases (held-out evaluation,
    policy load) are long enough to be aimed at exactly, and MLflow logging, which also happens early in a
    round, is only aimed at exactly; a model load at start-up counts as policy load."""
    if phase == wanted:
        return True
    later = ROUND_PHASES[2:-1]
    return phase in later and wanted in later and later.index(phase) > later.index(wanted)


def phase_kill(probe: Probe, wanted: str, order: list[str], delay: Callable[[], float]) -> Kill | None:
    """Kill once `wanted` runs, or a phase that first ran after it in the uninterrupted run (the rerun
    resumed past it)."""
    return kill_when(probe, lambda phase: phase in order and order.index(phase) >= order.index(wanted), delay)


def chaos(
    argv: list[str], run_dir: Path, log: Path, plan: list, order: list[str], delay_s: float, seed: int
) -> list[Kill]:
    """Rerun the command after each planned kill, then once more to the end. A kill in a long phase waits
    up to `delay_s` into it, at random."""
    rng = random.Random(seed)

    def delay() -> float:
        return rng.uniform(0.0, delay_s)

    kills: list[Kill] = []
    trace = run_dir.parent / f"{run_dir.name}.trace"
    for target in plan:
        if isinstance(target, tuple) and finished_rounds(run_dir) > target[0]:
            print(f"  target {target}: the run had already passed it", flush=True)
            continue
        probe = Probe([*argv, f"run_dir={run_dir}"], log, trace)
        if isinstance(target, tuple):
            kill = aimed_kill(probe, run_dir, target, delay)
        else:
            kill = phase_kill(probe, target, order, delay)
        if kill is None:
            if probe.process.returncode != 0:
                raise SystemExit(f"a rerun failed (exit {probe.process.returncode}); see {log}")
            break
        kills.append(kill)
        print(f"  kill {len(kills):>2} after {kill.after_s:>5.1f} s: {kill.phase}", flush=True)
    final = Probe([*argv, f"run_dir={run_dir}"], log, trace)
    if final.process.wait() != 0:
        raise SystemExit(f"the last rerun failed (exit {final.process.returncode}); see {log}")
    return kills


def kill_plan(command: str, kills: int, quick: bool, timeline: list[str], order: list[str]) -> list:
    """fit: one aimed kill per phase and round. The others: one kill in each phase the uninterrupted run
    spent a second or more in, the rest at evenly spaced moments of its timeline, all in run order."""
    if command == "fit":
        if quick:
            return QUICK_TARGETS
        return [(r, p) for r in (0, 1) for p in ROUND_PHASES] + [(2, "held-out evaluation")]
    work = [p for p in timeline if p in order]
    spread = [work[int((i + 0.5) * len(work) / (kills - len(order)))] for i in range(kills - len(order))]
    return sorted([*order, *spread][:kills], key=order.index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--kills", type=int, default=5, help="kills for evaluate and continual (fit aims its own)")
    parser.add_argument("--quick", action="store_true", help="fit's CI version: 1 item per round, 3 kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the two run directories")
    args = parser.parse_args()
    argv = QUICK_FIT if args.quick else COMMANDS[args.command]
    work = Path(tempfile.mkdtemp(prefix="seal-chaos-"))
    log = work / "commands.log"
    try:
        started = time.monotonic()
        print(f"chaos {args.command}: {' '.join(argv[1:])}", flush=True)
        reference_s, phases = run_to_end(argv, work / "reference", log)
        profile = Counter(p for p in phases if p)
        print(f"uninterrupted: {reference_s:.0f} s; phases seen at 2 Hz: "
              + ", ".join(f"{p} {n}" for p, n in profile.most_common()), flush=True)  # fmt: skip
        order = [p for p in dict.fromkeys(phases) if profile[p] >= 2 and p not in ("", *OUTSIDE_WORK)]
        plan = kill_plan(args.command, args.kills, args.quick, phases, order)
        # The CI version kills at the first sight of each phase: its phases are too short for a delay.
        kills = chaos(argv, work / "chaos", log, plan, order, 0.0 if args.quick else 1.5, args.seed)
        differences = compare_run_dirs(work / "reference", work / "chaos")
        by_phase = Counter(k.phase for k in kills)
        print("kills by phase: " + ", ".join(f"{p} {n}" for p, n in by_phase.most_common()))
        for difference in differences:
            print(f"DIFFERENCE: {difference}")
        print(f"{len(kills)} kills survived, {len(differences)} differences "
              f"({time.monotonic() - started:.0f} s in all)")  # fmt: skip
        return 1 if differences else 0
    finally:
        if args.keep:
            print(f"run directories kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
