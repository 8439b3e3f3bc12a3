"""The CI version of the chaos test of resume (benchmarks/chaos.py): a 2-round `fit` killed with SIGKILL
inside its inner loops, its policy save and its second round's sampling, rerun after each kill, must
end with the run directory and MLflow store an uninterrupted run leaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHAOS = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"


def test_fit_killed_in_three_phases_ends_as_an_uninterrupted_run():
    result = subprocess.run([sys.executable, str(CHAOS), "fit", "--quick"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kills survived, 0 differences" in result.stdout, result.stdout
    phases = result.stdout.split("kills by phase: ")[1].splitlines()[0]
    assert all(phase in phases for phase in ("inner loops", "policy save", "sampling")), phases
