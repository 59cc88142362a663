"""A loopback fake of Twilio's Messages API (2010-04-01) for tests and benchmarks.

A stdlib `ThreadingHTTPServer` on 127.0.0.1 (port 0) in a background thread. Every request is
checked for HTTP Basic auth (account SID + auth token) and validated with `openapi_core` against
the official OpenAPI spec (`twilio_api_v2010.json`, loaded once per process); a request the spec
rejects is answered 400 and kept in `spec_errors`, which tests assert empty. Responses with a 2xx
status are validated too, so the fake cannot drift from Twilio's documented shapes.

What it does: POST Messages.json creates a message (201, status `queued`, or `scheduled` with a
Messaging Service + ScheduleType=fixed + SendAt 15 min..35 days ahead, else error 35114; without a
Messaging Service the scheduling parameters are dropped, as Twilio documents), GET Messages.json
lists accepted messages newest first with the spec's filters (To, From, DateSent, DateSent<,
DateSent> on whole GMT dates, as Twilio documents) and pages. Business errors use Twilio's legacy
error body {"code", "message", "more_info", "status"}: 21211 invalid 'To' (not E.164, or listed in
`invalid_numbers`; the message quotes the number, as Twilio's does), 21610 for `opted_out`.

Faults, consumed by the next POST Messages.json: `fail_next(429, retry_after=1)`, `fail_next(500)`
(nothing is created) and `timeout_next()` (the message is created and recorded, and the answer
withheld until the client gives up: the ambiguous case). `latency` delays every answer in real
time, as Twilio's 0.1-0.3 s do, for pacing with concurrent requests.
"""

from __future__ import annotations

import base64
import collections
import functools
import hmac
import json
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.inflight import InFlight
from tests.fakes.specs import specs_dir

SPEC_FILE = "twilio_api_v2010.json"
SPEC_SERVER = "https://api.twilio.com"  # requests are validated as if sent to the spec's server

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
DEFAULT_SERVICE_SID = "MG" + "fedcba9876543210" * 2
POOL_NUMBER = "+15005550006"  # the sender a Messaging Service picks from its pool

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SCHEDULE_MIN = timedelta(minutes=15)
_SCHEDULE_MAX = timedelta(days=35)
_WITHHOLD_LIMIT = 120.0  # seconds a withheld answer waits for the client to hang up


def _phone_number(value: str) -> bool:
    """The spec's `phone-number` format, which openapi_core does not know: a number or an address.

    Whether it is a valid E.164 number is Twilio's business rule (21211), not a schema error.
    """
    return bool(re.fullmatch(r"[\w+:.@ ()-]+", value))


@functools.cache
def twilio_spec() -> tuple[OpenAPI, dict[str, Any]]:
    """The parsed spec and its validator, once per process. openapi_core resolves the 1.8 MB spec
    lazily (the spec's own meta-validation is skipped: it is Twilio's published document)."""
    path = specs_dir() / SPEC_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    config = Config(spec_validator_cls=None, extra_format_validators={"phone-number": _phone_number})
    return OpenAPI.from_dict(document, config=config), document


@functools.cache
def _known_parameters() -> dict[str, frozenset[str]]:
    """Names the spec defines for each Messages.json operation; openapi_core lets unknown ones pass."""
    _, document = twilio_spec()
    operations = document["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]
    query = {p["name"] for p in operations["get"]["parameters"] if p["in"] == "query"}
    body = operations["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return {"get": frozenset(query), "post": frozenset(body["properties"])}


@dataclass
class _SpecRequest:
    """The request adapter openapi_core's `Request` protocol asks for."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


@dataclass
class _SpecResponse:
    status_code: int
    headers: dict[str, str]
    content_type: str
    data: bytes


@dataclass
class FakeMessage:
    """A message the fake accepted; `accepted_at` is on the fake's `clock` (pacing checks)."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status: str
    status_callback: str | None
    date_created: datetime
    date_sent: datetime | None
    send_at: datetime | None
    accepted_at: float
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    status: int
    at: float


@dataclass(frozen=True)
class _Fault:
    kind: str  # "status" | "timeout"
    status: int = 0
    retry_after: float | None = None
    code: int | None = None
    message: str | None = None


class _Reply(Exception):
    def __init__(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str] | None = None):
        self.status, self.payload, self.headers = status, payload, headers or {}


def _error(status: int, code: int, message: str) -> _Reply:
    return _Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _parse_gmt_date(value: str) -> date:
    """A DateSent filter value as a GMT date: Twilio filters on whole dates."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _segments(body: str) -> int:
    gsm = all(ord(c) < 128 for c in body)
    single, multi = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as against the real API
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle + delayed ACK that costs 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        with self.server.fake.in_flight.request():
            self.server.fake._handle(self)

    def do_POST(self) -> None:
        with self.server.fake.in_flight.request():
            self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the fake's records
        pass


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a client sends many requests at
    # once (the Twilio channel keeps up to 32 in flight): real providers accept them.
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeTwilio):
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (crash trials) resets the connection: not the fake's error."""


class FakeTwilio:
    """The fake server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        opted_out: set[str] | None = None,
        invalid_numbers: set[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        validate: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.opted_out: set[str] = set(opted_out or ())
        self.invalid_numbers: set[str] = set(invalid_numbers or ())
        self.clock = clock
        self.now = now
        self.validate = validate
        self.latency = latency  # real seconds every answer takes, like Twilio's 0.1-0.3 s
        self.messages: list[FakeMessage] = []
        self.requests: list[RecordedRequest] = []
        self.spec_errors: list[str] = []
        self._faults: collections.deque[_Fault] = collections.deque()
        self._lock = threading.Lock()
        self.in_flight = InFlight()
        self._spec_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if validate:
            twilio_spec()  # load (once per process) before the first request, not during it

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 10.0) -> FakeTwilio:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Poll the health route until the serving loop answers (no fixed sleep)."""
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            session.trust_env = False
            while True:
                try:
                    if session.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fake Twilio at {self.base_url} not ready after {timeout} s")
                time.sleep(0.01)

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # releases withheld answers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Twilio is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- configuration and inspection -------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` message creations answer `status` (with `Retry-After` when given)."""
        with self._lock:
            self._faults.extend([_Fault("status", status, retry_after, code, message)] * times)

    def timeout_next(self, times: int = 1) -> None:
        """The next `times` message creations are accepted and recorded, and never answered."""
        with self._lock:
            self._faults.extend([_Fault("timeout")] * times)

    @property
    def accepted_at(self) -> list[float]:
        """Arrival times of the accepted messages on `clock`, in order (threads may finish out of it)."""
        with self._lock:
            return sorted(message.accepted_at for message in self.messages)

    def posts(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def message(self, sid: str) -> FakeMessage:
        with self._lock:
            return next(m for m in self.messages if m.sid == sid)

    def status_callbacks(
        self, status: str = "delivered", *, error_code: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """(URL, form fields) of the status callback Twilio would POST for each accepted message
        with a StatusCallback, as if it reached `status`; sign them with `signature`."""
        if error_code is None and status in ("failed", "undelivered"):
            error_code = 30003  # Unreachable destination handset
        callbacks = []
        with self._lock:
            messages = list(self.messages)
        for message in messages:
            if not message.status_callback:
                continue
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "MessageSid": message.sid,
                "SmsSid": message.sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "To": message.to,
                "From": message.from_ or POOL_NUMBER,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            callbacks.append((message.status_callback, params))
        return callbacks

    def signature(self, url: str, params: dict[str, str]) -> str:
        """X-Twilio-Signature for a callback, computed with the official RequestValidator."""
        return RequestValidator(self.auth_token).compute_signature(url, params)

    # -- request handling -------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        at = self.clock()
        split = urlsplit(handler.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        method = handler.command
        params = tuple(form if method == "POST" else query)
        try:
            try:
                self._route(handler, method, split.path, query, form, raw, at)
            except (KeyError, ValueError, TypeError) as exc:  # a fake bug or a request it cannot read
                with self._lock:
                    self.spec_errors.append(f"{method} {split.path}: the fake failed: {exc!r}")
                raise _error(500, 20500, "Internal Server Error") from None
        except _Reply as reply:
            self._record(method, split.path, params, reply.status, at)
            if reply.status == 0:  # withheld
                self._withhold(handler)
                return
            if self.latency and split.path != "/healthz":
                time.sleep(self.latency)
            self._respond(handler, method, split.path, query, raw, reply)

    def _record(
        self, method: str, path: str, params: tuple[tuple[str, str], ...], status: int, at: float
    ) -> None:
        if path == "/healthz":
            return
        with self._lock:
            self.requests.append(RecordedRequest(method, path, params, status, at))

    def _route(
        self,
        handler: _Handler,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        raw: bytes,
        at: float,
    ) -> None:
        if path == "/healthz" and method == "GET":
            raise _Reply(200, {"ok": True})
        if not self._authorized(handler.headers.get("Authorization", "")):
            raise _error(401, 20003, "Authenticate")
        match = _MESSAGES_PATH.match(path)
        if match is None or match["account"] != self.account_sid:
            raise _error(404, 20404, f"The requested resource {path} was not found")
        if self.validate:
            self._validate_request(handler, method, path, query, form, raw)
        if method == "POST":
            self._create(dict(form), form, at)
        elif method == "GET":
            self._list(path, query)
        raise _error(405, 20004, "Method not allowed")

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(password, self.auth_token)

    def _spec_request(
        self, handler: _Handler, method: str, path: str, query: list[tuple[str, str]], raw: bytes
    ) -> _SpecRequest:
        parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(handler.headers.items())),
            cookie=ImmutableMultiDict(),
            path={},
        )
        content_type = (handler.headers.get("Content-Type") or "").lower() if raw else ""
        return _SpecRequest(SPEC_SERVER, path, method.lower(), parameters, raw or None, content_type)

    def _validate_request(
        self,
        handler: _Handler,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        raw: bytes,
    ) -> None:
        openapi, _ = twilio_spec()
        problems = []
        with self._spec_lock:
            try:
                openapi.validate_request(self._spec_request(handler, method, path, query, raw))
            except Exception as exc:  # every openapi_core validation error
                cause = exc.__cause__
                detail = getattr(cause, "schema_errors", None) or cause or ""
                problems.append(f"{method} {path}: {type(exc).__name__}: {exc} {detail}".strip())
        names = [name for name, _ in (form if method == "POST" else query)]
        unknown = sorted(set(names) - _known_parameters().get(method.lower(), frozenset()))
        if unknown:
            problems.append(f"{method} {path}: parameters not in the spec: {', '.join(unknown)}")
        callback = dict(form).get("StatusCallback") if method == "POST" else None
        if callback:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
                problems.append(f"{method} {path}: StatusCallback is not a URL Twilio accepts")
        if problems:
            with self._lock:
                self.spec_errors.extend(problems)
            raise _error(400, 20001, "; ".join(problems))

    def _create(self, params: dict[str, str], form: list[tuple[str, str]], at: float) -> None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "status":
            code = fault.code or (20429 if fault.status == 429 else 20500)
            default = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            reply = _error(fault.status, code, fault.message or default)
            if fault.retry_after is not None:
                reply.headers["Retry-After"] = f"{fault.retry_after:g}"
            raise reply
        to = params.get("To", "")
        if to in self.invalid_numbers or not _E164.match(to):
            raise _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        service = params.get("MessagingServiceSid")
        sender = params.get("From")
        if not (service or sender):
            raise _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
            raise _error(400, 21602, "Message body is required.")
        now = self.now()
        send_at = None
        if service and params.get("ScheduleType") == "fixed":
            if not params.get("SendAt"):
                raise _error(400, 35114, "Scheduling does not support this timestamp")
            send_at = datetime.fromisoformat(params["SendAt"].replace("Z", "+00:00"))
            if not _SCHEDULE_MIN <= send_at - now <= _SCHEDULE_MAX:
                raise _error(400, 35114, "Scheduling does not support this timestamp")
        if to in self.opted_out:
            raise _error(400, 21610, "Attempt to send to unsubscribed recipient")
        message = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=sender,
            body=params.get("Body", ""),
            messaging_service_sid=service,
            status="scheduled" if send_at else "queued",
            status_callback=params.get("StatusCallback"),
            date_created=now,
            date_sent=None if send_at else now,
            send_at=send_at,
            accepted_at=at,
            params=dict(form),
        )
        with self._lock:
            self.messages.append(message)
        if fault is not None and fault.kind == "timeout":
            raise _Reply(0, None)
        raise _Reply(201, self._resource(message))

    def _list(self, path: str, query: list[tuple[str, str]]) -> None:
        filters = dict(query)
        with self._lock:
            messages = list(self.messages)
        if "To" in filters:
            messages = [m for m in messages if m.to == filters["To"]]
        if "From" in filters:
            messages = [m for m in messages if (m.from_ or POOL_NUMBER) == filters["From"]]
        for name, keep in (
            ("DateSent", lambda d, v: d == v),
            ("DateSent<", lambda d, v: d <= v),
            ("DateSent>", lambda d, v: d >= v),
        ):
            if name in filters:
                day = _parse_gmt_date(filters[name])
                messages = [
                    m
                    for m in messages
                    if m.date_sent is not None and keep(m.date_sent.astimezone(UTC).date(), day)
                ]
        messages.sort(key=lambda m: (m.date_sent or m.date_created, m.date_created), reverse=True)
        size = max(1, min(int(filters.get("PageSize", 50)), 1000))
        page = max(0, int(filters.get("Page", 0)))
        chunk = messages[page * size : (page + 1) * size]
        kept = [(k, v) for k, v in query if k not in ("Page", "PageSize", "PageToken")]

        def uri(number: int) -> str:
            extra = [("PageSize", str(size)), ("Page", str(number))]
            if number:
                extra.append(("PageToken", f"PA{number * size}"))
            return f"{path}?{urlencode(kept + extra)}"

        more = (page + 1) * size < len(messages)
        raise _Reply(
            200,
            {
                "messages": [self._resource(m) for m in chunk],
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page else None,
                "start": page * size,
                "uri": uri(page),
            },
        )

    def _resource(self, message: FakeMessage) -> dict[str, Any]:
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": format_datetime(message.date_created.astimezone(UTC), usegmt=False),
            "date_sent": format_datetime(message.date_sent.astimezone(UTC)) if message.date_sent else None,
            "date_updated": format_datetime(message.date_created.astimezone(UTC)),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(_segments(message.body)),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": message.to,
            "uri": f"{base}.json",
        }

    def _respond(
        self,
        handler: _Handler,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        raw: bytes,
        reply: _Reply,
    ) -> None:
        data = json.dumps(reply.payload).encode("utf-8")
        if self.validate and 200 <= reply.status < 300 and path != "/healthz":
            openapi, _ = twilio_spec()
            with self._spec_lock:
                try:
                    openapi.validate_response(
                        self._spec_request(handler, method, path, query, raw),
                        _SpecResponse(reply.status, {}, "application/json", data),
                    )
                except Exception as exc:  # a fake bug: its answer is not what the spec documents
                    with self._lock:
                        self.spec_errors.append(f"response to {method} {path}: {exc} {exc.__cause__ or ''}")
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _withhold(self, handler: _Handler) -> None:
        """Answer nothing; wait until the client hangs up (its timeout) or the fake stops."""
        handler.close_connection = True
        connection = handler.connection
        deadline = time.monotonic() + _WITHHOLD_LIMIT
        while not self._stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([connection], [], [], 0.05)
            if readable:
                try:
                    if not connection.recv(1, 0):
                        return  # the client closed the connection
                except OSError:
                    return


def iter_windows(times: list[float], width: float = 1.0) -> Iterator[int]:
    """For each timestamp, how many timestamps fall in [t, t + width): the pacing measure."""
    ordered = sorted(times)
    end = 0
    for start, moment in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] < moment + width:
            end += 1
        yield end - start


def max_in_window(times: list[float], width: float = 1.0) -> int:
    return max(iter_windows(times, width), default=0)
