"""A loopback fake of SendGrid's v3 mail/send, strict enough that passing it means something.

Every request is validated against the official OpenAPI spec (`sendgrid_mail_v3.json`): path,
method, header parameters and the bearer scheme with openapi_core; the body against the spec's
requestBody schema, compiled once into plain Python checks (openapi_core's body validation took
0.3 s per 1,000-recipient request and made the fake the bottleneck of the throughput benchmark; a
test checks both find the same problems; `full_openapi_validation=True` uses openapi_core). On top,
the documented rules the schema cannot express: a subject and content, text/plain first, valid
addresses, at most 1,000 recipients, substitutions <= 10,000 bytes per personalization,
`send_at` at most 72 hours ahead, no reserved headers.

Answers like SendGrid: 202 with `X-Message-Id`; 400/413 with `{"errors": [{"message", "field",
"help"}]}` (field like `personalizations.3.to.0.email`); 401 for a wrong key. Accepted messages
are recorded one per personalization (subject, text and HTML read after substitution), so tests
can assert exactly-once.

Faults, consumed one per request in order: `fail_next(429, retry_after=1)`, `fail_next(503)`
(`times=`, and `after=n` to let n requests through first),
`timeout_next()` (accept and record, then never answer: ambiguous for the client),
`drop_next()` (never answer, record nothing), `disconnect_next()` (close without an answer).
`reject_recipients(...)` makes given addresses invalid. `events()` gives the Event Webhook
events SendGrid would post for what was accepted.

    with FakeSendGrid(api_key="SG.test") as fake:
        channel = SendGridChannel("SG.test", host=fake.url)
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import hashlib
import http.client
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import jsonschema

try:  # a dependency of prefect; parses a 5 MB request about four times faster than json
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import (
    V31RequestBodyValidator,
    V31RequestParametersValidator,
    V31RequestSecurityValidator,
)
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.inflight import InFlight
from tests.fakes.specs import specs_dir

SPEC_NAME = "sendgrid_mail_v3.json"
SEND_PATH = "/v3/mail/send"
HEALTH_PATH = "/__fake__/health"
SPEC_SERVER = "https://api.sendgrid.com"  # the fake stands in for the spec's first server
MAX_RECIPIENTS = 1000
SUBSTITUTIONS_LIMIT = 10_000
CUSTOM_ARGS_LIMIT = 10_000
SCHEDULE_LIMIT = 72 * 3600
MAX_BODY_BYTES = 30 * 1024 * 1024
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
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
INVALID_ADDRESS = "Does not contain a valid address."


# -- validation ---------------------------------------------------------------------------------


class OpenAPIRequest:
    """openapi_core's Request protocol over what the handler read."""

    def __init__(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None):
        self.host_url = SPEC_SERVER
        self.path = path
        self.method = method.lower()
        self.body = body
        self.content_type = headers.get("Content-Type", "application/json").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(), header=Headers(list(headers.items())), cookie=ImmutableMultiDict()
        )


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    """The schema with every local `$ref` inlined (the mail spec has no recursive references)."""
    if isinstance(node, list):
        return [_resolve(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**_resolve(target, root), **_resolve(siblings, root)}
    return {k: _resolve(v, root) for k, v in node.items() if k not in ("example", "examples")}


@dataclass(frozen=True)
class Problem:
    field: str | None
    message: str
    keyword: str | None = None  # the schema keyword that failed, for comparing validators

    def as_error(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "help": None}


def _problem(path: Iterable[Any], keyword: str, expected: Any, message: str = "") -> Problem:
    """A problem that names the field but never echoes the value (it may be an address)."""
    where = ".".join(str(part) for part in path) or None
    if keyword == "format" and expected == "email":
        message = INVALID_ADDRESS
    elif not message:
        message = f"does not satisfy {keyword}: {json.dumps(expected)[:100]}"
    return Problem(where, message, keyword)


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    message = error.message if error.validator == "required" else ""
    return _problem(error.absolute_path, str(error.validator), error.validator_value, message)


# A compiled validator for the JSON Schema keywords the mail spec uses. jsonschema walks the
# schema anew for every value (about 0.1 ms per personalization, 1,000 per request); closures
# built once do the same checks some ten times faster. A keyword it does not know is an error
# at compile time, so a changed spec cannot be under-validated silently; a test checks that it
# finds what openapi_core finds.
_Check = Callable[[Any, tuple[Any, ...], list[Problem]], None]
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "example",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
    }
)
_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "format",
        "minLength",
        "maxLength",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
    }
)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _equal(one: Any, other: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0 (as jsonschema has it)."""
    if isinstance(one, bool) or isinstance(other, bool):
        return isinstance(one, bool) and isinstance(other, bool) and one == other
    if isinstance(one, list) and isinstance(other, list):
        return len(one) == len(other) and all(_equal(a, b) for a, b in zip(one, other, strict=True))
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(_equal(one[k], other[k]) for k in one)
    return bool(one == other)


def _unique(items: list[Any]) -> bool:
    if all(isinstance(item, str) for item in items):
        return len(set(items)) == len(items)
    return not any(_equal(a, b) for i, a in enumerate(items) for b in items[i + 1 :])


def compile_schema(schema: Any) -> _Check:
    """A function `check(value, path, problems)` that appends what `schema` finds wrong with `value`."""
    if schema is True or schema == {}:
        return lambda value, path, out: None
    if schema is False:
        return lambda value, path, out: out.append(_problem(path, "false", False, "nothing is allowed here"))
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ValueError(f"compile_schema does not support {sorted(unknown)}")
    checks: list[_Check] = []

    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
        predicates = [_TYPES[name] for name in names]

        def check_type(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
            if not any(predicate(value) for predicate in predicates):
                out.append(_problem(path, "type", schema["type"]))

        checks.append(check_type)
    if "enum" in schema:
        allowed = schema["enum"]

        def check_enum(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
            if not any(_equal(value, option) for option in allowed):
                out.append(_problem(path, "enum", allowed))

        checks.append(check_enum)

    string_rules: list[tuple[str, Any, Callable[[str], bool]]] = []
    if "minLength" in schema:
        string_rules.append(("minLength", schema["minLength"], lambda v, n=schema["minLength"]: len(v) >= n))
    if "maxLength" in schema:
        string_rules.append(("maxLength", schema["maxLength"], lambda v, n=schema["maxLength"]: len(v) <= n))
    if "format" in schema:
        if schema["format"] != "email":
            raise ValueError(f"compile_schema does not support format {schema['format']!r}")
        string_rules.append(("format", "email", lambda v: "@" in v))  # jsonschema's email check
    if string_rules:

        def check_string(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
            if isinstance(value, str):
                for keyword, expected, ok in string_rules:
                    if not ok(value):
                        out.append(_problem(path, keyword, expected))

        checks.append(check_string)

    if {"items", "minItems", "maxItems", "uniqueItems"} & set(schema):
        item_check = compile_schema(schema["items"]) if "items" in schema else None
        low, high = schema.get("minItems"), schema.get("maxItems")
        unique = schema.get("uniqueItems", False)

        def check_array(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
            if not isinstance(value, list):
                return
            if low is not None and len(value) < low:
                out.append(_problem(path, "minItems", low))
            if high is not None and len(value) > high:
                out.append(_problem(path, "maxItems", high))
            if unique and not _unique(value):
                out.append(_problem(path, "uniqueItems", True))
            if item_check is not None:
                for index, item in enumerate(value):
                    item_check(item, (*path, index), out)

        checks.append(check_array)

    object_keywords = {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
    if object_keywords & set(schema):
        properties = {name: compile_schema(sub) for name, sub in schema.get("properties", {}).items()}
        required = list(schema.get("required", ()))
        extra = compile_schema(schema["additionalProperties"]) if "additionalProperties" in schema else None
        low, high = schema.get("minProperties"), schema.get("maxProperties")

        def check_object(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
            if not isinstance(value, dict):
                return
            for name in required:
                if name not in value:
                    out.append(_problem(path, "required", required, f"{name!r} is a required property"))
            if low is not None and len(value) < low:
                out.append(_problem(path, "minProperties", low))
            if high is not None and len(value) > high:
                out.append(_problem(path, "maxProperties", high))
            for name, item in value.items():
                check = properties.get(name, extra)
                if check is not None:
                    check(item, (*path, name), out)

        checks.append(check_object)

    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any, path: tuple[Any, ...], out: list[Problem]) -> None:
        for check in checks:
            check(value, path, out)

    return check_all


class MailSendValidator:
    """Loaded and compiled once per spec file, then run on every request."""

    def __init__(self, spec_path: Path):
        self.spec_path = spec_path
        self.openapi = OpenAPI.from_file_path(str(spec_path))
        raw = json.loads(spec_path.read_text())
        body = _resolve(raw["paths"][SEND_PATH]["post"]["requestBody"], raw)
        self.body_schema = body["content"]["application/json"]["schema"]
        self._check_body = compile_schema(self.body_schema)
        self._security = V31RequestSecurityValidator(self.openapi.spec)
        self._parameters = V31RequestParametersValidator(self.openapi.spec)
        self._body = V31RequestBodyValidator(self.openapi.spec)
        self._request_cache: dict[tuple[Any, ...], list[Problem]] = {}

    def request_problems(self, request: OpenAPIRequest) -> list[Problem]:
        """Path, method, security scheme and header parameters, by openapi_core. The outcome depends
        on nothing else, so it is cached per distinct (path, method, headers but Content-Length)."""
        headers = tuple(
            sorted(
                (k.lower(), v) for k, v in request.parameters.header.items() if k.lower() != "content-length"
            )
        )
        key = (request.path, request.method, request.content_type, headers)
        cached = self._request_cache.get(key)
        if cached is None:
            cached = []
            for validator in (self._security, self._parameters):
                for error in validator.iter_errors(request):
                    cached.append(Problem(None, f"{type(error).__name__}: {error}"[:300]))
                if cached:
                    break
            if len(self._request_cache) > 1000:
                self._request_cache.clear()
            self._request_cache[key] = cached
        return list(cached)

    def body_problems(self, body: Any) -> list[Problem]:
        """The request body against the spec's requestBody schema (the compiled validator)."""
        problems: list[Problem] = []
        self._check_body(body, (), problems)
        return problems

    def openapi_core_body_problems(self, request: OpenAPIRequest) -> list[Problem]:
        """openapi_core's own (slower) body validation: the reference the fast path must agree with."""
        problems = []
        for error in self._body.iter_errors(request):
            cause = error.__cause__
            schema_errors = getattr(cause, "schema_errors", None)
            if schema_errors:
                problems += [_schema_problem(e) for e in schema_errors]
            else:
                problems.append(Problem(None, type(error).__name__))
        return problems


@functools.cache
def validator_for(spec_path: Path) -> MailSendValidator:
    return MailSendValidator(spec_path)


@functools.lru_cache(maxsize=64)
def _tag_pattern(tags: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(tag) for tag in sorted(tags, key=len, reverse=True)))


def _substitute(template: str | None, substitutions: Mapping[str, str]) -> str | None:
    """One pass, like SendGrid: values are inserted as they are, never re-scanned."""
    if template is None or not substitutions:
        return template
    return _tag_pattern(tuple(substitutions)).sub(lambda match: substitutions[match.group(0)], template)


def _parse(raw: bytes) -> Any:
    """JSON as the stdlib reads it (orjson when it can, for speed; it refuses a little more)."""
    if orjson is not None:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(raw)
    return json.loads(raw)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _size(mapping: Mapping[str, Any]) -> int:
    """Bytes of tags and values, the measure of SendGrid's substitutions limit."""
    return sum(_utf8_size(str(k)) + _utf8_size(str(v)) for k, v in mapping.items())


def rule_problems(body: Mapping[str, Any], now: float, rejected: set[str]) -> list[Problem]:
    """Documented mail/send rules beyond the schema (run on a body the schema accepts)."""
    problems: list[Problem] = []
    personalizations = body["personalizations"]
    if not personalizations:
        return [Problem("personalizations", "The personalizations field must have at least one item.")]
    if not _ADDRESS.fullmatch(body["from"]["email"]):
        problems.append(Problem("from.email", INVALID_ADDRESS))
    content = body.get("content") or []
    if not content and not body.get("template_id"):
        problems.append(Problem("content", "Unless a valid template_id is provided, content is required."))
    types = [part["type"] for part in content]
    if "text/plain" in types and types[0] != "text/plain":
        problems.append(Problem("content", "If present, text/plain must be first."))
    if not body.get("subject") and not all(p.get("subject") for p in personalizations):
        problems.append(Problem("subject", "The subject is required."))
    if "send_at" in body and body["send_at"] > now + SCHEDULE_LIMIT:
        problems.append(Problem("send_at", "send_at cannot be more than 72 hours in the future."))
    recipients = 0
    for index, personalization in enumerate(personalizations):
        where = f"personalizations.{index}"
        for kind in ("to", "cc", "bcc"):
            for number, recipient in enumerate(personalization.get(kind) or []):
                recipients += 1
                address = recipient["email"]
                if not _ADDRESS.fullmatch(address) or address.lower() in rejected:
                    problems.append(Problem(f"{where}.{kind}.{number}.email", INVALID_ADDRESS))
        if not personalization["to"]:
            problems.append(Problem(f"{where}.to", "The to array must have at least one recipient."))
        if _size(personalization.get("substitutions") or {}) > SUBSTITUTIONS_LIMIT:
            problems.append(
                Problem(
                    f"{where}.substitutions",
                    "The total size of substitutions may not exceed 10,000 bytes per personalization.",
                )
            )
        custom_args = personalization.get("custom_args") or {}
        if not all(isinstance(v, str) for v in custom_args.values()):
            problems.append(Problem(f"{where}.custom_args", "custom_args values must be strings."))
        elif _size(custom_args) > CUSTOM_ARGS_LIMIT:
            problems.append(Problem(f"{where}.custom_args", "custom_args may not exceed 10,000 bytes."))
        for name, value in (personalization.get("headers") or {}).items():
            if name.lower() in RESERVED_HEADERS or not isinstance(value, str):
                problems.append(Problem(f"{where}.headers", f"The header {name} may not be set here."))
        if personalization.get("send_at", 0) > now + SCHEDULE_LIMIT:
            problems.append(
                Problem(f"{where}.send_at", "send_at cannot be more than 72 hours in the future.")
            )
    if recipients > MAX_RECIPIENTS:
        problems.append(Problem("personalizations", "A request may have at most 1000 recipients."))
    return problems


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedEmail:
    """One personalization SendGrid accepted, as the recipient would get it."""

    message_id: str  # the request's X-Message-Id
    index: int  # the personalization's position in its request
    touch_key: str | None  # custom_args.touch_key
    to_email: str
    to_name: str | None
    from_email: str
    from_name: str | None
    send_at: int | None
    categories: tuple[str, ...]
    headers: dict[str, str]
    custom_args: dict[str, str]
    accepted_at: float
    # As sent; `subject`, `text` and `html` apply the substitutions when read (recording stays cheap).
    subject_template: str | None
    text_template: str | None
    html_template: str | None
    substitutions: Mapping[str, str]

    @property
    def substituted(self) -> bool:
        """True when the copy came in substitutions, False when in literal content."""
        return bool(self.substitutions)

    @property
    def subject(self) -> str | None:
        return _substitute(self.subject_template, self.substitutions)

    @property
    def text(self) -> str | None:
        return _substitute(self.text_template, self.substitutions)

    @property
    def html(self) -> str | None:
        return _substitute(self.html_template, self.substitutions)

    @property
    def sg_message_id(self) -> str:
        """What events carry: the request's X-Message-Id, then a per-recipient suffix."""
        return f"{self.message_id}.filterdrecv-fake-{self.index}-0.0"


@dataclass(frozen=True)
class RequestRecord:
    """Every mail/send request the fake answered (or held), in arrival order."""

    status: int | None  # None: never answered (timeout, drop, disconnect)
    personalizations: int
    message_id: str | None
    errors: tuple[dict[str, Any], ...] = ()
    content: tuple[dict[str, str], ...] = ()  # message-level content as sent (tags, or literal copy)
    substituted: bool = False
    bytes: int = 0


Fault = Literal["pass", "status", "timeout", "drop", "disconnect"]


@dataclass(frozen=True)
class _Script:
    fault: Fault
    status: int = 0
    retry_after: float | None = None
    errors: tuple[dict[str, Any], ...] = ()
    record: bool = True


_DEFAULT_ERRORS = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "content too large",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


# -- the server ---------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a client sends many requests at
    # once (the Twilio channel keeps up to 32 in flight): real providers accept them.
    request_queue_size = 128
    daemon_threads = True
    fake: FakeSendGrid

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (it timed out) is expected here, not a test failure to print."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"errors": [Problem(None, "not found").as_error()]})

    def do_POST(self) -> None:
        with self.server.fake.in_flight.request(), contextlib.suppress(ConnectionError, TimeoutError):
            self.server.fake._handle(self)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def _answer(self, status: int, payload: Any = None, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _hold(self, seconds: float) -> None:
        """Never answer: wait until the fake stops or `seconds` pass, then close without a word."""
        self.server.fake._release.wait(seconds)
        self.close_connection = True

    def _reset(self) -> None:
        """Close with a TCP reset, no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class FakeSendGrid:
    """SendGrid's mail/send on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        api_key: str = "SG.fake-key",
        *,
        spec_path: Path | None = None,
        hold_seconds: float = 10.0,
        full_openapi_validation: bool = False,
        clock: Callable[[], float] = time.time,
    ):
        self.api_key = api_key
        self.spec_path = spec_path or specs_dir() / SPEC_NAME
        self.validator = validator_for(self.spec_path)
        self.hold_seconds = hold_seconds
        self.full_openapi_validation = full_openapi_validation
        self.clock = clock
        self._lock = threading.Lock()
        self.in_flight = InFlight()
        self._scripts: deque[_Script] = deque()
        self._rejected: set[str] = set()
        self._accepted: list[AcceptedEmail] = []
        self._requests: list[RequestRecord] = []
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeSendGrid:
        if self._server is not None:
            return self
        self._release.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-sendgrid", daemon=True
        )
        self._thread.start()
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._release.set()  # let held requests end
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give SendGridAPIClient as `host`."""
        return f"http://127.0.0.1:{self.port}"

    def _wait_until_ready(self, deadline: float = 10.0) -> None:
        """Poll the health endpoint until the serving thread answers."""
        give_up = time.monotonic() + deadline
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                connection.request("GET", HEALTH_PATH)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                if time.monotonic() > give_up:
                    raise
                self._release.wait(0.01)  # not ready yet: poll again shortly
            finally:
                connection.close()

    # -- scripting ------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        times: int = 1,
        errors: Iterable[Mapping[str, Any]] | None = None,
        after: int = 0,
    ) -> None:
        """After `after` requests handled normally, the next `times` get `status` (with Retry-After
        and these errors) and nothing is recorded."""
        if errors is None:
            errors = [Problem(None, _DEFAULT_ERRORS.get(status, "error")).as_error()]
        script = _Script("status", status, retry_after, tuple(dict(e) for e in errors))
        with self._lock:
            self._scripts.extend([_Script("pass")] * after + [script] * times)

    def timeout_next(self) -> None:
        """The next request is processed (and recorded if valid) but never answered."""
        with self._lock:
            self._scripts.append(_Script("timeout"))

    def drop_next(self) -> None:
        """The next request is never answered and never recorded."""
        with self._lock:
            self._scripts.append(_Script("drop", record=False))

    def disconnect_next(self, *, record: bool = True) -> None:
        """The next request is processed (recorded if `record` and valid), then the connection reset."""
        with self._lock:
            self._scripts.append(_Script("disconnect", record=record))

    def reject_recipients(self, *addresses: str) -> None:
        """These addresses are answered like invalid ones: 400 naming their personalization."""
        with self._lock:
            self._rejected.update(a.lower() for a in addresses)

    # -- what happened --------------------------------------------------------------------------

    @property
    def accepted(self) -> list[AcceptedEmail]:
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def accepted_keys(self) -> list[str | None]:
        return [record.touch_key for record in self.accepted]

    def by_key(self) -> dict[str | None, AcceptedEmail]:
        return {record.touch_key: record for record in self.accepted}

    def clear(self) -> None:
        with self._lock:
            self._accepted.clear()
            self._requests.clear()
            self._scripts.clear()
            self._rejected.clear()

    def events(self, kind: Literal["processed", "delivered"] = "delivered") -> list[dict[str, Any]]:
        """The Event Webhook events SendGrid would post for the accepted messages (documented shape:
        email, timestamp, smtp-id, event, category (a string for one, a list for several),
        sg_event_id, sg_message_id, plus each custom_args key at the top level; `delivered` adds
        `response`). Ids are deterministic, so a test can post the same event twice."""
        if kind not in ("processed", "delivered"):
            raise ValueError(f"unknown event kind {kind!r}")
        events = []
        for record in self.accepted:
            due = max(record.accepted_at, float(record.send_at or 0))
            seed = f"{record.message_id}:{record.index}:{kind}".encode()
            event: dict[str, Any] = {
                **record.custom_args,
                "email": record.to_email,
                "timestamp": int(record.accepted_at if kind == "processed" else due),
                "smtp-id": f"<{record.message_id}.{record.index}@fake.sendgrid.net>",
                "event": kind,
                # SendGrid sends one category as a string, several as a list.
                "category": record.categories[0] if len(record.categories) == 1 else list(record.categories),
                "sg_event_id": base64.urlsafe_b64encode(hashlib.sha256(seed).digest()[:16])
                .decode()
                .rstrip("="),
                "sg_message_id": record.sg_message_id,
            }
            if kind == "delivered":
                event["response"] = "250 OK"
            events.append(event)
        return events

    # -- handling -------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        raw = handler._read_body()
        headers = {name: value for name, value in handler.headers.items()}
        request = OpenAPIRequest("POST", handler.path, headers, raw)
        if handler.path != SEND_PATH:
            return self._reply(handler, 404, errors=[Problem(None, "not found").as_error()], size=len(raw))
        problems = self.validator.request_problems(request)
        if problems or headers.get("Authorization") != f"Bearer {self.api_key}":
            errors = [Problem(None, _DEFAULT_ERRORS[401]).as_error()]
            return self._reply(handler, 401, errors=errors, size=len(raw))
        body: Any = None
        with self._lock:
            script = self._scripts.popleft() if self._scripts else None
        if script is not None and script.fault == "pass":
            script = None
        if script is not None and script.fault == "status":
            retry = {"Retry-After": f"{script.retry_after:g}"} if script.retry_after is not None else {}
            with contextlib.suppress(ValueError):  # parsed only to record what was refused
                body = json.loads(raw)
            return self._reply(
                handler, script.status, errors=list(script.errors), headers=retry, size=len(raw), body=body
            )
        if script is not None and script.fault == "drop":
            self._log(RequestRecord(None, 0, None, bytes=len(raw)))
            return handler._hold(self.hold_seconds)

        status, errors, body = self._validate(request, raw)
        message_id = None
        if status == 202 and (script is None or script.record):
            message_id = self._record(body)
        elif status == 202:
            message_id = "unrecorded"
        if script is None:
            extra = {"X-Message-Id": message_id} if message_id else {}
            return self._reply(handler, status, errors=errors, headers=extra, size=len(raw), body=body)
        self._log(self._request_record(None, body, message_id, errors, len(raw)))
        if script.fault == "timeout":
            return handler._hold(self.hold_seconds)
        return handler._reset()

    def _validate(self, request: OpenAPIRequest, raw: bytes) -> tuple[int, list[dict[str, Any]], Any]:
        if len(raw) > MAX_BODY_BYTES:
            return 413, [Problem(None, _DEFAULT_ERRORS[413]).as_error()], None
        try:
            body = _parse(raw)
        except ValueError:
            return 400, [Problem(None, "The request body is not valid JSON.").as_error()], None
        if self.full_openapi_validation:
            problems = self.validator.openapi_core_body_problems(request)
        else:
            problems = self.validator.body_problems(body)
        if not problems:
            with self._lock:
                rejected = set(self._rejected)
            problems = rule_problems(body, self.clock(), rejected)
        if problems:
            return 400, [p.as_error() for p in problems], body
        return 202, [], body

    def _record(self, body: Mapping[str, Any]) -> str:
        message_id = secrets.token_urlsafe(16)[:22]
        now = self.clock()
        content = {part["type"]: part["value"] for part in body.get("content") or []}
        sender = body["from"]
        categories = tuple(body.get("categories") or ())
        records = []
        for index, personalization in enumerate(body["personalizations"]):
            substitutions = personalization.get("substitutions") or {}
            custom_args = dict(personalization.get("custom_args") or {})
            sent_at = personalization.get("send_at", body.get("send_at"))
            for recipient in personalization["to"]:
                records.append(
                    AcceptedEmail(
                        message_id=message_id,
                        index=index,
                        touch_key=custom_args.get("touch_key"),
                        to_email=recipient["email"],
                        to_name=recipient.get("name"),
                        from_email=(personalization.get("from") or sender)["email"],
                        from_name=(personalization.get("from") or sender).get("name"),
                        send_at=sent_at,
                        categories=categories,
                        headers={**(body.get("headers") or {}), **(personalization.get("headers") or {})},
                        custom_args=custom_args,
                        accepted_at=now,
                        subject_template=personalization.get("subject", body.get("subject")),
                        text_template=content.get("text/plain"),
                        html_template=content.get("text/html"),
                        substitutions=substitutions,
                    )
                )
        with self._lock:
            self._accepted.extend(records)
        return message_id

    @staticmethod
    def _request_record(
        status: int | None, body: Any, message_id: str | None, errors: list[dict[str, Any]], size: int
    ) -> RequestRecord:
        personalizations = body.get("personalizations") if isinstance(body, dict) else None
        content = body.get("content") if isinstance(body, dict) else None
        count = len(personalizations) if isinstance(personalizations, list) else 0
        substituted = count > 0 and any(
            isinstance(p, dict) and p.get("substitutions") for p in personalizations or []
        )
        return RequestRecord(
            status,
            count,
            message_id,
            tuple(errors),
            tuple(content) if isinstance(content, list) else (),
            substituted,
            size,
        )

    def _reply(
        self,
        handler: _Handler,
        status: int,
        *,
        errors: list[dict[str, Any]],
        headers: Mapping[str, str] | None = None,
        size: int = 0,
        body: Any = None,
    ) -> None:
        message_id = (headers or {}).get("X-Message-Id")
        self._log(self._request_record(status, body, message_id, errors, size))
        handler._answer(status, {"errors": errors} if errors else None, headers)

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)


__all__ = [
    "AcceptedEmail",
    "FakeSendGrid",
    "MailSendValidator",
    "OpenAPIRequest",
    "Problem",
    "RequestRecord",
    "rule_problems",
    "specs_dir",
    "validator_for",
]
