"""scripts/run.sh's allocator switch: its commands run on mimalloc unless SEAL_ALLOCATOR=system says glibc's.

These run the script on the environment this session runs in, so only where the session itself was started
by it (the README's test command): then that environment is current and the script builds nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OTHER = "libm.so.6"  # a library some user preloads already (the math library: harmless)
REPORT = "import os; from seal_lightning.profiling import allocator; print(allocator(), os.environ['LD_PRELOAD'])"


def run_script(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    script = str(ROOT / "scripts" / "run.sh")
    return subprocess.run(["bash", script, *command], capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def session_env() -> dict[str, str]:
    if sys.platform != "linux" or "libmimalloc" not in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("this session was not started by scripts/run.sh on Linux")
    return os.environ | {"SEAL_VENV": sys.prefix}


@pytest.mark.parametrize(("setting", "expected"), [(None, "mimalloc"), ("mimalloc", "mimalloc"), ("system", "system")])
def test_commands_run_on_the_allocator_asked_for(session_env, setting, expected):
    env = {k: v for k, v in session_env.items() if k != "SEAL_ALLOCATOR"}
    if setting is not None:
        env["SEAL_ALLOCATOR"] = setting
    # Something else preloaded stays preloaded, after mimalloc, and mimalloc is named once however deep.
    env["LD_PRELOAD"] = f"{session_env['LD_PRELOAD']}:{OTHER}"
    result = run_script(env, "bash", str(ROOT / "scripts" / "run.sh"), "python", "-c", REPORT)
    assert result.returncode == 0, result.stderr
    name, preload = result.stdout.split()
    libraries = preload.split(":")
    assert name == expected
    assert libraries[-1] == OTHER
    assert sum("libmimalloc" in library for library in libraries) == (expected == "mimalloc")
    assert expected != "mimalloc" or "libmimalloc" in libraries[0]


def test_an_unknown_allocator_is_one_line_and_exit_2(tmp_path):
    env = os.environ | {"SEAL_ALLOCATOR": "jemalloc", "SEAL_VENV": str(tmp_path / "venv")}
    result = run_script(env, "true")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "seal-lightning: SEAL_ALLOCATOR must be mimalloc or system, not 'jemalloc'"
    ]
    assert not (tmp_path / "venv").exists(), "nothing is built for a setting that is refused"
