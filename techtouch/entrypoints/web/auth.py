"""Signing in to the CSM workspace: the sign-in page, sessions, sign-out, and the CSRF check.

* `GET /login`   the form ("Email", "Password", "Sign in"); `?next=/local/path` comes back after.
* `POST /login`  checks the form's CSRF token, then the password (services.users.authenticate,
                 throttled per email and per client: 429 with Retry-After); wrong email or wrong
                 password get the same 401 message. Success: a NEW session (services.sessions; never
                 one the browser brought: session fixation), cookie `tt_session` (HttpOnly,
                 SameSite=Lax, Path=/, Secure when the public URL is https), 303 to `next` if it is
                 a local path, else /inbox.
* `POST /logout` deletes the session row, so the cookie is dead even if it was copied.

For routes: `SignedIn` (the Actor; not signed in → 303 to /login?next=<this page>) and
`CsrfChecked` (every workspace POST: the form field `csrf_token` must equal the session's, else
403 and nothing is done). The sign-in form has no session yet, so its CSRF token is a
double-submit one: a random value in a `tt_login` cookie, and its HMAC (keyed by a key derived
from the app's secret) in the form; a page on another site can neither read the cookie nor
compute the MAC, so it cannot sign a victim in to the attacker's account.

Logged: refusals with the route and a user id, never an email, a password or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from techtouch.domain.access import Actor
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.workspace import (
    message,
    redirect,
    render,
    safe_next,
    secure_cookies,
    workspace_key,
)
from techtouch.services import sessions, users

log = logging.getLogger(__name__)

router = APIRouter()

SESSION_COOKIE = "tt_session"
LOGIN_COOKIE = "tt_login"
LOGIN_COOKIE_SECONDS = 2 * 3600
CSRF_FIELD = "csrf_token"
HOME = "/inbox"
BAD_CREDENTIALS = "That email and password do not match an account. Check both and try again."


class SignInRequired(Exception):
    """No live session: the handler answers 303 to /login, with `next` when there is a page to return to."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class CsrfRefused(Exception):
    """A workspace POST without the session's CSRF token: 403, nothing done."""

    def __init__(self, actor: Actor) -> None:
        super().__init__("the form's security token is missing or wrong")
        self.actor = actor


def _settings_times(request: Request) -> tuple[timedelta, timedelta]:
    settings = state_of(request).tt.settings
    return timedelta(hours=settings.session_idle_hours), timedelta(days=settings.session_lifetime_days)


def optional_session(request: Request) -> sessions.Session | None:
    """The live session of this browser, or None. Sync: FastAPI runs the lookup in its thread pool.

    Kept on `request.state` too, so that rendering a page finds the CSRF token without a second read.
    """
    idle, _ = _settings_times(request)
    session = sessions.lookup(state_of(request).tt, request.cookies.get(SESSION_COOKIE), idle=idle)
    request.state.tt_session = session
    return session


OptionalSession = Annotated[sessions.Session | None, Depends(optional_session)]


def signed_in(request: Request, session: OptionalSession) -> Actor:
    """The signed-in user; a page asked without a session goes to /login and comes back here after."""
    if session is None:
        here = None
        if request.method in ("GET", "HEAD"):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(here)
    return session.actor


SignedIn = Annotated[Actor, Depends(signed_in)]


async def csrf_checked(request: Request, session: OptionalSession) -> None:
    """Refuse (403) a POST whose form field `csrf_token` is not this session's; no session → sign in."""
    if session is None:
        raise SignInRequired(None)
    try:
        form = await request.form()
        sent = form.get(CSRF_FIELD)
    except Exception:  # not a form, or a broken one: no token
        sent = None
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        route = request.scope.get("route")
        log.warning("csrf refused: %s user_id=%s", getattr(route, "path", request.url.path), session.actor.id)
        raise CsrfRefused(session.actor)


CsrfChecked = Depends(csrf_checked)


async def sign_in_required_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = "/login"
    if exc.next_path and safe_next(exc.next_path):
        target += "?next=" + quote(exc.next_path, safe="/")
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


async def csrf_refused_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    return message(
        request,
        exc.actor,
        403,
        "This form has expired",
        "The form was missing its security token (or it was from another session). "
        "Go back, reload the page and try again.",
    )


# --- the sign-in form's own CSRF token (double submit) --------------------------------------------


def _login_mac(request: Request, nonce: str) -> str:
    digest = hmac.new(workspace_key(request, "login-csrf"), nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _login_nonce(request: Request) -> str:
    """The browser's `tt_login` value if it has a sane one (two open sign-in tabs both work), else new."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce
    return secrets.token_urlsafe(24)


def _login_page(
    request: Request, status: int = 200, *, error: str | None = None, email: str = "", next_path: str = ""
) -> HTMLResponse:
    nonce = _login_nonce(request)
    response = render(
        request,
        None,
        "login.html",
        status,
        csrf_token=_login_mac(request, nonce),
        error=error,
        email=email,
        next_path=safe_next(next_path) or "",
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_COOKIE_SECONDS,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    return response


@router.get("/login", response_model=None)
def login_page(request: Request, session: OptionalSession, next: str = "") -> Response:
    if session is not None:
        return RedirectResponse(safe_next(next) or HOME, status_code=303)
    return _login_page(request, next_path=next)


@router.post("/login", response_model=None)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(csrf_token.encode(), _login_mac(request, nonce).encode()):
        log.warning("sign-in refused: the form's CSRF token is missing or wrong")
        return _login_page(
            request,
            403,
            error="This sign-in form has expired (or cookies are off). Please sign in again.",
            email=email,
            next_path=next,
        )
    if not email.strip() or not password:
        return _login_page(request, 401, error=BAD_CREDENTIALS, email=email, next_path=next)
    web = state_of(request)
    client = request.client.host if request.client else "unknown"
    try:
        actor = users.authenticate(
            web.tt, email, password, client=client, secret=workspace_key(request, "login-throttle")
        )
    except users.Throttled as exc:
        log.warning("sign-in throttled (retry after %s s)", exc.retry_after)
        response = message(
            request,
            None,
            429,
            "Too many attempts",
            f"Too many failed sign-ins. Try again in {max(1, round(exc.retry_after / 60))} minute(s).",
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if actor is None:
        return _login_page(request, 401, error=BAD_CREDENTIALS, email=email, next_path=next)
    # A session the browser may already hold is ended: one browser, one session, always a new token.
    sessions.end(web.tt, request.cookies.get(SESSION_COOKIE))
    idle, lifetime = _settings_times(request)
    new = sessions.create(web.tt, actor.id, idle=idle, lifetime=lifetime)
    log.info("signed in: user_id=%s", actor.id)
    done = RedirectResponse(safe_next(next) or HOME, status_code=303, headers={"Cache-Control": "no-store"})
    done.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    done.delete_cookie(LOGIN_COOKIE, path="/login", secure=secure_cookies(request), httponly=True)
    return done


@router.post("/logout", response_model=None, dependencies=[CsrfChecked])
def logout(request: Request, actor: SignedIn) -> Response:
    sessions.end(state_of(request).tt, request.cookies.get(SESSION_COOKIE))
    log.info("signed out: user_id=%s", actor.id)
    response = redirect(request, "/login", "You are signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookies(request), httponly=True)
    return response
