"""Bounded requests, from outside: a real uvicorn server and raw HTTP/1.1 on a socket (issue 13, point 10).

TestClient hands the app a body it already holds, so it cannot show what happens while a body is
arriving: here the server is the one `techtouch serve` runs (uvicorn, same options) on 127.0.0.1,
in a thread so that its engine can wait for locks only briefly, and requests are written byte by
byte where it matters. A request whose body is deliberately never finished proves that the answer
came without reading it: on a server that waits for the body, the socket times out instead.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, make_url
from sqlalchemy import select as sql_select
from twilio.request_validator import RequestValidator

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Contact, Enrollment, Suppression, Touch
from techtouch.adapters.render.links import LinkSigner
from techtouch.entrypoints.web import create_app
from techtouch.settings import Settings
from tests.integration.test_webhooks import (
    PHONE_1,
    PUBLIC_URL,
    SECRET,
    TWILIO_TOKEN,
    _account,
    _contact,
    _touch,
    inbound_sms,
    public_key_b64,
    sg_event,
    sign_sendgrid,
    snapshot,
)

KIB = 1024
WEBHOOK_LIMIT = 1024 * KIB  # the defaults of webhook_max_bytes and form_max_bytes
FORM_LIMIT = 64 * KIB
PROMPT = 10.0  # seconds: an answer that takes longer than this was waiting for the body
T_MAIL = "onboarding/a1/1/welcome/email_1/c1"


# ------------------------------------------------------------------------------------- the server


@dataclass
class Served:
    port: int
    engine: Engine  # the test's own engine (the server has one that gives up on locks quickly)
    db_url: str
    sendgrid_key: ec.EllipticCurvePrivateKey
    signer: LinkSigner


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def base(engine: Engine) -> Engine:
    """One account, one contact with an address and a phone, and one email touch already sent."""
    with engine.begin() as c:
        insert_rows(c, Account.__table__, [_account("a1")])
        insert_rows(c, Contact.__table__, [_contact("c1", "a1", "ada@customer.example", PHONE_1)])
        enrollment = {
            "journey": "onboarding",
            "cycle": 1,
            "status": "active",
            "entered_as_of": date(2027, 1, 1),
        }
        enrollment |= {"milestone": "welcome", "phase": "active", "step": 1, "entry": {}, "account_id": "a1"}
        insert_rows(c, Enrollment.__table__, [enrollment])
        enrollment_id = c.scalar(sql_select(Enrollment.id))
        insert_rows(
            c,
            Touch.__table__,
            [_touch(T_MAIL, enrollment_id, "a1", "c1", "email", "sent", provider_id="sg1")],
        )
    return engine


def impatient_engine(db_url: str) -> Engine:
    """The server's engine: it waits 0.2 s for a lock (SQLite's busy timeout, PostgreSQL's
    lock_timeout) instead of 30 s, so that a held lock outlasts every retry within the test."""
    if make_url(db_url).get_backend_name() == "sqlite":
        return make_engine(db_url, connect_args={"timeout": 0.2})
    return make_engine(db_url, connect_args={"options": "-c lock_timeout=200"})


@pytest.fixture
def served(
    base: Engine, db_url: str, tmp_path: Path, sendgrid_key: ec.EllipticCurvePrivateKey
) -> Iterator[Served]:
    settings = Settings(
        database_url=db_url,
        outbox_dir=tmp_path / "outbox",
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        sendgrid_webhook_public_key=public_key_b64(sendgrid_key),
        twilio_auth_token=TWILIO_TOKEN,
    )
    server_engine = impatient_engine(db_url)
    service = create_app(bootstrap.build(settings, engine=server_engine))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    # As `techtouch serve` configures it (techtouch.entrypoints.cli.serve), quieter.
    config = uvicorn.Config(service, host="127.0.0.1", port=port, proxy_headers=True, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Served(port, base, db_url, sendgrid_key, LinkSigner(PUBLIC_URL, SECRET.encode()))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        server_engine.dispose()


# ------------------------------------------------------------------------------------- raw HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: cs.example.com", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket) -> Answer:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def exchange(port: int, request: bytes, chunks: Iterator[bytes] | list[bytes] = ()) -> Answer:
    """Send `request` (head and whatever body it carries), then `chunks` one at a time, stopping
    as soon as the server answers; the answer must come within PROMPT seconds of the last byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as sock:
        sock.sendall(request)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered: stop sending, as a client reading the response would
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            return read_answer(sock)
        except TimeoutError:
            pytest.fail(f"no answer within {PROMPT} s: the server was waiting for the rest of the body")


def chunked(total: int, size: int = 16 * KIB, *, finish: bool = False) -> Iterator[bytes]:
    """`total` bytes of chunked body ('a' * size per chunk); the last chunk only if `finish`."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield f"{n:x}\r\n".encode() + b"a" * n + b"\r\n"
        sent += n
    if finish:
        yield b"0\r\n\r\n"


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    return exchange(port, head("POST", path, headers | {"Content-Length": str(len(body))}) + body)


def post_sendgrid(served: Served, body: bytes) -> Answer:
    return post(served.port, "/webhooks/sendgrid", body, sign_sendgrid(served.sendgrid_key, body))


def twilio_headers(path: str, params: dict[str, str]) -> dict[str, str]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", params)
    return {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}


def post_twilio(served: Served, path: str, params: dict[str, str]) -> Answer:
    return post(served.port, path, urlencode(params).encode(), twilio_headers(path, params))


def suppressions(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as c:
        rows = c.execute(sql_select(Suppression.contact_id, Suppression.channel, Suppression.reason))
        return {(contact, channel): reason for contact, channel, reason in rows}


def unsubscribe_path(served: Served) -> str:
    return urlsplit(served.signer.unsubscribe("c1")).path


# ------------------------------------------------------------------------------- sizes, declared


@pytest.mark.parametrize(
    ("route", "limit"),
    [
        ("sendgrid", WEBHOOK_LIMIT),
        ("twilio", FORM_LIMIT),
        ("unsubscribe", FORM_LIMIT),
        ("health", FORM_LIMIT),
    ],
)
def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    served: Served, route: str, limit: int
) -> None:
    """Only the head is sent: the 413 cannot have come from reading (or parsing) the body."""
    paths = {
        "sendgrid": ("POST", "/webhooks/sendgrid", sign_sendgrid(served.sendgrid_key, b"[]")),
        "twilio": ("POST", "/webhooks/twilio/inbound", twilio_headers("/webhooks/twilio/inbound", {})),
        "unsubscribe": (
            "POST",
            unsubscribe_path(served),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "health": ("GET", "/healthz", {}),
    }
    method, path, headers = paths[route]
    state = snapshot(served.engine)
    answer = exchange(served.port, head(method, path, headers | {"Content-Length": str(limit + 1)}))
    assert answer.status == 413, answer
    assert str(limit) in answer.json()["error"]
    assert answer.headers.get("connection") == "close"
    assert snapshot(served.engine) == state  # the one-click unsubscribe did not go through either


def test_a_body_at_the_limit_is_read_whole(served: Served) -> None:
    """The limit is inclusive: a signed form of exactly `form_max_bytes` is read, verified and parsed
    (then refused by the service for the fields it lacks, which it can only know from the whole form)."""
    params = {"Body": "x" * (FORM_LIMIT - len("Body="))}
    assert len(urlencode(params)) == FORM_LIMIT
    answer = post_twilio(served, "/webhooks/twilio/inbound", params)
    assert answer.status == 400, answer
    assert "missing form field" in answer.json()["error"]


# ------------------------------------------------------------------------------- sizes, chunked


@pytest.mark.parametrize("finish", [False, True], ids=["never-finished", "finished"])
def test_a_chunked_body_over_the_limit_is_cut_off_while_it_is_read(served: Served, finish: bool) -> None:
    """No length up front: the body is counted as it arrives and refused when it crosses the limit
    (never finished: the server cannot have waited for its end). Signed headers, so the route reads it."""
    headers = sign_sendgrid(served.sendgrid_key, b"[]") | {"Transfer-Encoding": "chunked"}
    request = head("POST", "/webhooks/sendgrid", headers)
    answer = exchange(served.port, request, chunked(WEBHOOK_LIMIT + 64 * KIB, finish=finish))
    assert answer.status == 413, answer
    assert answer.headers.get("connection") == "close"

    form = twilio_headers("/webhooks/twilio/status", {}) | {"Transfer-Encoding": "chunked"}
    answer = exchange(
        served.port, head("POST", "/webhooks/twilio/status", form), chunked(FORM_LIMIT + 16 * KIB)
    )
    assert answer.status == 413, answer


def test_a_chunked_body_under_the_limit_goes_through(served: Served) -> None:
    body = json.dumps([sg_event("open", "no-such-touch", "ev-chunked")]).encode()
    headers = sign_sendgrid(served.sendgrid_key, body) | {"Transfer-Encoding": "chunked"}
    pieces = [
        f"{len(body[i : i + 7]):x}\r\n".encode() + body[i : i + 7] + b"\r\n" for i in range(0, len(body), 7)
    ]
    answer = exchange(served.port, head("POST", "/webhooks/sendgrid", headers), [*pieces, b"0\r\n\r\n"])
    assert answer.status == 200, answer
    assert answer.json()["unknown"] == 1


# -------------------------------------------------------------------------- checked before parsed


def test_unsigned_requests_are_refused_with_their_body_unread(served: Served) -> None:
    """A body under the limit, announced but never sent: the refusal comes from the headers alone."""
    declared = {"Content-Length": str(60 * KIB)}
    cases = {
        "sendgrid unsigned": ("/webhooks/sendgrid", {"Content-Type": "application/json"}, 403),
        "sendgrid stale": (
            "/webhooks/sendgrid",
            sign_sendgrid(served.sendgrid_key, b"[]", int(time.time()) - 3600),
            403,
        ),
        "twilio unsigned": (
            "/webhooks/twilio/inbound",
            {"Content-Type": "application/x-www-form-urlencoded"},
            403,
        ),
        "twilio not a form": (
            "/webhooks/twilio/status",
            {"X-Twilio-Signature": "c2lnbmF0dXJl", "Content-Type": "application/json"},
            400,
        ),
        # Links check their token before any form is read (regression guard: this held before).
        "tampered preferences link": (
            "/p/eyJjb250YWN0IjoiYzEifQ.forged",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
        ),
    }
    state = snapshot(served.engine)
    for name, (path, headers, status) in cases.items():
        answer = exchange(served.port, head("POST", path, headers | declared) + b"channel=email&")
        assert answer.status == status, (name, answer)
    assert snapshot(served.engine) == state


def test_a_huge_unsigned_body_is_refused_without_parsing(served: Served) -> None:
    """Sent whole, a body over the limit is 413 whether or not it is signed: it is never buffered."""
    body = b"[" + b'{"event":"unsubscribe","email":"ada@customer.example","timestamp":1},' * 20_000 + b"{}]"
    assert len(body) > WEBHOOK_LIMIT
    answer = exchange(
        served.port,
        head(
            "POST",
            "/webhooks/sendgrid",
            {"Content-Type": "application/json", "Content-Length": str(len(body))},
        ),
        [body[i : i + 64 * KIB] for i in range(0, len(body), 64 * KIB)],
    )
    assert answer.status == 413, answer
    assert suppressions(served.engine) == {}


# --------------------------------------------------------------------------------- what is parsed


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # Python's json would raise RecursionError: a 500
        json.dumps(
            [sg_event("open", T_MAIL, "ev-deep") | {"args": json.loads("[" * 40 + "]" * 40)}]
        ).encode(),
    ],
    ids=["100000-levels", "40-levels-inside-an-event"],
)
def test_deeply_nested_json_with_a_valid_signature_is_400(served: Served, body: bytes) -> None:
    state = snapshot(served.engine)
    answer = post_sendgrid(served, body)
    assert answer.status == 400, answer
    assert "nested deeper than 32 levels" in answer.json()["error"]
    assert snapshot(served.engine) == state


def test_a_batch_of_too_many_events_is_413(served: Served) -> None:
    events = [{"event": "open", "timestamp": 1_700_000_000, "sg_event_id": f"e{i}"} for i in range(10_001)]
    body = json.dumps(events, separators=(",", ":")).encode()
    assert len(body) < WEBHOOK_LIMIT  # small enough: refused for the count, not the size
    answer = post_sendgrid(served, body)
    assert answer.status == 413, answer
    assert "10001 events" in answer.json()["error"]
    answer = post_sendgrid(served, json.dumps(events[:10_000], separators=(",", ":")).encode())
    assert answer.status == 200, answer


# ------------------------------------------------------------------------------- a locked database


class HeldLock:
    """Another connection holding the lock an opt-out needs: SQLite's write lock (BEGIN EXCLUSIVE on
    the file), or on PostgreSQL an ACCESS EXCLUSIVE lock on the tables an opt-out writes."""

    def __init__(self, db_url: str, engine: Engine) -> None:
        self.db_url = db_url
        self.engine = engine

    def __enter__(self) -> HeldLock:
        url = make_url(self.db_url)
        if url.get_backend_name() == "sqlite":
            self.sqlite = sqlite3.connect(str(url.database), isolation_level=None)
            self.sqlite.execute("BEGIN EXCLUSIVE")
        else:
            self.pg = self.engine.connect()
            self.pg.exec_driver_sql("LOCK TABLE events, suppressions IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "sqlite"):
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
        else:
            self.pg.rollback()
            self.pg.close()


OPT_OUTS = ["unsubscribe link", "sms STOP", "sendgrid unsubscribe", "sendgrid bounce"]


def opt_out(served: Served, kind: str) -> Answer:
    if kind == "unsubscribe link":
        return post(
            served.port,
            unsubscribe_path(served),
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
    if kind == "sms STOP":
        return post_twilio(served, "/webhooks/twilio/inbound", inbound_sms("SM-stop", PHONE_1, "STOP"))
    event = "unsubscribe" if kind == "sendgrid unsubscribe" else "bounce"
    body = json.dumps([sg_event(event, T_MAIL, f"ev-{event}", type="bounce")]).encode()
    return post_sendgrid(served, body)


EXPECTED = {
    "unsubscribe link": {("c1", "email"): "unsubscribed"},
    "sms STOP": {("c1", "sms"): "sms_stop"},
    "sendgrid unsubscribe": {("c1", "email"): "unsubscribed"},
    "sendgrid bounce": {("c1", "email"): "bounced"},
}


@pytest.mark.parametrize("kind", OPT_OUTS)
def test_an_opt_out_that_meets_a_locked_database_is_503_then_recorded_when_resent(
    served: Served, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = snapshot(served.engine)
    with HeldLock(served.db_url, served.engine):
        refused = opt_out(served, kind)
    assert refused.status == 503, refused
    assert int(refused.headers["retry-after"]) > 0
    assert snapshot(served.engine) == state  # nothing half-recorded
    assert "attempt 2 of 3" in caplog.text  # retried under the shared policy before giving up

    resent = opt_out(served, kind)  # the provider (or the person) sends it again
    assert resent.status == 200, resent
    assert suppressions(served.engine) == EXPECTED[kind]


def test_a_person_who_meets_a_locked_database_gets_a_page_saying_try_again(served: Served) -> None:
    """People get a page, not JSON: 503 with Retry-After, and the same link works afterwards."""
    with HeldLock(served.db_url, served.engine):
        refused = opt_out(served, "unsubscribe link")
    assert refused.status == 503
    assert b"try again" in refused.body.lower() and refused.headers["content-type"].startswith("text/html")
