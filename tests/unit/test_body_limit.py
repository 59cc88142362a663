"""The BodyLimit middleware as pure ASGI: what the application is handed, and what the client gets.

tests/integration/test_bounded_requests.py proves the same over a socket against uvicorn; these
pin the rules that are awkward to reach from outside (an application that swallows the error,
a body that stops exactly at the limit, the per-path limits, an unreadable Content-Length).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from techtouch.entrypoints.web.body_limit import BodyLimit, BodyTooLarge
from techtouch.entrypoints.web.webhooks import check_json_depth
from techtouch.services.feedback import BadPayload


def run(
    middleware: BodyLimit, chunks: list[bytes], headers: list[tuple[bytes, bytes]], path: str = "/x"
) -> list[dict[str, Any]]:
    """Feed `chunks` as http.request messages; returns what the middleware sent to the server."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    return sent


class Reader:
    """An application that reads the whole body, and answers 400 if reading failed (as a form
    parser that swallows errors would): the middleware must turn that into the 413."""

    def __init__(self) -> None:
        self.read = b""
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        status = 200
        try:
            while True:
                message = await receive()
                self.read += message.get("body", b"")
                if not message.get("more_body"):
                    break
        except BodyTooLarge:
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def status_of(sent: list[dict[str, Any]]) -> int:
    return int(sent[0]["status"])


CHUNKED = [(b"transfer-encoding", b"chunked")]


def test_a_chunked_body_is_cut_off_at_the_chunk_that_crosses_the_limit() -> None:
    app = Reader()
    sent = run(BodyLimit(app, default=10), [b"12345", b"67890", b"x", b"never read"], CHUNKED)
    assert status_of(sent) == 413 and app.read == b"1234567890"
    assert (b"connection", b"close") in sent[0]["headers"]
    assert "10 bytes" in json.loads(sent[1]["body"])["error"]


def test_a_body_of_exactly_the_limit_is_handed_over_whole() -> None:
    app = Reader()
    sent = run(BodyLimit(app, default=10), [b"12345", b"67890"], CHUNKED)
    assert status_of(sent) == 200 and app.read == b"1234567890"
    assert (b"connection", b"close") not in sent[0]["headers"]


@pytest.mark.parametrize(("declared", "status"), [(b"11", 413), (b"ten", 400), (b"-1", 400)])
def test_a_declared_length_is_judged_before_the_application_runs(declared: bytes, status: int) -> None:
    app = Reader()
    sent = run(BodyLimit(app, default=10), [b"x"], [(b"content-length", declared)])
    assert status_of(sent) == status and app.calls == 0


def test_limits_are_per_path() -> None:
    middleware = BodyLimit(Reader(), default=4, limits={"/webhooks/sendgrid": 100})
    assert status_of(run(middleware, [b"x" * 50], CHUNKED, path="/webhooks/sendgrid")) == 200
    assert status_of(run(middleware, [b"x" * 50], CHUNKED, path="/u/token")) == 413


def test_an_answer_before_the_body_was_read_closes_the_connection() -> None:
    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 403, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    sent = run(BodyLimit(early, default=10), [b"abc"], [(b"content-length", b"3")])
    assert status_of(sent) == 403 and (b"connection", b"close") in sent[0]["headers"]


def test_json_nesting_is_bounded_before_parsing() -> None:
    check_json_depth(b'[{"a": [1, {"b": "[[[[[[[[[[[[[[[["}]}]', limit=4)  # brackets in strings do not count
    with pytest.raises(BadPayload, match="nested deeper than 3 levels"):
        check_json_depth(b"[[[[]]]]", limit=3)
