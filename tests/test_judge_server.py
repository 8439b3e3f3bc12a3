"""`llm_judge` against a real OpenAI-compatible server: vLLM serving the built-in model on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from seal_lightning.config import JudgeConfig, RewardConfig
from seal_lightning.domains import Question
from seal_lightning.errors import SealError
from seal_lightning.judge import judge_answers
from seal_lightning.models import builtin_model_folder
from seal_lightning.scorer import score_questions

pytestmark = pytest.mark.slow

API_KEY = "seal-test-key"
START_TIMEOUT_S = 240.0
QUESTIONS = [
    Question("What is the capital of France?", "Paris"),
    Question("In what year was Seltam Uldunis born?", "1905"),
]


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def models_ready(url: str) -> bool:
    # No proxy: only local traffic, whatever the environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory, free_port):
    """Start `vllm.entrypoints.openai.api_server` in its own process group; kill the group afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("judge") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(builtin_model_folder()), "--served-model-name", "judge",
        "--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY,
        "--dtype", "float32", "--gpu-memory-utilization", "0.25", "--max-model-len", "1024",
        "--enforce-eager", "--disable-log-stats",
    ]  # fmt: skip
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not models_ready(f"{base_url}/models"):
            if server.poll() is not None:
                pytest.fail(f"the vLLM server exited with {server.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the vLLM server did not answer within {START_TIMEOUT_S:.0f} s:\n{log_tail(log)}")
            time.sleep(1)
        yield base_url
    finally:
        stop_group(server)


def stop_group(server: subprocess.Popen) -> None:
    """SIGTERM to the server's whole group (its engine core is a child), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no child of the group survives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        return


@pytest.fixture
def judge(judge_url, monkeypatch):
    monkeypatch.setenv("SEAL_TEST_KEY", API_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return JudgeConfig(base_url=judge_url, model="judge", api_key_env="SEAL_TEST_KEY", timeout_s=120)


def test_judge_grades_each_answer_with_zero_or_one(judge):
    grades = judge_answers(judge, QUESTIONS, ["Paris", "It was built in 1066 by the Normans."])
    assert len(grades) == len(QUESTIONS)
    assert all(grade in (0.0, 1.0) for grade in grades)


def test_judge_reads_the_key_from_the_named_variable(judge, monkeypatch):
    monkeypatch.delenv("SEAL_TEST_KEY")
    with pytest.raises(SealError, match=r"llm_judge at http://127\.0\.0\.1:\d+/v1 failed"):
        judge_answers(judge, QUESTIONS[:1], ["Paris"])


def test_score_questions_with_llm_judge_end_to_end(judge, policy, tokenizer):
    scores = score_questions(policy, tokenizer, QUESTIONS, ["llm_judge"], RewardConfig(max_new_tokens=16, judge=judge))
    assert set(scores) == {"llm_judge"}
    assert 0.0 <= scores["llm_judge"] <= 1.0
    assert scores["llm_judge"] * len(QUESTIONS) in (0.0, 1.0, 2.0)
