"""Bounded request bodies: a pure ASGI middleware that counts bytes as they arrive, on every route.

Nothing upstream of the routes limits a body: uvicorn reads what the client sends, Starlette's
`request.body()` and `request.form()` buffer all of it, and a chunked body has no length to check
up front. So the limit is enforced where the bytes enter the application, before any route,
dependency or parser sees them:

* a declared `Content-Length` above the route's limit is answered 413 at once, without reading
  a byte of the body (and a `Content-Length` that is not a number, 400);
* otherwise each `http.request` message is counted as the application receives it, and the
  first one that takes the total over the limit is not handed on: the application's `receive()`
  raises BodyTooLarge instead, and whatever the application answers after that (its error page,
  a 400 because the form could not be read) is replaced by the 413. A chunked body is therefore
  cut off while it is being read, never buffered whole.

Limits are per path: the SendGrid Event Webhook posts batches of events (SendGrid posts up to
768 KiB), everything else (Twilio's form callbacks, the link pages' forms) is small. Responses
to a request whose body was not read to the end say `Connection: close`, so the server does not
go on reading (and discarding) the rest of an unbounded upload to keep the connection alive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONNECTION_CLOSE = (b"connection", b"close")


class BodyTooLarge(Exception):
    """Raised by the application's `receive()` once the body went over its route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length: None when absent; -1 when unreadable (several, or not digits)."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        return -1
    return int(values[0])


async def answer(send: Send, status: int, reason: str) -> None:
    """A small JSON refusal (`{"error": reason}`, like the webhooks' others) that closes the connection."""
    body = json.dumps({"error": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                CONNECTION_CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimit:
    """The middleware: `limits` maps exact paths to their limit in bytes; any other path gets `default`."""

    def __init__(self, app: ASGIApp, *, default: int, limits: Mapping[str, int] | None = None) -> None:
        if default < 0 or any(limit < 0 for limit in (limits or {}).values()):
            raise ValueError("body limits must not be negative")
        self.app = app
        self.default = default
        self.limits = dict(limits or {})

    def limit_for(self, scope: Scope) -> int:
        return self.limits.get(scope.get("path", ""), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = declared_length(scope)
        if declared == -1:
            await answer(send, 400, "Content-Length is not a number of bytes")
            return
        if declared is not None and declared > limit:
            await answer(send, 413, f"request body larger than {limit} bytes")
            return

        received = 0
        # Is there a body the application may leave unread? (Without either header there is none.)
        finished = not declared and not any(
            name.lower() == b"transfer-encoding" for name, _ in scope["headers"]
        )
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, finished, exceeded
            if exceeded:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    finished = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the application's answer to a body it could not read: the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
                if not finished:
                    message = _closing(message)
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await answer(send, 413, f"request body larger than {limit} bytes")


def _closing(message: Message) -> dict[str, Any]:
    """`message` (a response start) with `Connection: close`, unless it already has one."""
    headers = list(message.get("headers", []))
    if not any(name.lower() == b"connection" for name, _ in headers):
        headers.append(CONNECTION_CLOSE)
    return {**message, "headers": headers}
