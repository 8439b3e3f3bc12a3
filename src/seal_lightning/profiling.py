"""Time and peak memory of each phase of a round (sampling, inner loops, M-step, merge, save, logging).

A phase's peak is the process's resident-set high-water mark, reset when the phase starts (Linux
`/proc/self/clear_refs`); where that reset is not allowed the peak is the process's peak so far. On a
GPU the device's peak allocated memory is recorded too. The records go to the run store and the tracker.
The reset is the kernel's: `getrusage` and `/usr/bin/time` then report only the peak since the last
phase began, so a run's peak is the largest phase peak.

At the end of each phase the memory it freed goes back to the system. Python's cycle collector runs first
(after a demo round's held-out evaluation, garbage cycles alone held 1.6 GiB), then `mi_collect` under
mimalloc, else glibc's `malloc_trim` (allocators keep freed memory for reuse). Without this every later
phase would start from the largest earlier peak. `scripts/run.sh` preloads mimalloc (the `cmeel-mimalloc`
wheel): glibc's heap fragments under a training step's many mid-sized temporaries (see the README's Memory
section).

Before a command's work begins, what is alive then (the imported libraries, some 660k objects) is moved out
of the cycle collector's sight for the command's lifetime (`gc.freeze`): each of those collections then
scans only the run's own objects (0.29 s to about 1 ms each on the built-in model's process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

GIB = 1024**3
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None
# The symbols of the running process: a preloaded allocator's functions are found here.
_PROCESS = ctypes.CDLL(None)


@dataclass(frozen=True)
class PhaseRecord:
    name: str
    seconds: float
    # Resident memory when the phase started and its peak during the phase, in GiB.
    start_rss_gib: float
    peak_rss_gib: float
    # Peak GPU memory allocated by torch during the phase (GiB); None without a GPU.
    peak_gpu_gib: float | None


def resident_gib() -> float:
    """The process's resident memory now."""
    return _status_kib("VmRSS") / 1024**2


def allocator() -> str:
    """Which malloc serves this process: "mimalloc" where it was preloaded, else "system"."""
    return "mimalloc" if hasattr(_PROCESS, "mi_collect") else "system"


def release_freed_memory() -> None:
    """Free garbage cycles, then hand the memory that is free back to the system (mimalloc or glibc)."""
    gc.collect()
    if allocator() == "mimalloc":
        _PROCESS.mi_collect(ctypes.c_bool(True))
        return
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


@contextmanager
def libraries_frozen() -> Iterator[None]:
    """Exempt every object alive now from the cycle collector until the block ends. Collected first, so
    no garbage is frozen; what the block's own work creates is collected as before."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def reset_peak() -> bool:
    """Start a new resident high-water mark; False where the system does not allow it."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_gib() -> float:
    """The resident high-water mark since the last `reset_peak` (or since the process started)."""
    return _status_kib("VmHWM") / 1024**2


class PhaseProfile:
    """Collects `PhaseRecord`s: `with profile.phase("sampling"): ...`."""

    def __init__(self) -> None:
        self.records: list[PhaseRecord] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start_rss = resident_gib()
        reset_peak()
        started = time.monotonic()
        try:
            yield
        finally:
            release_freed_memory()
            gpu = torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None
            self.records.append(
                PhaseRecord(name, time.monotonic() - started, start_rss, max(peak_gib(), start_rss), gpu)
            )

    def metrics(self) -> dict[str, float]:
        """Flat metrics for the tracker: phase/<name>/{seconds,peak_rss_gib[,peak_gpu_gib]}."""
        metrics = {}
        for record in self.records:
            metrics[f"phase/{record.name}/seconds"] = record.seconds
            metrics[f"phase/{record.name}/peak_rss_gib"] = record.peak_rss_gib
            if record.peak_gpu_gib is not None:
                metrics[f"phase/{record.name}/peak_gpu_gib"] = record.peak_gpu_gib
        return metrics


def _status_kib(field: str) -> float:
    """A memory field of /proc/self/status; elsewhere the process's peak so far (ru_maxrss)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux
