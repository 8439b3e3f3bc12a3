"""The LLM judge: greedy answers graded yes/no by an OpenAI-compatible endpoint, like the paper's GPT-4.1
grader, with every fault of the judge costing a grade, never the run."""

from __future__ import annotations

import collections
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from seal_lightning.config import JudgeConfig
from seal_lightning.domains import Question
from seal_lightning.errors import SealError

if TYPE_CHECKING:
    from openai import OpenAI

JUDGE_PROMPT = (
    "You are grading a student's answer to a question. Decide only from the gold answer whether the "
    "student's answer is correct; do not use outside knowledge. Minor differences in wording, case or "
    "punctuation are fine if the meaning is the same.\n\n"
    "Question: {question}\nGold answer: {gold}\nStudent answer: {prediction}\n\n"
    "Reply with a single word: yes or no."
)


JUDGE_SETTINGS_STATUSES = {
    401: "the API key was refused (reward.judge.api_key_env)",
    403: "the API key was refused (reward.judge.api_key_env)",
    404: "no such model or endpoint (reward.judge.model, reward.judge.base_url)",
}
# HTTP statuses worth another try (besides timeouts, lost connections and replies that are not a verdict).
RETRIED_STATUSES = frozenset({408, 409, 429})
# Failed grades so far in this process, per judge URL, for the warning's running total.
FAILED_GRADES: collections.Counter[str] = collections.Counter()


class JudgeFault(Exception):
    """One try of one grade went wrong; `retry` says whether another try may go better."""

    def __init__(self, reason: str, retry: bool = True, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry
        # No HTTP answer at all (connection refused, unknown host), as opposed to a slow or broken answer.
        self.unreachable = unreachable


def judge_answers(config: JudgeConfig, questions: Sequence[Question], predictions: Sequence[str]) -> list[float]:
    """Per question, 1.0 where the judge says yes, 0.0 where it says no, and NaN for a failed grade. The API
    key comes from the environment variable `config.api_key_env` and goes nowhere but the request header.

    Faults of the judge cost grades, not the run. A try that times out (`timeout_s`), loses its connection,
    gets HTTP 408/409/429/5xx, or gets a reply that is not a chat completion whose text holds exactly one of
    the words yes and no (a body that is not JSON, no choices, other text) is tried again, up to `retries`
    more times, after `backoff_s`, `2 * backoff_s`, `4 * backoff_s`, ... seconds. Another 4xx status (say 400,
    an answer too long for the judge's context) is not retried. A grade whose tries all fail is NaN:
    `mean_grade` leaves it out of the means, so it never counts as a "no"; an item whose grades all failed
    scores NaN, printed as nan and never kept by the E-step. Each call with failed grades prints one warning
    line on stderr with their number, the running total of the command and the last fault.

    Two cases stop the command with one line (SealError), since every grade would fail alike: HTTP
    401/403/404 (a wrong key, model name or URL), and a call in which nothing answered at all (every
    grade's every try found no server at `base_url`); rerunning the command resumes where it stopped.
    """
    from openai import OpenAI

    client = OpenAI(
        base_url=config.base_url,
        api_key=os.environ.get(config.api_key_env, "EMPTY"),
        timeout=config.timeout_s,
        max_retries=0,  # retried here, with garbage replies too
    )
    grades, faults = [], []
    for question, prediction in zip(questions, predictions, strict=True):
        prompt = JUDGE_PROMPT.format(question=question.question, gold=question.answer, prediction=prediction)
        try:
            grades.append(_grade_with_retries(client, config, prompt))
        except JudgeFault as fault:
            grades.append(math.nan)
            faults.append(fault)
    if faults:
        if len(faults) == len(grades) and all(fault.unreachable for fault in faults):
            raise SealError(f"llm_judge at {config.base_url} failed: nothing answers there ({faults[-1]})")
        FAILED_GRADES[config.base_url] += len(faults)
        print(
            f"seal-lightning: warning: llm_judge at {config.base_url}: {len(faults)} of {len(grades)} grades failed "
            f"after {config.retries + 1} tries ({FAILED_GRADES[config.base_url]} in this command so far), left out "
            f"of the means; last fault: {faults[-1]}",
            file=sys.stderr,
        )
    return grades


def _grade_with_retries(client: OpenAI, config: JudgeConfig, prompt: str) -> float:
    """One grade; a fault worth another try waits backoff_s * 2**attempt first, the last fault is raised."""
    attempt = 0
    while True:
        try:
            return _grade_once(client, config, prompt)
        except JudgeFault as fault:
            if not fault.retry or attempt == config.retries:
                raise
        time.sleep(config.backoff_s * 2**attempt)
        attempt += 1


def _grade_once(client: OpenAI, config: JudgeConfig, prompt: str) -> float:
    """1.0 or 0.0 from one request, or JudgeFault; SealError where the judge's settings are wrong."""
    from openai import APIConnectionError, APIStatusError, APITimeoutError, OpenAIError

    try:
        raw = client.chat.completions.with_raw_response.create(
            model=config.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=4,
        )
        body = raw.text
    except APIStatusError as exc:
        status = exc.status_code
        if status in JUDGE_SETTINGS_STATUSES:
            raise SealError(
                f"llm_judge at {config.base_url} failed: HTTP {status}, {JUDGE_SETTINGS_STATUSES[status]}"
            ) from None
        raise JudgeFault(f"HTTP {status}", retry=status in RETRIED_STATUSES or status >= 500) from None
    except APITimeoutError:
        raise JudgeFault(f"no reply within reward.judge.timeout_s={config.timeout_s:g} s") from None
    except APIConnectionError as exc:
        raise JudgeFault(_first_line(exc, exc.__cause__), unreachable=True) from None
    except OpenAIError as exc:
        raise JudgeFault(_first_line(exc)) from None
    return _verdict(body)


def _verdict(body: str) -> float:
    """The grade in a chat completion's JSON text, or JudgeFault saying what the reply is instead."""
    try:
        reply = json.loads(body)
    except (ValueError, RecursionError):
        raise JudgeFault(f"reply is not JSON: {_snippet(body)}") from None
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise JudgeFault(f"reply has no choices: {_snippet(body)}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise JudgeFault(f"reply has no message text: {_snippet(body)}")
    # Small judges wrap the word ("The answer is no."); a reply with both words, or neither, says nothing.
    verdicts = {word for word in re.findall(r"[a-z]+", content.lower()) if word in ("yes", "no")}
    if len(verdicts) != 1:
        raise JudgeFault(f"reply is not one of yes or no: {_snippet(content)}")
    return float(verdicts == {"yes"})


def _first_line(*errors: BaseException | None) -> str:
    """The first line of the innermost error that says something (the client's own says 'Connection error.')."""
    texts = [str(error).strip() for error in errors if error is not None and str(error).strip()]
    return texts[-1].splitlines()[0] if texts else "no reason given"


def _snippet(text: str, limit: int = 80) -> str:
    """A reply's start, on one line and short: whatever a broken server sends goes into one warning line."""
    line = " ".join(text.split())
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")
