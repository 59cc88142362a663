"""The Twilio SMS channel: the official `twilio` library, paced, retried, and honest about doubt.

Pacing: requests that create messages leave at `mps` less 2 % headroom over the long run, and
never more than `mps` of them in any 1.02 seconds (Twilio queues what goes over a sender's MPS, and
a deep queue delays every later message), so a backlog drains within a few per cent of `mps`. The
headroom absorbs jitter between our dispatch and Twilio's arrival time (see `Pacer`). The pace
holds across `send` calls on one channel. Twilio takes 0.1-0.3 s to answer, longer than a slot
at 10 MPS and up, so `concurrency` threads (default: enough for 0.5 s a request, at most 32) send
at once, sharing one pacer. Each `send` returns when its whole batch is answered, so the pace
dips by about one answer's time between batches: hand over large batches.

Scheduling: Twilio sends a message later itself only through a Messaging Service (ScheduleType
`fixed`, SendAt between 15 minutes and 35 days after the request reaches Twilio). A message whose
`send_at` is far enough ahead (with a minute of margin at each end) is scheduled when a Messaging
Service is configured; every other message, including one due in ten minutes or sent from a plain
number, is sent now. `can_schedule` tells delivery which messages Twilio can hold: delivery hands over
the others only once they are due.

Faults: 429 and 5xx are retried under the one policy of techtouch.adapters.retry (`Retry-After`
wins when Twilio sends it, else exponential backoff with full jitter, every wait capped at 300 s)
up to `max_retries`, then the message fails. A retry's wait holds every sending thread (the
pacer), not only the one that met it: Twilio is rate limiting or struggling for all of them.
Another 4xx fails that message only; 21610 (the recipient replied STOP) is `opted_out` and never
retried. A request that may have reached Twilio and got no answer (read timeout, connection
dropped) is `unknown`: resending it could text the customer twice, so `reconcile` asks Twilio
instead. A connection that never opened is retried.
Rejected credentials (401/403) stop the batch: the rest is `unknown`, not sent and not failed, so
that a configuration mistake loses no message.

Logs carry counts, touch keys and Twilio error codes, never a phone number, a body or the token.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from techtouch.adapters.channels.base import OutboundSms, Receipt
from techtouch.adapters.loopback import is_loopback_url
from techtouch.adapters.retry import MAX_WAIT, Retry, retry_after_seconds, retrying

logger = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
OPTED_OUT_CODE = 21610  # "Attempt to send to unsubscribed recipient"

_HEADROOM = 0.02  # spacing is 2 % above 1/mps: jitter on the way to Twilio never packs mps + 1 a second
_SCHEDULE_MIN = timedelta(minutes=15) + timedelta(minutes=1)  # Twilio's minimum + a minute in flight
_SCHEDULE_MAX = timedelta(days=35) - timedelta(hours=1)
_RECONCILE_SKEW = timedelta(minutes=5)  # our clock vs Twilio's date_created
_LATENCY_BUDGET = 0.5  # seconds a create may take while the pace still holds (see default_concurrency)
_MAX_CONCURRENCY = 32  # well under Twilio's per-account limit on concurrent requests
_PAGE_SIZE = 1000  # Twilio's maximum: one request per recipient in practice
# Anything that looks like a phone number (7+ digits and separators); Twilio error texts quote them.
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


class TwilioChannelError(RuntimeError):
    """Twilio could not be asked (reconcile): nothing may be concluded about the messages."""


class _Halt:
    """Set once Twilio rejects the credentials: the batch's other threads stop sending too."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()

    def set(self, reason: str) -> bool:
        """True for the first caller (who logs it)."""
        with self._lock:
            first, self.reason = self.reason is None, self.reason or reason
            return first


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment


def _redact(text: str) -> str:
    return _PHONE_LIKE.sub("<number>", text)


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK ships no types
    """`TwilioHttpClient` that sends `https://api.twilio.com/...` to another base URL.

    The SDK builds absolute URLs from a hard-coded domain (`https://api.twilio.com`, optionally
    re-written for an edge/region) and has no option for another host, so tests and the benchmark
    point it at a loopback fake here. It also keeps the last response per thread (the SDK's
    exceptions carry no headers, and `Retry-After` is a header) and logs method and path only:
    the stock client logs query strings at INFO, and `To=` is a phone number.
    """

    def __init__(
        self, base_url: str = TWILIO_API, *, timeout: float | None = None, pool_size: int = 10
    ) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self._local = threading.local()
        if self.session is not None:
            # One kept-alive connection per sending thread (the stock pool is cpu_count + 4); no
            # urllib3 retries, which could repeat a POST that Twilio already has.
            for prefix in ("https://", "http://"):
                self.session.mount(prefix, HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size)))
            if is_loopback_url(self.base_url):
                self.session.trust_env = False  # an HTTP(S)_PROXY in the environment must not catch loopback

    @property
    def last_response(self) -> Response | None:
        """The response to this thread's last request; None when it raised before one came."""
        return getattr(self._local, "response", None)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.base_url != TWILIO_API and url.startswith(TWILIO_API + "/"):
            url = self.base_url + url[len(TWILIO_API) :]
        self._local.response = None
        response = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.response = response
        return response

    def log_request(self, kwargs: dict[str, Any]) -> None:
        self.logger.debug("twilio: %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        self.logger.debug("twilio: HTTP %s", status_code)


class Pacer:
    """Spacing between dispatches: a long-run rate of `mps / (1 + headroom)`, and never more than
    `floor(mps)` dispatches in any `1 + headroom` seconds.

    Shared by the sending threads; slots are handed out under a lock, one at a time. The rate is
    a GCRA (a token bucket) with room for `depth` slots, so a thread that wakes late (the
    machine is busy) lets the next one catch up instead of losing that time for good; the window
    cap keeps the catching up from ever packing more than `mps` into a second, and its headroom
    absorbs jitter between our dispatch and Twilio's arrival.
    """

    def __init__(
        self,
        mps: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        headroom: float = _HEADROOM,
        depth: int = 2,
    ) -> None:
        if mps <= 0:
            raise ValueError(f"mps must be positive, got {mps}")
        self.interval = (1.0 + headroom) / mps
        self.window = 1.0 + headroom
        self.per_window = max(1, math.floor(mps))
        self._tolerance = (max(1, depth) - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._tat: float | None = None  # theoretical arrival time of the next slot
        self._hold_until: float | None = None
        self._recent: deque[float] = deque(maxlen=self.per_window)
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next slot is due; returns the dispatch time on `clock`."""
        with self._lock:
            while True:
                now = self._clock()
                due = now if self._tat is None else self._tat - self._tolerance
                if self._hold_until is not None:
                    due = max(due, self._hold_until)
                if len(self._recent) == self.per_window:
                    due = max(due, self._recent[0] + self.window)
                if now >= due:
                    break
                self._sleep(due - now)
            self._tat = max(self._tat if self._tat is not None else now, now) + self.interval
            self._recent.append(now)
            return now

    def defer(self, seconds: float) -> None:
        """No slot before `seconds` from now: Twilio asked everyone to slow down (429, 5xx)."""
        with self._lock:
            until = self._clock() + seconds
            self._hold_until = until if self._hold_until is None else max(self._hold_until, until)


def _error_parts(exc: TwilioRestException | TwilioServiceException) -> tuple[int, int | None, str]:
    """HTTP status, Twilio error code and message of either exception shape the SDK raises."""
    if isinstance(exc, TwilioServiceException):
        return int(exc.status), exc.code, exc.detail or exc.title or ""
    message = str(exc.msg or "")
    for prefix in ("Unable to create record: ", "Unable to fetch page: "):
        message = message.removeprefix(prefix)
    code = exc.code if isinstance(exc.code, int) else None
    return int(exc.status), code, message


@dataclass(frozen=True)
class _Transient:
    """An attempt worth repeating (429, 5xx, a connection that never opened), and how to word it
    if the attempts run out."""

    why: str  # for the retry log line: "HTTP 429", "ConnectTimeout"
    failure: str  # for the give-up log line: "HTTP 502", "no connection"
    error: str  # the failed receipt's error, before " after N attempts"
    retry_after: float | None = None  # seconds Twilio asked us to wait


def _is_transient(outcome: object) -> bool:
    """The retry predicate for sends: every other outcome is a receipt, final as it stands."""
    return isinstance(outcome, _Transient)


def _asked_wait(outcome: object) -> float | None:
    """Twilio's `Retry-After`, read on the sending thread right after the answer that carried it."""
    return outcome.retry_after if isinstance(outcome, _Transient) else None


def _is_retryable_status(status: int) -> bool:
    """429 and 5xx: Twilio is rate limiting or struggling, and the request did not take."""
    return status == 429 or status >= 500


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Twilio: the connection never opened."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        # urllib3 wraps "connection refused" / DNS failures as MaxRetryError(reason=NewConnectionError)
        inner = getattr(reason, "reason", reason)
        return type(inner).__name__ in ("NewConnectionError", "NameResolutionError")
    return False


def default_concurrency(mps: float) -> int:
    """Requests in flight to keep `mps` going while each takes up to half a second (Twilio's
    answer usually takes 0.1-0.3 s, so one request at a time would cap 10 MPS at 3-10)."""
    return max(1, min(_MAX_CONCURRENCY, math.ceil(mps * _LATENCY_BUDGET)))


def _normalized(body: str) -> str:
    return body.replace("\r\n", "\n").strip()


class TwilioChannel:
    """SMS through Twilio's Messages API; see the module docstring for pacing and fault rules.

    `reconcile` lists what Twilio has for each recipient and matches on recipient + body (bodies
    are personalized and rendered deterministically), so its answer is authoritative.
    """

    name = "twilio"
    reconcile_is_authoritative = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback_url: str | None = None,
        base_url: str = TWILIO_API,
        mps: float = 10.0,
        timeout: float = 30,
        max_retries: int = 5,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utcnow,
        concurrency: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("the Twilio channel needs an account SID and an auth token")
        if not (messaging_service_sid or from_number):
            raise ValueError("the Twilio channel needs a messaging service SID or a from number")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.status_callback_url = status_callback_url
        self.base_url = base_url.rstrip("/")
        self.mps = mps
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        self._now = now
        self.rng = rng  # the jitter's source: seeded (or stubbed) in tests, the shared default otherwise
        self.concurrency = concurrency or default_concurrency(mps)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.pacer = Pacer(mps, clock=clock, sleep=sleep)
        self._client: Client | None = None
        self._http: RedirectingHttpClient | None = None

    def __repr__(self) -> str:
        sender = f"service={self.messaging_service_sid}" if self.messaging_service_sid else "from=<number>"
        return (
            f"TwilioChannel(account={self.account_sid}, {sender}, mps={self.mps}, "
            f"concurrency={self.concurrency}, base={self.base_url})"
        )

    @property
    def client(self) -> Client:
        """The SDK client, made on first use (never at import, and not for a channel never used)."""
        if self._client is None:
            self._http = RedirectingHttpClient(
                self.base_url, timeout=self.timeout, pool_size=self.concurrency
            )
            client = Client(self.account_sid, self._auth_token, self.account_sid, http_client=self._http)
            client.edge = client.region = None  # settings decide the host, not TWILIO_EDGE/TWILIO_REGION
            self._client = client
        return self._client

    def callback_url(self, key: str) -> str | None:
        """The status callback URL for a touch: the configured one plus `touch_key=<key>`."""
        if not self.status_callback_url:
            return None
        parts = urlsplit(self.status_callback_url)
        query = [*parse_qsl(parts.query, keep_blank_values=True), ("touch_key", key)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Only through a Messaging Service, `send_at` 16 minutes to 35 days less an hour after `now`
        (Twilio's window with margins); a from-number sends at once, so it only gets what is due."""
        if not self.messaging_service_sid:
            return False
        return _SCHEDULE_MIN <= _aware(send_at, "send_at") - now <= _SCHEDULE_MAX

    def schedule_for(self, send_at: datetime) -> datetime | None:
        """When to let Twilio hold the message (a Messaging Service and send_at in its window)."""
        return send_at.astimezone(UTC) if self.can_schedule(send_at, self._now()) else None

    # -- send -----------------------------------------------------------------------------------

    def send(self, batch: Sequence[OutboundSms]) -> list[Receipt]:
        if not batch:
            return []
        _ = self.client  # made before the sending threads start
        halt = _Halt()
        workers = min(self.concurrency, len(batch))
        if workers == 1:
            receipts = [self._send_one(message, halt) for message in batch]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="twilio-send") as pool:
                receipts = list(pool.map(lambda message: self._send_one(message, halt), batch))
        counts = Counter(receipt.status for receipt in receipts)
        logger.info(
            "twilio: %d messages: %d sent, %d failed, %d opted out, %d unknown",
            len(receipts),
            counts["sent"],
            counts["failed"],
            counts["opted_out"],
            counts["unknown"],
        )
        return receipts

    def _send_one(self, message: OutboundSms, halt: _Halt) -> Receipt:
        key = message.key
        try:
            if not message.to_phone:
                raise ValueError("an SMS needs a phone number")
            _aware(message.send_at, "send_at")
        except ValueError as exc:
            logger.warning("twilio: %s not sent: %s", key, exc)
            return Receipt(key, "failed", error=f"ValueError: {exc}")
        params: dict[str, Any] = {"to": message.to_phone, "body": message.body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if self.from_number:
            params["from_"] = self.from_number
        callback = self.callback_url(key)
        if callback:
            params["status_callback"] = callback

        def attempt() -> Receipt | _Transient:
            self.pacer.wait()
            if halt.reason is not None:
                return Receipt(key, "unknown", error=halt.reason)
            scheduled = self.schedule_for(message.send_at)
            schedule = {"schedule_type": "fixed", "send_at": scheduled} if scheduled else {}
            try:
                created = self.client.messages.create(**params, **schedule)
            except (TwilioRestException, TwilioServiceException) as exc:
                status, code, text = _error_parts(exc)
                if status in (401, 403):
                    reason = f"Twilio rejected the credentials (HTTP {status}, error {code}); not sent"
                    if halt.set(reason):
                        logger.error("twilio: %s; the rest of the batch is not sent", reason)
                    return Receipt(key, "unknown", error=reason)
                if _is_retryable_status(status):
                    return _Transient(
                        why=f"HTTP {status}",
                        failure=f"HTTP {status}",
                        error=f"HTTP {status} (Twilio error {code})",
                        retry_after=retry_after_seconds(self._last_headers()),
                    )
                if code == OPTED_OUT_CODE:
                    logger.info("twilio: %s: recipient opted out (21610)", key)
                    return Receipt(key, "opted_out", error=f"Twilio error {code}: {_redact(text)}")
                logger.warning("twilio: %s failed: HTTP %s, Twilio error %s", key, status, code)
                return Receipt(key, "failed", error=f"Twilio error {code}: {_redact(text)}")
            except requests.RequestException as exc:
                if _never_sent(exc):
                    name = type(exc).__name__
                    return _Transient(why=name, failure="no connection", error=name)
                logger.warning("twilio: %s unknown: %s; reconcile before resending", key, type(exc).__name__)
                return Receipt(
                    key,
                    "unknown",
                    error=f"{type(exc).__name__}: no answer from Twilio; it may have the message",
                )
            except (TwilioException, ValueError, KeyError) as exc:  # 2xx with a body we cannot read
                logger.warning("twilio: %s unknown: unreadable answer (%s)", key, type(exc).__name__)
                return Receipt(key, "unknown", error=f"{type(exc).__name__}: unreadable answer from Twilio")
            if not created.sid:
                return Receipt(key, "unknown", error="Twilio answered without a message SID")
            return Receipt(key, "sent", provider_id=created.sid)

        def log_retry(retry: Retry) -> None:
            assert isinstance(retry.outcome, _Transient)
            logger.info(
                "twilio: %s: %s; retry %d of %d in %.2f s",
                key,
                retry.outcome.why,
                retry.attempt,
                self.max_retries,
                retry.wait,
            )

        # Waiting is the pacer's deferral: every sending thread holds, not only this one.
        outcome: Receipt | _Transient = self._policy(self.pacer.defer, log_retry)(attempt)
        if isinstance(outcome, _Transient):
            attempts = self.max_retries + 1
            logger.warning("twilio: %s failed: %s after %d attempts", key, outcome.failure, attempts)
            return Receipt(key, "failed", error=f"{outcome.error} after {attempts} attempts")
        return outcome

    def _policy(
        self,
        sleep: Callable[[float], None],
        on_retry: Callable[[Retry], None] | None = None,
        retryable: Callable[[object], bool] = _is_transient,
        retry_after: Callable[[object], float | None] = _asked_wait,
    ) -> Retrying:
        """The shared retry policy with this channel's attempts, backoff and jitter source."""
        return retrying(
            max_attempts=self.max_retries + 1,
            backoff=self.backoff,
            cap=MAX_WAIT,
            retryable=retryable,
            retry_after=retry_after,
            sleep=sleep,
            rng=self.rng,
            on_retry=on_retry,
        )

    def _last_response(self) -> Response | None:
        return self._http.last_response if self._http is not None else None

    def _last_headers(self) -> Mapping[str, Any] | None:
        """This thread's last response headers (the SDK's exceptions carry none; Retry-After is one)."""
        response = self._last_response()
        return response.headers if response is not None and response.headers else None

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile(self, batch: Sequence[OutboundSms], since: datetime) -> dict[str, Receipt]:
        """Which of these messages Twilio already has: one listing per distinct recipient.

        The listing filters on `To` only. Twilio's `DateSent` filters work on whole GMT dates and
        a queued or scheduled message has no date_sent yet, so they could hide the very message we
        look for; instead messages created before `since` (less 5 minutes of clock skew) are
        ignored here, which also keeps last week's identical reminder from matching. A recipient's
        history is short (frequency caps), one page of 1000 in practice. Each listed message
        answers for one batch message at most. Raises TwilioChannelError when Twilio cannot be
        asked: absence would otherwise read as "resend".
        """
        since = _aware(since, "since")
        if not batch:
            return {}
        by_phone: dict[str, list[OutboundSms]] = defaultdict(list)
        for message in batch:
            by_phone[message.to_phone].append(message)
        cutoff = since - _RECONCILE_SKEW
        found: dict[str, Receipt] = {}
        for phone, messages in by_phone.items():
            candidates: dict[str, list[str]] = defaultdict(list)
            listed = self._list_messages(phone)
            for item in sorted(listed, key=lambda m: m.date_created or cutoff):
                if not str(item.direction or "").startswith("outbound") or item.to != phone or not item.sid:
                    continue
                if item.date_created is not None and item.date_created < cutoff:
                    continue
                candidates[_normalized(item.body or "")].append(item.sid)
            for message in messages:
                sids = candidates.get(_normalized(message.body))
                if sids:
                    found[message.key] = Receipt(message.key, "sent", provider_id=sids.pop(0))
        logger.info(
            "twilio: reconcile: %d of %d messages found (%d recipients listed)",
            len(found),
            len(batch),
            len(by_phone),
        )
        return found

    def _list_messages(self, phone: str) -> list[Any]:
        """One recipient's messages; 429/5xx and any transport error are retried (listing is safe to
        repeat), then TwilioChannelError: Twilio could not be asked."""

        def retryable(outcome: object) -> bool:
            if isinstance(outcome, TwilioRestException | TwilioServiceException):
                return _is_retryable_status(_error_parts(outcome)[0])
            return isinstance(outcome, requests.RequestException)

        def asked_wait(outcome: object) -> float | None:
            # Read on the thread that just failed, before it sends again: its last response.
            if isinstance(outcome, TwilioRestException | TwilioServiceException):
                return retry_after_seconds(self._last_headers())
            return None

        policy = self._policy(self._sleep, retryable=retryable, retry_after=asked_wait)
        try:
            listed: list[Any] = policy(self.client.messages.list, to=phone, page_size=_PAGE_SIZE)
        except (TwilioRestException, TwilioServiceException) as exc:
            status, code, _ = _error_parts(exc)
            raise TwilioChannelError(
                f"Twilio could not list messages (HTTP {status}, error {code})"
            ) from None
        except requests.RequestException as exc:
            raise TwilioChannelError(
                f"Twilio could not list messages ({type(exc).__name__} after {self.max_retries + 1} attempts)"
            ) from None
        return listed
