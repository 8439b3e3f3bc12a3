import json
import subprocess
import sys

import torch

from seal_lightning.profiling import PhaseProfile, peak_gib, reset_peak, resident_gib

PHASES = """
import json, torch
from dataclasses import asdict
from seal_lightning.profiling import PhaseProfile, reset_peak
profile = PhaseProfile()
with profile.phase("big"):
    block = torch.ones(256 * 1024**2 // 4)  # 256 MiB, touched
    del block
with profile.phase("small"):
    torch.ones(1024)
print(json.dumps({"reset": reset_peak(), "records": [asdict(r) for r in profile.records]}))
"""


def test_a_phase_records_its_own_peak_not_an_earlier_one():
    """In a process of its own: how much a long test session's heap already holds must not matter."""
    done = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    big, small = result["records"]
    assert big["name"] == "big" and small["name"] == "small"
    assert big["peak_rss_gib"] - big["start_rss_gib"] > 0.2
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
