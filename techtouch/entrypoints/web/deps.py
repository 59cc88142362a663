"""What the routes share, handed to them with `Depends`: the App, the verifiers, the pages, bodies and forms.

create_app() builds one `WebState` and puts it on `app.state`; the dependencies below read it
from the request, so a router module holds no state of its own and needs no enclosing function.

The checks that guard the webhooks and links are dependencies too, so a route's body only runs
once its signature or token is verified: nothing it protects is parsed or stored before that.
What the headers alone can refuse (no key configured, no signature, a stale SendGrid timestamp)
is refused before the body is even read; bodies are bounded while they are read by the BodyLimit
middleware (body_limit.py), so `request.body()` and `request.form()` here never buffer more than
the route's limit, and a form under a `{token}` path is parsed only once that token verifies.
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
from techtouch.entrypoints.web.body_limit import BodyTooLarge
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

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 100  # Twilio sends about 20, our pages one or two


@dataclass(frozen=True)
class WebState:
    """Everything the service needs per process, built once (and checked) by create_app()."""

    tt: App
    # Read once at start (a missing or unsafe secret fails there, not per click): the signing key
    # first, then the previous keys of a rotation, which still verify.
    link_keys: tuple[bytes, ...]
    sendgrid: SendGridVerifier
    twilio: TwilioVerifier
    pages: Pages
    sms_help: str  # the answer to HELP, from the settings
    # The CSM workspace's key (derived from the link secret, never the secret itself): sub-keys of it
    # sign the sign-in form's CSRF token and the flash cookie, and key the failed-sign-in hashes.
    workspace_key: bytes


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


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE


async def read_form(request: Request) -> FormData | None:
    """The form fields, or None when the body is not form-encoded (the route answers 400).

    Under a `{token}` path the token is verified first (as a link of some kind: the route's own
    SignedLink checks which), whatever order the route declares its dependencies in: a form is
    never parsed for a link that is not ours. Its size is bounded by the BodyLimit middleware.
    """
    token = request.path_params.get("token")
    if token is not None:
        verify_some_link(state_of(request), token)
    if not is_form(request):
        return None
    try:
        return await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
    except BodyTooLarge:
        raise
    except Exception:  # python-multipart / starlette raise several types for a broken body
        return None


StateDep = Annotated[WebState, Depends(web_state)]
AppDep = Annotated[App, Depends(get_app)]
PagesDep = Annotated[Pages, Depends(get_pages)]
FormDep = Annotated[FormData | None, Depends(read_form)]


def refusal(provider: str, exc: NotConfigured | Unverified) -> Problem:
    """503 when we cannot verify (the provider retries), 403 when the request is not provably theirs."""
    if isinstance(exc, NotConfigured):
        return Problem(503, str(exc))
    log.warning("%s webhook refused: %s", provider, exc)
    return Problem(403, str(exc))


async def sendgrid_body(request: Request, web: StateDep) -> bytes:
    """The raw body (the signature covers the exact bytes), read only once the headers pass
    SendGridVerifier.precheck: an unsigned or stale request is refused with its body unread."""
    try:
        web.sendgrid.precheck(
            request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
        )
    except (NotConfigured, Unverified) as exc:
        raise refusal("sendgrid", exc) from exc
    return await request.body()


def verified_sendgrid_body(
    request: Request, web: StateDep, body: Annotated[bytes, Depends(sendgrid_body)]
) -> bytes:
    """The Event Webhook body once its ECDSA signature and timestamp check out (still unparsed).

    Sync, so FastAPI runs the signature check in its thread pool, off the event loop.
    """
    try:
        web.sendgrid.verify(
            body, request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
        )
    except (NotConfigured, Unverified) as exc:
        raise refusal("sendgrid", exc) from exc
    return body


VerifiedSendGridBody = Annotated[bytes, Depends(verified_sendgrid_body)]


async def twilio_form(request: Request, web: StateDep) -> FormData:
    """The form of a Twilio request, read only once the headers pass TwilioVerifier.precheck (and
    say it is a form): an unsigned request is refused with its body unread. Twilio signs the form's
    fields, not its bytes, so this (bounded) parse has to come before the signature check."""
    if not is_form(request):
        raise Problem(400, f"body must be {FORM_TYPE}")
    try:
        web.twilio.precheck(request.headers.get(TWILIO_SIGNATURE))
    except (NotConfigured, Unverified) as exc:
        raise refusal("twilio", exc) from exc
    form = await read_form(request)
    if form is None:
        raise Problem(400, f"body must be {FORM_TYPE}")
    return form


class TwilioForm:
    """Dependency: the form of a Twilio request to `path` as text fields, once X-Twilio-Signature checks out.

    Twilio signs the public URL it was given plus every form field, so the path is the route's own
    (a constant, not read from the request) and the form has to be read before it can be verified.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(
        self, request: Request, web: StateDep, form: Annotated[FormData, Depends(twilio_form)]
    ) -> dict[str, str]:
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            web.twilio.verify(self.path, query, form, request.headers.get(TWILIO_SIGNATURE))
        except (NotConfigured, Unverified) as exc:
            raise refusal(f"twilio {self.path}", exc) from exc
        return {k: str(v) for k, v in form.items()}


class SignedLink:
    """Dependency: the payload of the `{token}` path parameter, a link of `kind` signed with our secret.

    A token of another kind is refused too: a survey link must not work as an unsubscribe link.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, web: StateDep, token: str) -> dict[str, str]:
        try:
            return links.verify(web.link_keys, token, self.kind)
        except links.BadToken as exc:
            raise BadLink(str(exc)) from exc


def verify_some_link(web: WebState, token: str) -> None:
    """BadLink unless `token` is one of our links, of whichever kind (read_form's guard)."""
    for kind in links.KINDS:
        try:
            SignedLink(kind)(web, token)
        except BadLink:
            continue
        return
    raise BadLink("this link does not verify")
