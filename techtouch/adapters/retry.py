"""One retry policy for every call that may fail for a moment: provider requests and database writes.

Why one: the hand-written loops had drifted apart (one capped `Retry-After`, another capped the
backoff, two parsed the header each their own way) and none spread its retries, so every sender
that met the same 429, 503 or deadlock came back at the same instant and met it again. Here:

* Attempts: at most `max_attempts`, the first included.
* What is retried: a predicate on the attempt's *outcome*, the value it returned or the exception
  it raised. Anything else (a success, a definite failure) ends the call at once, unretried.
* How long to wait: the server's `Retry-After` when it sent one (it knows when it will have room),
  capped at `cap` so that a server asking for an hour cannot stall a run (the attempts still run
  out); otherwise "full jitter": a uniform draw between 0 and `min(cap, backoff * 2**(n-1))` after
  the n-th attempt. The window still doubles, but senders that failed together come back apart
  (AWS Architecture Blog, "Exponential Backoff And Jitter": the least total work of the variants).
* How to wait: an injectable `sleep` (tests pass a fake clock; the Twilio channel passes its
  pacer's `defer`, so one 429 holds every sending thread) and an injectable `random.Random`
  (seeded in tests, so jittered waits are reproducible).
* When the attempts run out: the last outcome is returned, or its exception re-raised, never
  tenacity's `RetryError`, so each caller words the failure for its own receipts and logs.

Built on `tenacity` rather than another loop: its stop/wait/retry pieces are tested, and the
policy is then a few lines that read the same at every call site.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import tenacity
from tenacity.wait import wait_base

MAX_WAIT = 300.0  # seconds: the longest any single wait may be, `Retry-After` included
_MAX_EXPONENT = 64  # 2.0**64 * backoff is beyond any cap; larger exponents would only overflow
_DEFAULT_RNG = random.Random()


class _Headers(Protocol):
    def get(self, name: str, default: Any = None, /) -> Any: ...


RetryAfterSource = _Headers | Mapping[str, Any] | str | bytes | int | float | None


def retry_after_seconds(
    headers_or_value: RetryAfterSource, *, cap: float = MAX_WAIT, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None when there is no usable one.

    Takes the header's value (text, bytes or a number) or the response headers (a mapping, looked
    up case-insensitively, or anything with `.get`, like `http.client.HTTPMessage`), because each
    SDK hands them over differently. Both RFC 9110 forms are read: delta-seconds (fractions are
    tolerated) and an HTTP-date, measured from `now` (default: the current time). A moment already
    past or a negative delay means "now" (0); anything above `cap` is `cap`. An unreadable or
    non-finite value is None, so the caller falls back to its backoff instead of guessing.
    """
    value = _header_value(headers_or_value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def _header_value(source: RetryAfterSource) -> Any:
    """The raw `Retry-After` value of headers, or the source itself when it already is a value."""
    if source is None or isinstance(source, str | bytes | int | float):
        return source
    value = source.get("Retry-After")
    if value is None and isinstance(source, Mapping):  # a plain dict is case-sensitive
        value = next((v for k, v in source.items() if str(k).lower() == "retry-after"), None)
    return value


@dataclass(frozen=True)
class Retry:
    """What callers are told before each wait (for their log line): no tenacity types leak out."""

    attempt: int  # the attempt that just failed, from 1
    max_attempts: int
    wait: float  # seconds until the next attempt
    outcome: object  # what that attempt returned, or the exception it raised


def outcome_of(retry_state: tenacity.RetryCallState) -> object:
    """The last attempt's returned value, or the exception it raised."""
    future = retry_state.outcome
    if future is None:
        raise RuntimeError("no attempt has been made yet")
    return future.exception() if future.failed else future.result()


def _no_retry_after(outcome: object) -> float | None:
    return None


class RetryAfterOrFullJitter(wait_base):
    """The server's `Retry-After` when the outcome carries one, else exponential backoff with full
    jitter: uniform in [0, min(cap, backoff * 2**(n-1))] after attempt n (see the module docstring)."""

    def __init__(
        self,
        backoff: float,
        cap: float = MAX_WAIT,
        retry_after: Callable[[object], float | None] = _no_retry_after,
        rng: random.Random | None = None,
    ) -> None:
        if backoff < 0 or cap < 0:
            raise ValueError(f"backoff and cap must not be negative, got {backoff} and {cap}")
        self.backoff = backoff
        self.cap = cap
        self.retry_after = retry_after
        self.rng = rng or _DEFAULT_RNG

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered wait after `attempt` (from 1)."""
        return min(self.cap, self.backoff * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = self.retry_after(outcome_of(retry_state))
        if asked is not None and math.isfinite(asked):
            return min(max(asked, 0.0), self.cap)
        return self.rng.uniform(0.0, self.ceiling(retry_state.attempt_number))


class RetryIfOutcome(tenacity.retry_base):
    """Retry when `retryable(outcome)` holds, the outcome being a returned value or a raised exception:
    callers classify both in one place (a provider's 429 may arrive as either, depending on the SDK)."""

    def __init__(self, retryable: Callable[[object], bool]) -> None:
        self.retryable = retryable

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return bool(self.retryable(outcome_of(retry_state)))


def _last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    """When attempts run out: the last value, or its exception re-raised (never tenacity.RetryError)."""
    future = retry_state.outcome
    assert future is not None  # tenacity calls this only after an attempt
    return future.result()


def retrying(
    *,
    max_attempts: int,
    backoff: float,
    retryable: Callable[[object], bool],
    retry_after: Callable[[object], float | None] = _no_retry_after,
    cap: float = MAX_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[Retry], None] | None = None,
) -> tenacity.Retrying:
    """The policy as a `tenacity.Retrying`: call it as `retrying(...)(function, *args, **kwargs)`.

    `retryable` and `retry_after` both look at an attempt's outcome (the value returned or the
    exception raised): the first says whether another attempt may help, the second what wait the
    server asked for (None: use the jittered backoff). `on_retry` is called before each wait, for
    logging. Build one per call: tenacity keeps per-call statistics on the object.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")

    def notify(retry_state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry(
                Retry(
                    attempt=retry_state.attempt_number,
                    max_attempts=max_attempts,
                    wait=float(retry_state.upcoming_sleep),
                    outcome=outcome_of(retry_state),
                )
            )

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=RetryAfterOrFullJitter(backoff, cap, retry_after, rng),
        retry=RetryIfOutcome(retryable),
        # tenacity hands over its DoSleep (a float subclass); callers and their fakes get a float
        sleep=lambda seconds: sleep(float(seconds)),
        before_sleep=notify,
        retry_error_callback=_last_outcome,
    )
