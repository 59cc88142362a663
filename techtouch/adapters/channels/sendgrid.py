"""The SendGrid email channel: many recipients per v3 mail/send request, every fault sorted into receipts.

Copy is rendered by us (the Jinja templates versioned with the journeys are the single source of
truth; SendGrid dynamic templates would move the copy out of the repository). To still send up to
1,000 recipients in one request, messages with the same sender and categories share one request
whose `content` is the tags `-techtouch.text-` and `-techtouch.html-`, and each
`personalizations[]` entry carries that recipient's rendered text and HTML as `substitutions`,
plus its own `to`, `subject` (a personalization may set it: no substitution needed), `headers`
(List-Unsubscribe differs per recipient), `custom_args` (`touch_key`, so webhook events find the
touch) and `send_at`. The tags are namespaced because SendGrid substitutes wherever a tag occurs,
and plain `-text-` occurs in real copy ("plain-text-only"). A personalization's substitutions may
not exceed 10,000 bytes (UTF-8, tags included); a message over that, one whose copy contains our
tag prefix, or one with an empty text or HTML part goes alone in a request with literal `content`.

`send_at` (unix seconds): omitted when due (SendGrid sends at once). SendGrid refuses a `send_at`
more than 72 hours ahead; such a message is scheduled `SCHEDULE_LIMIT` (71 h, leaving room for
retries and clock skew) from now, that is early rather than never, and a warning names its touch.
The delivery layer does not hand over messages due later than that (`can_schedule`).

Faults, per request: 429 and 5xx (and a connection that could not be made: nothing was sent)
are retried under the one policy of techtouch.adapters.retry: `Retry-After` honoured when present,
else exponential backoff with full jitter (a wait drawn from [0, `backoff * 2**n`]), every wait
capped at `RETRY_AFTER_CAP`; after `max_retries` the request's messages fail with the reason.
A 400 naming personalizations (`errors[].field` = `personalizations.3.to.0.email`) fails those
messages and resends the rest once; a 400 it cannot attribute fails the request's messages. A
413 splits the request in two. A timeout or reset after the request went out is ambiguous: the
messages are `unknown` and never resent. 401/403 (and 404/405: a wrong host) raise
`SendGridConfigurationError`; no message is failed for them. The same touch key twice in one
batch is sent once; both positions get its receipt.

Logs carry counts and touch keys only: never addresses, names, copy or the API key (the HTTP
library's own debug lines, which print the payload and the Authorization header, are dropped).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import time
import urllib.error
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sendgrid
from python_http_client.exceptions import HTTPError

from techtouch.adapters.channels.base import OutboundEmail, Receipt
from techtouch.adapters.retry import MAX_WAIT, Retry, retry_after_seconds, retrying

logger = logging.getLogger(__name__)

TEXT_TAG = "-techtouch.text-"
HTML_TAG = "-techtouch.html-"
TAGS = (TEXT_TAG, HTML_TAG)
_TAG_PREFIX = "-techtouch."
_TAGS_SIZE = sum(len(tag) for tag in TAGS)
MAX_PERSONALIZATIONS = 1000  # per request (spec: personalizations.maxItems)
SUBSTITUTIONS_LIMIT = 10_000  # bytes of substitution tags + values per personalization (SendGrid docs)
CUSTOM_ARGS_LIMIT = 10_000  # bytes of custom_args per personalization (spec)
MAX_CATEGORIES = 10  # spec: categories.maxItems
CATEGORY_MAX_LENGTH = 255  # spec: categories.items.maxLength
SCHEDULE_LIMIT = 71 * 3600  # seconds ahead we schedule at most; SendGrid's limit is 72 h
RETRY_AFTER_CAP = MAX_WAIT  # seconds; a larger Retry-After (or backoff) is waited for this long
ERROR_MAX_LENGTH = 500
# Headers SendGrid does not let a message set (spec: personalizations.headers).
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
CONFIGURATION_STATUSES = {
    401: "SendGrid refused the API key (HTTP 401): check TECHTOUCH_SENDGRID_API_KEY",
    403: "the SendGrid API key may not send mail (HTTP 403): give it the mail.send scope",
    404: "no SendGrid mail/send endpoint at the configured host (HTTP 404): check TECHTOUCH_SENDGRID_HOST",
    405: "the configured host does not accept mail/send (HTTP 405): check TECHTOUCH_SENDGRID_HOST",
}

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_ADDRESS = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+")
_PERSONALIZATION_FIELD = re.compile(r"personalizations(?:\.|\[)(\d+)\]?(?:\.|$)")
_LIBRARY_LOGGER = "python_http_client.client"


class SendGridConfigurationError(RuntimeError):
    """The account or host is misconfigured (401/403/404/405): no message is at fault.

    `receipts` holds the receipts settled before the error (earlier requests of the same `send`);
    messages without one were not sent by this call."""

    def __init__(self, message: str, receipts: Sequence[Receipt] = ()):
        super().__init__(message)
        self.receipts = list(receipts)


@dataclass
class _Item:
    position: int
    message: OutboundEmail
    personalization: dict[str, Any]
    categories: tuple[str, ...]
    literal: bool


@dataclass
class _Outcome:
    """One request's result; `transient` (429, 5xx, unreachable) is the only kind worth retrying."""

    kind: Literal["accepted", "failed", "unknown", "rejected", "too_large", "transient"]
    message_id: str | None = None
    reason: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None  # seconds SendGrid asked us to wait (transient only)


def _is_transient(outcome: object) -> bool:
    """The retry predicate: only a transient outcome; exceptions (configuration errors) propagate."""
    return isinstance(outcome, _Outcome) and outcome.kind == "transient"


def _asked_wait(outcome: object) -> float | None:
    """SendGrid's `Retry-After`, parsed when the answer came (the wait is decided after it)."""
    return outcome.retry_after if isinstance(outcome, _Outcome) else None


class _DropLibraryDebug(logging.Filter):
    """python_http_client logs the whole payload (addresses) and headers (the API key) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _quiet_library_logging() -> None:
    library = logging.getLogger(_LIBRARY_LOGGER)
    if not any(isinstance(f, _DropLibraryDebug) for f in library.filters):
        library.addFilter(_DropLibraryDebug())


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())  # isascii() is O(1) in CPython


def _scrub(text: str) -> str:
    """Error text from the provider, without email addresses and of bounded length."""
    cleaned = _ADDRESS.sub("<address>", " ".join(text.split()))
    return cleaned if len(cleaned) <= ERROR_MAX_LENGTH else cleaned[: ERROR_MAX_LENGTH - 1] + "…"


def _keys(items: Iterable[_Item], limit: int = 10) -> str:
    keys = [item.message.key for item in items]
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _error_list(body: bytes | str | None) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _describe(error: Mapping[str, Any]) -> str:
    field_ = error.get("field")
    message = str(error.get("message") or "rejected")
    return _scrub(f"{field_}: {message}" if field_ and field_ != "null" else message)


def _summary(errors: Sequence[Mapping[str, Any]], status: int) -> str:
    described = "; ".join(_describe(e) for e in errors) or "no details"
    return _scrub(f"rejected by SendGrid (HTTP {status}): {described}")


def _attribute(errors: Sequence[Mapping[str, Any]], count: int) -> dict[int, list[str]] | None:
    """Personalization index -> reasons, when every error names a personalization of the request."""
    named: dict[int, list[str]] = {}
    for error in errors:
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match is None or int(match[1]) >= count:
            return None
        named.setdefault(int(match[1]), []).append(_describe(error))
    return named or None


class SendGridChannel:
    """Sends OutboundEmail batches through SendGrid's v3 mail/send with the official library.

    `reconcile` returns {}: SendGrid has no API to look a message up by `custom_args`, so the
    delivery layer settles `unknown` (and crashed-in-flight) touches from Event Webhook events,
    which carry `touch_key`, and a grace period. Accepted messages get the request's
    `X-Message-Id` as provider_id; SendGrid's per-recipient `sg_message_id` in those events starts
    with it (`<x-message-id>.filter…`).
    """

    name = "sendgrid"
    reconcile_is_authoritative = False

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        timeout: float = 30,
        max_retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        batch_size: int = 1000,
        rng: random.Random | None = None,
    ):
        if not api_key:
            raise ValueError("SendGridChannel needs an API key")
        if not 1 <= batch_size <= MAX_PERSONALIZATIONS:
            raise ValueError(f"batch_size must be 1-{MAX_PERSONALIZATIONS}, got {batch_size}")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ValueError("timeout must be positive; max_retries and backoff not negative")
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.batch_size = batch_size
        self.rng = rng  # the jitter's source: seeded (or stubbed) in tests, the shared default otherwise
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)
        _quiet_library_logging()

    def __repr__(self) -> str:
        return f"SendGridChannel({self.host!r}, batch_size={self.batch_size})"

    # -- the EmailChannel protocol ------------------------------------------------------------

    def send(self, batch: Sequence[OutboundEmail]) -> list[Receipt]:
        """One receipt per message, in order. Raises SendGridConfigurationError (see the class)."""
        receipts: dict[int, Receipt] = {}
        first: dict[str, int] = {}
        duplicates: dict[int, int] = {}
        groups: dict[tuple[Any, ...], list[_Item]] = {}
        singles: list[_Item] = []
        now = time.time()
        for position, message in enumerate(batch):
            if message.key in first:  # the same touch twice: sent once, same receipt
                duplicates[position] = first[message.key]
                continue
            first[message.key] = position
            try:
                item = self._prepare(position, message, now)
            except (ValueError, TypeError) as exc:
                logger.warning("sendgrid: %s not sent: %s", message.key, exc)
                receipts[position] = Receipt(message.key, "failed", error=f"not sent: {exc}")
                continue
            if item.literal:
                singles.append(item)
            else:  # what the request's message-level fields need to share
                groups.setdefault((message.from_email, message.from_name, item.categories), []).append(item)
        requests = [
            items[start : start + self.batch_size]
            for items in groups.values()
            for start in range(0, len(items), self.batch_size)
        ] + [[item] for item in singles]
        try:
            for items in requests:
                self._deliver(items, receipts, resend=True)
        except SendGridConfigurationError as exc:
            exc.receipts = [receipts[p] for p in sorted(receipts)]
            logger.error("sendgrid: %s; %d receipts settled before it", exc, len(exc.receipts))
            raise
        for position, original in duplicates.items():
            receipts[position] = receipts[original]
        ordered = [receipts[position] for position in range(len(batch))]
        if ordered:
            counts = {
                status: sum(r.status == status for r in ordered) for status in ("sent", "failed", "unknown")
            }
            logger.info(
                "sendgrid: %d messages in %d requests: %d sent, %d failed, %d unknown",
                len(ordered),
                len(requests),
                counts["sent"],
                counts["failed"],
                counts["unknown"],
            )
        return ordered

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """`send_at` up to `SCHEDULE_LIMIT` (71 h, SendGrid allows 72) after `now`."""
        return 0 < (send_at - now).total_seconds() <= SCHEDULE_LIMIT

    def reconcile(self, batch: Sequence[Any], since: datetime | None = None) -> dict[str, Receipt]:
        """Always {}: SendGrid cannot be asked by touch key; webhook events settle ambiguity."""
        return {}

    # -- building requests ----------------------------------------------------------------------

    def _prepare(self, position: int, message: OutboundEmail, now: float) -> _Item:
        """Checks what SendGrid would refuse for this message alone and builds its personalization."""
        if not message.key:
            raise ValueError("a message needs a non-empty key")
        for what, address in (("recipient", message.to_email), ("sender", message.from_email)):
            if not _ADDRESS.fullmatch(address or ""):
                raise ValueError(f"the {what} address is not valid")
        if not message.subject.strip():
            raise ValueError("the subject is empty")
        if not (message.text or message.html):
            raise ValueError("the message has neither text nor HTML")
        if message.send_at.tzinfo is None or message.send_at.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware")
        headers = dict(message.headers)
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} may not be set")
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} must be one line of text")
        custom_args = {**message.custom_args, "touch_key": message.key}
        if not all(isinstance(v, str) for v in custom_args.values()):
            raise TypeError("custom_args values must be strings")
        if sum(_utf8_size(k) + _utf8_size(v) + 6 for k, v in custom_args.items()) > CUSTOM_ARGS_LIMIT:
            raise ValueError(f"custom_args exceed {CUSTOM_ARGS_LIMIT} bytes")

        recipient: dict[str, str] = {"email": message.to_email}
        if message.to_name:
            recipient["name"] = message.to_name
        personalization: dict[str, Any] = {
            "to": [recipient],
            "subject": message.subject,
            "custom_args": custom_args,
        }
        if headers:
            personalization["headers"] = headers
        send_at = self._send_at(message, now)
        if send_at is not None:
            personalization["send_at"] = send_at

        size = _TAGS_SIZE + _utf8_size(message.text) + _utf8_size(message.html)
        # SendGrid substitutes in the subject and content (and maybe headers): a tag in our copy would
        # be replaced too. Any text with the tags' common prefix goes literal, to be safe.
        tagged = any(
            _TAG_PREFIX in value
            for value in (
                message.text,
                message.html,
                message.subject,
                message.to_name or "",
                *headers.values(),
            )
        )
        literal = size > SUBSTITUTIONS_LIMIT or tagged or not message.text or not message.html
        if not literal:
            personalization["substitutions"] = {TEXT_TAG: message.text, HTML_TAG: message.html}
        return _Item(position, message, personalization, _categories(message), literal)

    @staticmethod
    def _send_at(message: OutboundEmail, now: float) -> int | None:
        wanted = message.send_at.timestamp()
        if wanted <= now:
            return None  # due: SendGrid sends at once
        if wanted > now + SCHEDULE_LIMIT:
            logger.warning(
                "sendgrid: %s is due in %.0f h, beyond SendGrid's 72 h; scheduled %d h from now instead",
                message.key,
                (wanted - now) / 3600,
                SCHEDULE_LIMIT // 3600,
            )
            return int(now + SCHEDULE_LIMIT)
        return int(wanted)

    @staticmethod
    def _body(items: Sequence[_Item]) -> dict[str, Any]:
        head = items[0].message
        sender: dict[str, str] = {"email": head.from_email}
        if head.from_name:
            sender["name"] = head.from_name
        if items[0].literal:
            content = [
                {"type": t, "value": v} for t, v in (("text/plain", head.text), ("text/html", head.html)) if v
            ]
        else:
            content = [{"type": "text/plain", "value": TEXT_TAG}, {"type": "text/html", "value": HTML_TAG}]
        body: dict[str, Any] = {
            "personalizations": [item.personalization for item in items],
            "from": sender,
            "content": content,
        }
        if items[0].categories:
            body["categories"] = list(items[0].categories)
        return body

    # -- sending ------------------------------------------------------------------------------

    def _deliver(self, items: list[_Item], receipts: dict[int, Receipt], *, resend: bool) -> None:
        outcome = self._post(self._body(items), len(items))
        if outcome.kind == "accepted":
            for item in items:
                receipts[item.position] = Receipt(item.message.key, "sent", provider_id=outcome.message_id)
            return
        if outcome.kind in ("failed", "unknown"):
            logger.warning(
                "sendgrid: %d messages %s: %s (%s)", len(items), outcome.kind, outcome.reason, _keys(items)
            )
            for item in items:
                receipts[item.position] = Receipt(item.message.key, outcome.kind, error=outcome.reason)
            return
        if outcome.kind == "too_large":
            if len(items) > 1:
                half = len(items) // 2
                logger.warning("sendgrid: request too large; splitting %d messages in two", len(items))
                self._deliver(items[:half], receipts, resend=resend)
                self._deliver(items[half:], receipts, resend=resend)
            else:
                for item in items:
                    receipts[item.position] = Receipt(item.message.key, "failed", error=outcome.reason)
            return
        # 400: fail what SendGrid names, resend the rest once; fail everything if it names nothing.
        named = _attribute(outcome.errors, len(items))
        summary = _summary(outcome.errors, 400)
        if named is None:
            logger.warning("sendgrid: %d messages rejected: %s (%s)", len(items), summary, _keys(items))
            for item in items:
                receipts[item.position] = Receipt(item.message.key, "failed", error=summary)
            return
        rest = [item for index, item in enumerate(items) if index not in named]
        rejected = [items[index] for index in sorted(named)]
        logger.warning("sendgrid: %d messages rejected by SendGrid (%s)", len(rejected), _keys(rejected))
        for index, reasons in named.items():
            item = items[index]
            error = _scrub("rejected by SendGrid (HTTP 400): " + "; ".join(reasons))
            receipts[item.position] = Receipt(item.message.key, "failed", error=error)
        if not rest:
            return
        if resend:
            logger.info("sendgrid: resending the other %d messages of the rejected request", len(rest))
            self._deliver(rest, receipts, resend=False)
            return
        error = _scrub(f"not sent: the request was rejected again after a resend: {summary}")
        for item in rest:
            receipts[item.position] = Receipt(item.message.key, "failed", error=error)

    def _post(self, body: dict[str, Any], count: int) -> _Outcome:
        """One request, retried while SendGrid asks us to (429, 5xx) or could not be reached."""

        def log_retry(retry: Retry) -> None:
            assert isinstance(retry.outcome, _Outcome)
            logger.warning(
                "sendgrid: %s for %d messages; retry %d of %d in %.2f s",
                retry.outcome.reason,
                count,
                retry.attempt,
                self.max_retries,
                retry.wait,
            )

        policy = retrying(
            max_attempts=self.max_retries + 1,
            backoff=self.backoff,
            cap=RETRY_AFTER_CAP,
            retryable=_is_transient,
            retry_after=_asked_wait,
            sleep=self.sleep,
            rng=self.rng,
            on_retry=log_retry,
        )
        outcome: _Outcome = policy(self._attempt, body)
        if outcome.kind == "transient":
            return _Outcome(
                "failed", reason=f"{outcome.reason}; gave up after {self.max_retries + 1} attempts"
            )
        return outcome

    def _attempt(self, body: dict[str, Any]) -> _Outcome:
        """One try of a request, its fault sorted; raises SendGridConfigurationError (never retried)."""
        try:
            response = self._client.client.mail.send.post(request_body=body, timeout=self.timeout)
        except HTTPError as exc:
            status = int(exc.status_code)
            if status in CONFIGURATION_STATUSES:
                raise SendGridConfigurationError(CONFIGURATION_STATUSES[status]) from None
            errors = _error_list(exc.body)
            if status == 429 or status >= 500:
                return _Outcome(
                    "transient",
                    reason=f"SendGrid answered HTTP {status}",
                    retry_after=retry_after_seconds(exc.headers, cap=RETRY_AFTER_CAP),
                )
            if status == 400:
                return _Outcome("rejected", errors=errors)
            if status == 413:
                return _Outcome("too_large", reason=_summary(errors, status))
            return _Outcome("failed", reason=_summary(errors, status))
        except urllib.error.URLError as exc:
            # Raised while connecting or sending the request: SendGrid did not get all of it.
            reason = f"not sent: SendGrid unreachable ({type(exc.reason).__name__})"
            return _Outcome("transient", reason=reason)
        except (OSError, http.client.HTTPException) as exc:
            # After the request went out (no answer, reset, truncated answer): it may have been
            # accepted. Resending could send twice; webhook events will tell.
            return _Outcome(
                "unknown",
                reason=f"ambiguous: {type(exc).__name__} after the request was sent; SendGrid may "
                "have accepted it (settle from webhook events, do not resend)",
            )
        message_id = response.headers.get("X-Message-Id") if response.headers is not None else None
        if not message_id:
            logger.warning("sendgrid: HTTP %s without X-Message-Id", response.status_code)
        return _Outcome("accepted", message_id=message_id or None)


def _categories(message: OutboundEmail) -> tuple[str, ...]:
    """Unique, non-empty, at most 10 of at most 255 characters (SendGrid refuses more)."""
    seen: dict[str, None] = {}
    for category in message.categories:
        if category:
            seen.setdefault(category[:CATEGORY_MAX_LENGTH], None)
    categories = tuple(seen)
    if len(categories) > MAX_CATEGORIES or any(len(c) > CATEGORY_MAX_LENGTH for c in message.categories):
        logger.warning("sendgrid: %s: categories trimmed to SendGrid's limits", message.key)
    return categories[:MAX_CATEGORIES]
