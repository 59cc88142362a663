"""The one retry policy (techtouch.adapters.retry): Retry-After, jittered backoff, attempts, predicate.

No sleeping: every policy gets a list's `append` as its sleep, and jitter comes from a seeded
`random.Random`, so the waits are exact and the tests take milliseconds.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from typing import Any

import pytest
import tenacity

from techtouch.adapters.retry import MAX_WAIT, Retry, RetryAfterOrFullJitter, retry_after_seconds, retrying

NOW = datetime(2027, 3, 1, 14, 0, tzinfo=UTC)


class Busy:
    """An outcome a server sends when it wants us back later (a 429 or a 503)."""

    def __init__(self, retry_after: float | None = None) -> None:
        self.retry_after = retry_after


class Flaky:
    """Returns the scripted outcomes in turn (an exception in the script is raised), then "ok"."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if not self.script:
            return "ok"
        outcome = self.script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def busy(outcome: object) -> bool:
    return isinstance(outcome, Busy | ConnectionError)


def asked(outcome: object) -> float | None:
    return outcome.retry_after if isinstance(outcome, Busy) else None


def policy(sleeps: list[float], **options: Any) -> Any:
    settings: dict[str, Any] = {
        "max_attempts": 5,
        "backoff": 0.5,
        "retryable": busy,
        "retry_after": asked,
        "sleep": sleeps.append,
        "rng": random.Random(1234),
    }
    return retrying(**(settings | options))


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        (b"30", 30.0),
        (12, 12.0),
        ("0", 0.0),
        ("-5", 0.0),  # nonsense, read as "now"
        ("86400", MAX_WAIT),  # capped
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds(value: Any, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date_is_measured_from_now_and_capped() -> None:
    in_a_minute = format_datetime(NOW + timedelta(seconds=60), usegmt=True)  # "Mon, 01 Mar 2027 14:01:00 GMT"
    assert retry_after_seconds(in_a_minute, now=NOW) == 60.0
    assert retry_after_seconds(format_datetime(NOW - timedelta(hours=1), usegmt=True), now=NOW) == 0.0
    assert retry_after_seconds(format_datetime(NOW + timedelta(days=1), usegmt=True), now=NOW) == MAX_WAIT
    assert retry_after_seconds(in_a_minute, now=NOW, cap=10) == 10.0
    assert retry_after_seconds("Mon, 99 Foo 2027 25:61:00 GMT", now=NOW) is None


def test_retry_after_is_found_in_any_shape_of_headers() -> None:
    message = Message()  # what urllib (and so the SendGrid library) hands over
    message["Retry-After"] = "3"
    assert retry_after_seconds(message) == 3.0
    assert retry_after_seconds({"retry-after": "4"}) == 4.0  # a plain dict, spelled by someone else
    assert retry_after_seconds({"Retry-After": "5", "X-Other": "1"}) == 5.0
    assert retry_after_seconds({"Content-Type": "application/json"}) is None


def test_the_server_s_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    flaky = Flaky(Busy(retry_after=7), Busy(retry_after=10_000), Busy(retry_after=2.5))
    assert policy(sleeps, cap=60)(flaky) == "ok"
    assert sleeps == [7.0, 60.0, 2.5]
    assert flaky.calls == 4


# -- jittered backoff ----------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_doubling_windows(sleeps: list[float]) -> None:
    flaky = Flaky(*[Busy()] * 6)
    assert policy(sleeps, max_attempts=7, backoff=0.5, cap=8)(flaky) == "ok"

    windows = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # backoff * 2**n, capped
    assert len(sleeps) == len(windows)
    assert all(0.0 <= wait <= window for wait, window in zip(sleeps, windows, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # varied, not a fixed schedule
    assert sleeps != windows


def test_the_same_seed_gives_the_same_waits_and_another_seed_others() -> None:
    def waits(seed: int) -> list[float]:
        sleeps: list[float] = []
        policy(sleeps, rng=random.Random(seed))(Flaky(*[Busy()] * 4))
        return sleeps

    assert waits(7) == waits(7)
    assert waits(7) != waits(8)


def test_jitter_spreads_many_senders_over_the_whole_window() -> None:
    wait = RetryAfterOrFullJitter(backoff=1.0, cap=MAX_WAIT, rng=random.Random(99))
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.set_result(Busy())
    state.attempt_number = 3
    draws = [wait(state) for _ in range(2_000)]

    assert min(draws) >= 0.0 and max(draws) <= 4.0  # window after attempt 3: 1.0 * 2**2
    assert min(draws) < 0.1 and max(draws) > 3.9  # the whole window is used
    assert 1.8 < sum(draws) / len(draws) < 2.2  # uniform: mean at half the window
    assert wait.ceiling(200) == MAX_WAIT  # huge attempt numbers do not overflow


# -- attempts and outcomes -----------------------------------------------------------------------


def test_attempts_stop_at_the_maximum_and_the_last_outcome_is_returned(sleeps: list[float]) -> None:
    last = Busy()
    flaky = Flaky(Busy(), Busy(), last, Busy())
    assert policy(sleeps, max_attempts=3)(flaky) is last  # not tenacity.RetryError
    assert flaky.calls == 3
    assert len(sleeps) == 2


def test_a_retryable_exception_is_re_raised_when_the_attempts_run_out(sleeps: list[float]) -> None:
    flaky = Flaky(ConnectionError("1"), ConnectionError("2"), ConnectionError("3"))
    with pytest.raises(ConnectionError, match="3"):
        policy(sleeps, max_attempts=3)(flaky)
    assert flaky.calls == 3 and len(sleeps) == 2


def test_a_single_attempt_never_waits(sleeps: list[float]) -> None:
    flaky = Flaky(Busy(retry_after=1))
    assert isinstance(policy(sleeps, max_attempts=1)(flaky), Busy)
    assert flaky.calls == 1 and sleeps == []


def test_non_retryable_outcomes_are_not_retried(sleeps: list[float]) -> None:
    definite = Flaky("rejected", Busy())
    assert policy(sleeps)(definite) == "rejected"
    assert definite.calls == 1

    broken = Flaky(PermissionError("401"), Busy())
    with pytest.raises(PermissionError, match="401"):
        policy(sleeps)(broken)
    assert broken.calls == 1
    assert sleeps == []


def test_on_retry_is_told_each_attempt_wait_and_outcome(sleeps: list[float]) -> None:
    first, second = Busy(retry_after=3), ConnectionError("refused")
    told: list[Retry] = []
    assert policy(sleeps, max_attempts=4, on_retry=told.append)(Flaky(first, second)) == "ok"

    assert [(r.attempt, r.max_attempts, r.outcome) for r in told] == [(1, 4, first), (2, 4, second)]
    assert [r.wait for r in told] == sleeps
    assert told[0].wait == 3.0 and 0.0 <= told[1].wait <= 1.0
    assert all(type(wait) is float for wait in sleeps)  # not tenacity's DoSleep


def test_a_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        retrying(max_attempts=0, backoff=1, retryable=busy)
    with pytest.raises(ValueError, match="negative"):
        RetryAfterOrFullJitter(backoff=-1)


@pytest.fixture
def sleeps() -> list[float]:
    return []
