import gc
import json
import os
import subprocess
import sys
import sysconfig
import weakref
from pathlib import Path

import pytest
import torch

from seal_lightning.profiling import PhaseProfile, libraries_frozen, peak_gib, reset_peak, resident_gib

# The cmeel-mimalloc wheel's library, which scripts/run.sh preloads.
MIMALLOC = Path(sysconfig.get_paths()["purelib"]) / "cmeel.prefix" / "lib" / "libmimalloc.so"

PHASES = """
import gc, json, torch
from dataclasses import asdict
from seal_lightning.profiling import PhaseProfile, allocator, reset_peak
gc.disable()  # as if Python's own collector had not run yet when the phase ends
profile = PhaseProfile()
with profile.phase("big"):
    block = torch.ones(256 * 1024**2 // 4)  # 256 MiB, touched
    pieces = [torch.ones(64 * 1024 // 4 * (1 + i % 7)) for i in range(2000)]  # 0.5 GiB of heap-sized pieces
    del block, pieces[::2]
    del pieces
with profile.phase("cycle"):
    holder = {"tensor": torch.ones(256 * 1024**2 // 4)}
    holder["self"] = holder  # a reference cycle: only the cycle collector frees it
    del holder
with profile.phase("small"):
    torch.ones(1024)
print(json.dumps({"allocator": allocator(), "reset": reset_peak(), "records": [asdict(r) for r in profile.records]}))
"""


@pytest.mark.parametrize("malloc", ["system", "mimalloc"])
def test_a_phase_records_its_own_peak_not_an_earlier_one(malloc):
    """In a process of its own: how much a long test session's heap already holds must not matter, and
    what a phase freed goes back to the system under either allocator."""
    preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p and "libmimalloc" not in p]
    if malloc == "mimalloc":
        if sys.platform != "linux" or not MIMALLOC.exists():
            pytest.skip("mimalloc is preloaded on Linux only, from the cmeel-mimalloc wheel")
        preload.insert(0, str(MIMALLOC))
    env = os.environ | {"LD_PRELOAD": ":".join(preload)}
    done = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, check=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["allocator"] == malloc
    big, cycle, small = result["records"]
    assert [big["name"], cycle["name"], small["name"]] == ["big", "cycle", "small"]
    assert big["peak_rss_gib"] - big["start_rss_gib"] > 0.2
    # Memory held only by garbage cycles is collected and handed back too.
    assert cycle["peak_rss_gib"] - cycle["start_rss_gib"] > 0.2
    assert small["start_rss_gib"] < cycle["peak_rss_gib"] - 0.2
    if result["reset"]:  # Linux: the high-water mark starts again at each phase
        assert small["peak_rss_gib"] < big["peak_rss_gib"] - 0.2
    assert small["seconds"] >= 0
    assert (big["peak_gpu_gib"] is None) != torch.cuda.is_available()


def test_metrics_name_every_phase():
    profile = PhaseProfile()
    with profile.phase("sampling"):
        pass
    metrics = profile.metrics()
    assert set(metrics) >= {"phase/sampling/seconds", "phase/sampling/peak_rss_gib"}
    json.dumps(metrics)


def test_peak_is_at_least_what_is_resident():
    reset_peak()
    assert peak_gib() >= resident_gib() * 0.99


class Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_frozen_libraries_leave_the_work_collectable():
    """Garbage from before the block is collected, not frozen with the living; the block's own cycles are
    collected as before; the collector sees everything again after the block."""
    gc.disable()  # only the collections the code runs, so a collection Python starts cannot pass for one
    try:
        before = weakref.ref(Cycle())
        with libraries_frozen():
            assert before() is None
            assert gc.get_freeze_count() > 0
            during = weakref.ref(Cycle())
            gc.collect()
            assert during() is None
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
