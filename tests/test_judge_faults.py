"""`llm_judge` against a local judge that misbehaves on purpose (tests/fake_judge.py): faults are retried with
backoff, then counted as failed grades (NaN, left out of the means, one warning line), never a crash."""

from __future__ import annotations

import math
import time

import pytest
from fake_judge import FakeJudge

from seal_lightning.config import JudgeConfig, RewardConfig
from seal_lightning.domains import Question
from seal_lightning.errors import SealError
from seal_lightning.judge import judge_answers
from seal_lightning.rewards import mean_grade
from seal_lightning.scorer import score_questions

QUESTIONS = [Question("Where is Odrava?", "Wynae"), Question("Who founded it?", "Brimmel"), Question("When?", "1874")]


def config(judge: FakeJudge, **changes) -> JudgeConfig:
    return JudgeConfig(**{"base_url": judge.url, "model": "judge", "timeout_s": 5.0, "backoff_s": 0.01, **changes})


def grades(judge: FakeJudge, count: int = 1, **changes) -> list[float]:
    return judge_answers(config(judge, **changes), QUESTIONS[:count], ["an answer"] * count)


def warning(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") <= 1, err
    return err


def test_a_judge_that_answers_grades_without_a_warning(capsys):
    with FakeJudge(script=["yes", "no", "Yes.", "The answer is no"]) as judge:
        assert judge_answers(config(judge), QUESTIONS + QUESTIONS[:1], ["an answer"] * 4) == [1.0, 0.0, 1.0, 0.0]
    assert warning(capsys) == ""
    request = judge.requests[0]["body"]
    assert request["model"] == "judge" and "Student answer: an answer" in request["messages"][0]["content"]


def test_http_500_is_retried_with_backoff_then_grades_correctly(capsys):
    with FakeJudge(script=["500", "503", "no"]) as judge:
        start = time.monotonic()
        assert grades(judge, retries=2, backoff_s=0.1) == [0.0]
        waited = time.monotonic() - start
    assert len(judge.requests) == 3
    assert waited >= 0.1 + 0.2  # exponential: backoff_s, then twice that
    assert warning(capsys) == ""


def test_a_judge_that_times_out_is_retried_then_counted(capsys):
    with FakeJudge(script=["sleep", "yes"], sleep_s=1.5) as judge:
        assert grades(judge, timeout_s=0.3, retries=1) == [1.0]
    assert len(judge.requests) == 2 and warning(capsys) == ""
    with FakeJudge(default="sleep", sleep_s=1.5) as judge:
        assert math.isnan(grades(judge, timeout_s=0.3, retries=1)[0])
    assert len(judge.requests) == 2
    err = warning(capsys)
    assert "1 of 1 grades failed after 2 tries" in err and "no reply within reward.judge.timeout_s=0.3 s" in err


def test_a_judge_that_always_fails_costs_grades_not_the_run(capsys):
    with FakeJudge(default="500") as judge:
        result = grades(judge, 3, retries=2)
    assert all(math.isnan(grade) for grade in result)
    assert len(judge.requests) == 3 * 3
    err = warning(capsys)
    assert err.startswith("seal-lightning: warning: llm_judge at http://127.0.0.1:")
    assert "3 of 3 grades failed after 3 tries" in err and "left out of the means" in err and "HTTP 500" in err


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("not-json", "reply is not JSON: '<html><body>502 Bad Gateway</body></html>'"),
        ("no-choices", "reply has no choices"),
        ("no-content", "reply has no message text"),
        ("maybe", "reply is not one of yes or no: 'maybe'"),
        ("yes or no", "reply is not one of yes or no: 'yes or no'"),
    ],
)
def test_garbage_replies_are_retried_then_counted_never_read_as_no(garbage, reason, capsys):
    with FakeJudge(script=[garbage, "yes"]) as judge:
        assert grades(judge, retries=1) == [1.0]
    with FakeJudge(default=garbage) as judge:
        assert math.isnan(grades(judge, retries=1)[0])
    assert len(judge.requests) == 2
    assert reason in warning(capsys)


def test_a_bad_request_is_not_retried(capsys):
    """HTTP 400 (say an answer too long for the judge's context): another try would get the same."""
    with FakeJudge(script=["400", "yes"]) as judge:
        result = grades(judge, 2, retries=3)
    assert math.isnan(result[0]) and result[1] == 1.0
    assert len(judge.requests) == 2
    assert "1 of 2 grades failed" in warning(capsys)


@pytest.mark.parametrize(("status", "reason"), [("401", "API key was refused"), ("404", "no such model or endpoint")])
def test_wrong_judge_settings_stop_the_command_in_one_line(status, reason):
    with FakeJudge(default=status) as judge, pytest.raises(SealError) as info:
        grades(judge, 3, retries=3)
    assert len(judge.requests) == 1  # neither retried nor repeated for the other questions
    message = str(info.value)
    assert f"llm_judge at {judge.url} failed: HTTP {status}, " in message and reason in message
    assert "\n" not in message


def test_nothing_answering_at_base_url_is_one_clear_error():
    with FakeJudge() as judge:
        url = judge.url  # a port that answered a moment ago and is closed now
    with pytest.raises(SealError, match=r"llm_judge at http://127\.0\.0\.1:\d+/v1 failed: nothing answers there"):
        judge_answers(JudgeConfig(base_url=url, retries=1, backoff_s=0.01), QUESTIONS[:2], ["a", "b"])


def test_failed_grades_are_left_out_of_the_mean_not_counted_as_no(capsys):
    """yes, a failed grade, no: the mean is 0.5 (not 1/3, which reading the failure as "no" would give)."""
    with FakeJudge(script=["yes", "500", "500", "no"]) as judge:
        reward = RewardConfig(name="llm_judge", judge=config(judge, retries=1))
        answers = lambda questions: ["an answer"] * len(questions)  # noqa: E731
        scores = score_questions(None, None, QUESTIONS, ["llm_judge"], reward, answer=answers)
    assert scores == {"llm_judge": 0.5}
    assert "1 of 3 grades failed" in warning(capsys)
    assert mean_grade([math.nan, math.nan]) != mean_grade([math.nan, math.nan])  # NaN: nothing was graded
    assert mean_grade([1.0, math.nan, 0.0, 1.0]) == pytest.approx(2 / 3)
