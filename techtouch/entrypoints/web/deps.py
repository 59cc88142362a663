"""What the routes share, handed to them with `Depends`: the App, the verifiers, the pages, bodies and forms.

create_app() builds one `WebState` and puts it on `app.state`; the dependencies below read it
from the request, so a router module holds no state of its own and needs no enclosing function.

The checks that guard the webhooks and links are dependencies too, so a route's body only runs
once its signature or token is verified: nothing it protects is parsed or stored before that.
Refusals are raised (errors.Problem, errors.BadLink), never logged with what they protect: a
provider's refusal reason and a path, no contact data, no token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from techtouch.adapters.render import links
from techtouch.entrypoints.web.errors import BadLink, Problem
from techtouch.entrypoints.web.pages import Pages
from techtouch.entrypoints.web.security import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_SIGNATURE,
    NotConfigured,
    SendGridVerifier,
    TwilioVerifier,
    Unverified,
)
from techtouch.services.app import App

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 8 * 1024 * 1024  # SendGrid batches are well under this
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class WebState:
    """Everything the service needs per process, built once (and checked) by create_app()."""

    tt: App
    link_secret: bytes  # read once at start: a missing or unsafe secret fails there, not per click
    sendgrid: SendGridVerifier
    twilio: TwilioVerifier
    pages: Pages
    sms_help: str  # the answer to HELP, from the settings


def state_of(request: Request) -> WebState:
    """The state create_app() stored (for code that is not a dependency: the exception handlers)."""
    state: WebState = request.app.state.web
    return state


# The getters are `async` only so that FastAPI calls them in place: a sync dependency costs a trip
# through its thread pool, for an attribute read.
async def web_state(request: Request) -> WebState:
    return state_of(request)


async def get_app(request: Request) -> App:
    return state_of(request).tt


async def get_pages(request: Request) -> Pages:
    return state_of(request).pages


async def read_body(request: Request) -> bytes | None:
    """The raw body (signatures cover the exact bytes), or None when it is too large."""
    declared = request.headers.get("content-length") or "0"
    if not declared.isdigit() or int(declared) > MAX_WEBHOOK_BYTES:
        return None
    body = await request.body()
    return body if len(body) <= MAX_WEBHOOK_BYTES else None


async def read_form(request: Request) -> FormData | None:
    """The form fields, or None when the body is not form-encoded (the route answers 400)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return None
    try:
        return await request.form()
    except Exception:  # python-multipart / starlette raise several types for a broken body
        return None


StateDep = Annotated[WebState, Depends(web_state)]
AppDep = Annotated[App, Depends(get_app)]
PagesDep = Annotated[Pages, Depends(get_pages)]
FormDep = Annotated[FormData | None, Depends(read_form)]


def verified_sendgrid_body(
    request: Request, web: StateDep, body: Annotated[bytes | None, Depends(read_body)]
) -> bytes:
    """The Event Webhook body once its ECDSA signature and timestamp check out (still unparsed).

    Sync, so FastAPI runs the signature check in its thread pool, off the event loop.
    """
    if body is None:
        raise Problem(413, f"body larger than {MAX_WEBHOOK_BYTES} bytes")
    try:
        web.sendgrid.verify(
            body, request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
        )
    except NotConfigured as exc:
        raise Problem(503, str(exc)) from exc
    except Unverified as exc:
        log.warning("sendgrid webhook refused: %s", exc)
        raise Problem(403, str(exc)) from exc
    return body


VerifiedSendGridBody = Annotated[bytes, Depends(verified_sendgrid_body)]


class TwilioForm:
    """Dependency: the form of a Twilio request to `path` as text fields, once X-Twilio-Signature checks out.

    Twilio signs the public URL it was given plus every form field, so the path is the route's own
    (a constant, not read from the request) and the form has to be read before it can be verified.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, request: Request, web: StateDep, form: FormDep) -> dict[str, str]:
        if form is None:
            raise Problem(400, f"body must be {FORM_TYPE}")
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            web.twilio.verify(self.path, query, form, request.headers.get(TWILIO_SIGNATURE))
        except NotConfigured as exc:
            raise Problem(503, str(exc)) from exc
        except Unverified as exc:
            log.warning("twilio webhook %s refused: %s", self.path, exc)
            raise Problem(403, str(exc)) from exc
        return {k: str(v) for k, v in form.items()}


class SignedLink:
    """Dependency: the payload of the `{token}` path parameter, a link of `kind` signed with our secret.

    A token of another kind is refused too: a survey link must not work as an unsubscribe link.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, web: StateDep, token: str) -> dict[str, str]:
        try:
            return links.verify(web.link_secret, token, self.kind)
        except links.BadToken as exc:
            raise BadLink(str(exc)) from exc
