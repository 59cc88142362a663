"""The webhook and link service behind `techtouch serve`: provider feedback in, one-click pages out.

Routes (the link paths are exactly those techtouch.adapters.render.links generates):

* POST /webhooks/sendgrid        signed Event Webhook (ECDSA); 403 unsigned/tampered/stale, 400 malformed
* POST /webhooks/twilio/status   status callbacks (X-Twilio-Signature); `touch_key` in the query
* POST /webhooks/twilio/inbound  inbound SMS: STOP/START/HELP keywords, TwiML answer
* GET/POST /u/{token}            unsubscribe: confirmation page, and RFC 8058 one-click POST
* GET /s/{token}                 one-click survey answer, thank-you page with a comment form
* POST /s/{token}/comment        the comment
* GET/POST /p/{token}            preferences: stop email or SMS
* GET /healthz                   the database answers

Database work runs in FastAPI's thread pool (sync endpoints); bodies are read by async
dependencies first. Nothing personal is logged: counts and kinds only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader
from sqlalchemy import text
from starlette.datastructures import FormData
from twilio.twiml.messaging_response import MessagingResponse

from techtouch.adapters.render import links
from techtouch.entrypoints.web.security import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    SENDGRID_TOLERANCE_SECONDS,
    TWILIO_SIGNATURE,
    NotConfigured,
    SendGridVerifier,
    TwilioVerifier,
    Unverified,
)
from techtouch.services import feedback
from techtouch.services.app import App
from techtouch.settings import Settings

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 8 * 1024 * 1024  # SendGrid batches are well under this
FORM_TYPE = "application/x-www-form-urlencoded"
TWIML_TYPE = "application/xml"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the URL holds a capability token: never pass it on
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
CHANNEL_NAMES = {"email": "emails", "sms": "text messages"}


def sms_help_text(settings: Settings) -> str:
    """The HELP answer: `sms_help_text` if the settings have one, else who we are and how to stop."""
    configured = settings.sms_help_text
    if configured:
        return str(configured)
    sender = settings.senders.get("success") or next(iter(settings.senders.values()), None)
    name = sender.name if sender else "Customer Success"
    reach = f" Questions: {sender.email}." if sender else ""
    return (
        f"{name}: account updates and tips by text.{reach} "
        "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply."
    )


async def _body(request: Request) -> bytes | None:
    """The raw body (signatures cover the exact bytes), or None when it is too large."""
    declared = request.headers.get("content-length") or "0"
    if not declared.isdigit() or int(declared) > MAX_WEBHOOK_BYTES:
        return None
    body = await request.body()
    return body if len(body) <= MAX_WEBHOOK_BYTES else None


async def _form(request: Request) -> FormData | None:
    """The form fields, or None when the body is not form-encoded (the endpoint answers 400)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return None
    try:
        return await request.form()
    except Exception:  # python-multipart / starlette raise several types for a broken body
        return None


def create_app(
    tt: App,
    *,
    sendgrid_tolerance_seconds: float = SENDGRID_TOLERANCE_SECONDS,
) -> FastAPI:
    """The service for these settings and this (migrated) database; nothing happens at import time.

    Fails early when links cannot be verified (no secret with a provider channel) or the SendGrid
    key is not a key. A provider whose key or token is unset gets 503 (so it retries), not 403.
    """
    settings, engine = tt.settings, tt.engine
    secret = tt.link_secret
    sendgrid = SendGridVerifier(settings.sendgrid_webhook_public_key, sendgrid_tolerance_seconds)
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    twilio = TwilioVerifier(token, settings.public_url)
    help_text = sms_help_text(settings)
    pages = Environment(loader=PackageLoader("techtouch.entrypoints.web", "templates"), autoescape=True)

    app = FastAPI(title="techtouch", docs_url=None, redoc_url=None, openapi_url=None)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = pages.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def bad_link(reason: str) -> HTMLResponse:
        return page("message.html", 400, title="This link is not valid", message=reason)

    def gone() -> HTMLResponse:
        return page(
            "message.html", 404, title="This link has expired", message="We no longer hold what it refers to."
        )

    def verified(token: str, kind: str) -> dict[str, str] | HTMLResponse:
        try:
            return links.verify(secret, token, kind)
        except links.BadToken as exc:
            return bad_link(str(exc))

    def problem(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status)

    # ---------------------------------------------------------------------------------- webhooks

    @app.post("/webhooks/sendgrid")
    def sendgrid_events(request: Request, body: Annotated[bytes | None, Depends(_body)]) -> Response:
        if body is None:
            return problem(413, f"body larger than {MAX_WEBHOOK_BYTES} bytes")
        try:
            sendgrid.verify(
                body, request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
            )
        except NotConfigured as exc:
            return problem(503, str(exc))
        except Unverified as exc:
            log.warning("sendgrid webhook refused: %s", exc)
            return problem(403, str(exc))
        try:
            events = feedback.parse_sendgrid_events(body)
        except feedback.BadPayload as exc:
            return problem(400, str(exc))
        return JSONResponse(feedback.apply_sendgrid_events(engine, events).as_dict())

    def twilio_checked(request: Request, path: str, form: FormData | None) -> dict[str, str] | Response:
        """The verified form as text fields, or the response that refuses it."""
        if form is None:
            return problem(400, f"body must be {FORM_TYPE}")
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            twilio.verify(path, query, form, request.headers.get(TWILIO_SIGNATURE))
        except NotConfigured as exc:
            return problem(503, str(exc))
        except Unverified as exc:
            log.warning("twilio webhook %s refused: %s", path, exc)
            return problem(403, str(exc))
        return {k: str(v) for k, v in form.items()}

    @app.post("/webhooks/twilio/status")
    def twilio_status(request: Request, form: Annotated[FormData | None, Depends(_form)]) -> Response:
        params = twilio_checked(request, "/webhooks/twilio/status", form)
        if isinstance(params, Response):
            return params
        try:
            result = feedback.apply_twilio_status(engine, params, request.query_params.get("touch_key"))
        except feedback.BadPayload as exc:
            return problem(400, str(exc))
        return JSONResponse(result.as_dict())

    @app.post("/webhooks/twilio/inbound")
    def twilio_inbound(request: Request, form: Annotated[FormData | None, Depends(_form)]) -> Response:
        params = twilio_checked(request, "/webhooks/twilio/inbound", form)
        if isinstance(params, Response):
            return params
        try:
            inbound = feedback.apply_twilio_inbound(engine, params)
        except feedback.BadPayload as exc:
            return problem(400, str(exc))
        answer = MessagingResponse()
        if inbound.action == "help":
            answer.message(help_text)
        # STOP/START confirmations are sent by Twilio's own opt-out handling: answering too would
        # send the person a second message.
        return Response(str(answer), media_type=TWIML_TYPE)

    # ------------------------------------------------------------------------------------- links

    def with_link(kind: str, handle: Callable[[str, dict[str, str]], HTMLResponse]) -> Callable[..., Any]:
        def endpoint(token: str) -> HTMLResponse:
            payload = verified(token, kind)
            return payload if isinstance(payload, HTMLResponse) else handle(token, payload)

        return endpoint

    def unsubscribe_page(token: str, payload: dict[str, str]) -> HTMLResponse:
        channel = payload.get("channel", "email")
        if channel not in feedback.LINK_CHANNELS:
            return bad_link(f"unknown channel {channel!r}")
        return page("unsubscribe.html", what=CHANNEL_NAMES[channel])

    def unsubscribe_now(token: str, payload: dict[str, str]) -> HTMLResponse:
        channel = payload.get("channel", "email")
        if channel not in feedback.LINK_CHANNELS or not payload.get("contact"):
            return bad_link("this link does not name a contact and channel")
        feedback.unsubscribe(engine, payload["contact"], channel, source="link")
        return page("unsubscribed.html", what=CHANNEL_NAMES[channel])

    # GET only shows a confirmation: mail scanners follow links, and must not unsubscribe anyone.
    # POST is RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the confirmation's button.
    app.get("/u/{token}", response_class=HTMLResponse)(with_link("unsubscribe", unsubscribe_page))
    app.post("/u/{token}", response_class=HTMLResponse)(with_link("unsubscribe", unsubscribe_now))

    def survey_fields(payload: dict[str, str]) -> tuple[str, str, str, str] | None:
        fields = tuple(payload.get(name, "") for name in ("account", "contact", "survey", "answer"))
        return fields if all(fields) else None  # type: ignore[return-value]

    @app.get("/s/{token}", response_class=HTMLResponse)
    def survey_answer(token: str) -> HTMLResponse:
        payload = verified(token, "survey")
        if isinstance(payload, HTMLResponse):
            return payload
        fields = survey_fields(payload)
        if fields is None:
            return bad_link("this link does not name an account, contact, survey and answer")
        account_id, contact_id, survey, answer = fields
        try:
            recorded = feedback.record_survey_answer(engine, account_id, contact_id, survey, answer)
        except feedback.BadAnswer as exc:
            return bad_link(str(exc))
        if recorded is None:
            return gone()
        return page("survey.html", token=token, answer=recorded.value.split(":", 1)[1])

    @app.post("/s/{token}/comment", response_class=HTMLResponse)
    def survey_comment(token: str, form: Annotated[FormData | None, Depends(_form)]) -> HTMLResponse:
        payload = verified(token, "survey")
        if isinstance(payload, HTMLResponse):
            return payload
        fields = survey_fields(payload)
        if fields is None:
            return bad_link("this link does not name an account, contact, survey and answer")
        if form is None or not isinstance(form.get("comment"), str):
            return page("message.html", 400, title="Nothing to send", message="The comment was missing.")
        account_id, contact_id, survey, answer = fields
        try:
            stored = feedback.record_survey_comment(
                engine, account_id, contact_id, survey, answer, str(form["comment"])
            )
        except feedback.BadAnswer as exc:
            return page("message.html", 400, title="Your comment was not saved", message=str(exc))
        if stored is None:
            return gone()
        return page("message.html", title="Thank you", message="We read every comment.")

    def preferences_page(token: str, payload: dict[str, str], changed: str | None = None) -> HTMLResponse:
        state = feedback.preferences(engine, payload.get("contact", ""))
        if state is None:
            return gone()
        return page("preferences.html", state=state, changed=changed and CHANNEL_NAMES[changed])

    @app.get("/p/{token}", response_class=HTMLResponse)
    def preferences_show(token: str) -> HTMLResponse:
        payload = verified(token, "preferences")
        return payload if isinstance(payload, HTMLResponse) else preferences_page(token, payload)

    @app.post("/p/{token}", response_class=HTMLResponse)
    def preferences_change(token: str, form: Annotated[FormData | None, Depends(_form)]) -> HTMLResponse:
        payload = verified(token, "preferences")
        if isinstance(payload, HTMLResponse):
            return payload
        channel = form.get("channel") if form is not None else None
        if channel not in feedback.LINK_CHANNELS:
            return page(
                "message.html", 400, title="Nothing changed", message="Choose email or text messages."
            )
        result = feedback.unsubscribe(engine, payload.get("contact", ""), str(channel), source="preferences")
        if not result.found:
            return gone()
        return preferences_page(token, payload, changed=str(channel))

    # -------------------------------------------------------------------------------------- health

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.error("health check: database unreachable: %s", type(exc).__name__)
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
