"""The webhook and link service behind `techtouch serve`: provider feedback in, one-click pages out.

Routes, one router per area:

* webhooks.py  POST /webhooks/sendgrid        signed Event Webhook (ECDSA); 403 unsigned/tampered/stale,
                                              400 malformed, 413 too large
               POST /webhooks/twilio/status   status callbacks (X-Twilio-Signature); `touch_key` in the query
               POST /webhooks/twilio/inbound  inbound SMS: STOP/START/HELP keywords, TwiML answer
* links.py     GET/POST /u/{token}            unsubscribe: confirmation page, and RFC 8058 one-click POST
               GET /s/{token}                 one-click survey answer, thank-you page with a comment form
               POST /s/{token}/comment        the comment
               GET/POST /p/{token}            preferences: stop email or SMS
* health.py    GET /healthz                   the database answers

The CSM workspace (signed-in people; server-rendered pages, plain forms, every POST CSRF-checked):

* auth.py         GET/POST /login, POST /logout   sign-in (throttled), sessions, sign-out
* inbox.py        GET /inbox                      my CTAs: counts, filters, bulk bar, keyboard triage
* cta_actions.py  POST /inbox/ctas/{id}/<action>  start, done, snooze, assign, cancel, note; POST /inbox/bulk
* queue.py        GET /queue                      managers: the team queue and the team's CTAs
* cta_page.py     GET /inbox/ctas/{id}            a CTA: why it fired, the account, the timeline, the actions
* account_page.py GET /accounts/{id}              an account: context, journeys, CTAs, timeline
* reports_page.py GET /reports, /reports/<name>.csv  ops and managers: funnels, answer rates, NPS,
                                                   risk recovery, CTA workload; charts and CSV
* /static/...     the workspace's stylesheet and script (workspace.py renders the pages)

What they share (state, verifiers, pages, body and form reading) is in deps.py; what they raise
instead of answering is in errors.py, turned into responses by the handlers below. Database work
runs in FastAPI's thread pool (sync endpoints); bodies are read by async dependencies first.
Nothing personal is logged: counts and kinds only.

Bounded: every request body is counted while it is read, by the BodyLimit middleware around the
whole app (body_limit.py): `webhook_max_bytes` for the SendGrid webhook, `form_max_bytes` for
every other path, 413 beyond (a declared length at once, a chunked body when it crosses the
limit), before any route or parser sees it. A feedback write that meets a database lock for
longer than the retries wait (feedback.DatabaseBusy) is answered 503 with Retry-After, so the
provider (or the person) sends it again: nothing was recorded, and nothing is answered 200.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from techtouch.entrypoints.web import (
    account_page,
    auth,
    cta_actions,
    cta_page,
    health,
    inbox,
    links,
    queue,
    reports_page,
    webhooks,
)
from techtouch.entrypoints.web.body_limit import BodyLimit
from techtouch.entrypoints.web.deps import WebState, state_of
from techtouch.entrypoints.web.errors import PageError, Problem
from techtouch.entrypoints.web.pages import Pages
from techtouch.entrypoints.web.security import SENDGRID_TOLERANCE_SECONDS, SendGridVerifier, TwilioVerifier
from techtouch.services import feedback
from techtouch.services.app import App


async def problem_response(request: Request, exc: Problem) -> JSONResponse:
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


async def bad_payload_response(request: Request, exc: feedback.BadPayload) -> JSONResponse:
    """A verified webhook whose content the service cannot read: the provider's fault, so 400."""
    return JSONResponse({"error": str(exc)}, status_code=400)


async def page_error_response(request: Request, exc: PageError) -> HTMLResponse:
    return state_of(request).pages.message(exc.status, exc.title, exc.message)


BUSY_RETRY_AFTER_SECONDS = 10
WORKSPACE_KEY_INFO = b"techtouch-workspace"


class Static(StaticFiles):
    """The workspace's stylesheet and script, with nosniff (the CSP allows scripts from 'self' only)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        return response


async def database_busy_response(request: Request, exc: feedback.DatabaseBusy) -> JSONResponse | HTMLResponse:
    """The database stayed locked through every retry and nothing was recorded: 503 with Retry-After,
    so SendGrid and Twilio send the request again (never a 200 that loses an opt-out); a page for people."""
    headers = {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/webhooks/"):
        return JSONResponse({"error": str(exc)}, status_code=503, headers=headers)
    page = state_of(request).pages.message(
        503, "Please try again", "We could not save this just now. Please try again in a minute."
    )
    page.headers.update(headers)
    return page


def create_app(
    tt: App,
    *,
    sendgrid_tolerance_seconds: float = SENDGRID_TOLERANCE_SECONDS,
) -> FastAPI:
    """The service for these settings and this (migrated) database; nothing happens at import time.

    Fails early when links cannot be verified (no secret with a provider channel) or the SendGrid
    key is not a key. A provider whose key or token is unset gets 503 (so it retries), not 403.
    """
    settings = tt.settings
    # In this order: a missing link secret is reported before a bad SendGrid key.
    link_secret = tt.link_secret
    sendgrid = SendGridVerifier(settings.sendgrid_webhook_public_key, sendgrid_tolerance_seconds)
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    twilio = TwilioVerifier(token, settings.public_url)
    web = WebState(
        tt=tt,
        link_keys=(link_secret, *(k.get_secret_value().encode() for k in settings.previous_secret_keys)),
        sendgrid=sendgrid,
        twilio=twilio,
        pages=Pages(),
        sms_help=webhooks.sms_help_text(settings),
        workspace_key=hmac.new(link_secret, WORKSPACE_KEY_INFO, hashlib.sha256).digest(),
    )

    app = FastAPI(
        title="techtouch",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        exception_handlers={
            Problem: problem_response,
            feedback.BadPayload: bad_payload_response,
            PageError: page_error_response,
            feedback.DatabaseBusy: database_busy_response,
            auth.SignInRequired: auth.sign_in_required_response,
            auth.CsrfRefused: auth.csrf_refused_response,
        },
    )
    app.state.web = web
    app.include_router(webhooks.router)
    app.include_router(links.router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(inbox.router)
    app.include_router(cta_actions.router)
    app.include_router(queue.router)
    app.include_router(cta_page.router)
    app.include_router(account_page.router)
    app.include_router(reports_page.router)
    app.mount("/static", Static(packages=[("techtouch.entrypoints.web", "static")]), name="static")
    app.add_middleware(
        BodyLimit,
        default=settings.form_max_bytes,
        limits={webhooks.SENDGRID_PATH: settings.webhook_max_bytes},
    )
    return app
