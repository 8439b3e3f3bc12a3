"""The cluster and GPU scripts: they parse, and the multi-node one refuses to start without its rendezvous."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = ["cluster/slurm.sbatch", "cluster/torchrun_multinode.sh", "gpu_smoke.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script):
    done = subprocess.run(["bash", "-n", str(EXPERIMENTS / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_multinode_torchrun_names_what_it_misses():
    env = {k: v for k, v in os.environ.items() if k not in ("HEAD", "NODES")}
    done = subprocess.run(
        ["bash", str(EXPERIMENTS / "cluster/torchrun_multinode.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "set HEAD to the address of the first node" in done.stderr
