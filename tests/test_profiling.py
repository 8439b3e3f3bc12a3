import json

import torch

from seal_lightning.profiling import PhaseProfile, peak_gib, reset_peak, resident_gib


def test_a_phase_records_its_own_peak_not_an_earlier_one():
    profile = PhaseProfile()
    with profile.phase("big"):
        block = torch.ones(64 * 1024**2 // 4)  # 64 MiB, touched
        del block
    with profile.phase("small"):
        torch.ones(1024)
    big, small = profile.records
    assert big.name == "big" and small.name == "small"
    assert big.peak_rss_gib - big.start_rss_gib > 0.05
    if reset_peak():  # Linux: the high-water mark starts again at each phase
        assert small.peak_rss_gib < big.peak_rss_gib
    assert small.seconds >= 0
    assert (big.peak_gpu_gib is None) != torch.cuda.is_available()


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
