"""What every page of the CSM workspace shares: rendering in the layout, the headers, flash messages,
the team's date, the 403 page, and safe `next` redirects.

Pages are rendered from `templates/workspace/` (autoescaped) into `_layout.html`, which draws the
navigation for the signed-in user's role and the message left by the previous action (a "flash":
a short-lived cookie, signed so that nobody else can put words on our pages). A template is named
either `"inbox.html"` or `"workspace/inbox.html"`: both resolve to the same file.

Every workspace page is sent with WORKSPACE_HEADERS: never cached (it shows customer data to one
signed-in person), never framed (clickjacking of the action buttons), and a CSP that allows only
our own static script and stylesheet: no inline script can run even if some text slipped through
escaping.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, pass_context
from markupsafe import Markup

from techtouch.domain.access import Actor, Role, can_see_queue, can_see_reports
from techtouch.entrypoints.web.deps import state_of

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
WORKSPACE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CSP,
}
FLASH_COOKIE = "tt_flash"
FLASH_MAX_ITEMS = 12
FLASH_MAX_TEXT = 300
NEXT_MAX = 2000


@functools.cache
def environment() -> Environment:
    """The workspace's templates; built once per process (a Jinja environment caches compiled templates)."""
    env = Environment(
        loader=ChoiceLoader(
            [
                PackageLoader("techtouch.entrypoints.web", "templates/workspace"),
                PackageLoader("techtouch.entrypoints.web", "templates"),
            ]
        ),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["csrf_input"] = csrf_input
    env.filters["label"] = label
    return env


@pass_context
def csrf_input(context: Any) -> Markup:
    """`{{ csrf_input() }}`: the hidden field every workspace form posts back (CsrfChecked)."""
    return Markup('<input type="hidden" name="csrf_token" value="%s">') % (context.get("csrf_token") or "")


def label(value: object) -> str:
    """`renewal_confirmed` → `Renewal confirmed`: outcomes, statuses and reasons as words."""
    text = str(value or "").replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


def today(request: Request) -> date:
    """The team's local date (`settings.timezone`): what "overdue" and "due today" are measured against."""
    return datetime.now(state_of(request).tt.settings.zone).date()


def nav_items(actor: Actor | None, path: str) -> list[dict[str, Any]]:
    """The navigation for this role: what the user may open, nothing they would get a 403 for."""
    if actor is None:
        return []
    items = [("Inbox" if actor.role is not Role.OPS else "All CTAs", "/inbox")]
    if can_see_queue(actor):
        items.append(("Queue", "/queue"))
    if can_see_reports(actor):
        items.append(("Reports", "/reports"))
    return [
        {"label": name, "href": href, "current": path == href or path.startswith(href + "/")}
        for name, href in items
    ]


def render(
    request: Request, actor: Actor | None, template_name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A workspace page: `template_name` (under templates/workspace/) in the layout, with `actor`,
    `csrf_token`, `today`, `nav` and the pending flash message in its context, and the page headers.

    The flash message is consumed: its cookie is deleted by this response. `status` is the HTTP
    status: a template variable cannot be called `status` (nor `request`, `actor`, `template_name`).
    """
    name = template_name.removeprefix("workspace/")
    session = getattr(request.state, "tt_session", None)
    flash = read_flash(request)
    values: dict[str, Any] = {
        "actor": actor,
        "csrf_token": session.csrf_token if session is not None else "",
        "today": today(request),
        "nav": nav_items(actor, request.url.path),
        "path": request.url.path,
        "here": _here(request),
        "flash": flash,
    }
    values.update(context)
    html = environment().get_template(name).render(**values)
    response = HTMLResponse(html, status_code=status, headers=WORKSPACE_HEADERS)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/", secure=secure_cookies(request), httponly=True)
    return response


def message(
    request: Request, actor: Actor | None, status: int, title: str, text: str, **context: Any
) -> HTMLResponse:
    """A page that only says something (403, 404, 429...), in the layout."""
    return render(request, actor, "message.html", status, title=title, message=text, **context)


def forbidden(request: Request, actor: Actor) -> HTMLResponse:
    """The 403 page; logged with the route and the user's id, nothing personal (no email, no account)."""
    route = request.scope.get("route")
    log.warning(
        "forbidden: %s %s user_id=%s role=%s",
        request.method,
        getattr(route, "path", "?"),
        actor.id,
        actor.role,
    )
    return message(request, actor, 403, "Not yours to open", "You do not have access to this page or action.")


def not_found(request: Request, actor: Actor | None, what: str = "page") -> HTMLResponse:
    return message(request, actor, 404, "Not found", f"There is no such {what}.")


# --- redirects and flash messages -----------------------------------------------------------------


def safe_next(value: str | None) -> str | None:
    """`value` when it is a path on this site (`/inbox?x=1`), else None: never `https://evil`,
    `//evil`, `/\\evil` or `javascript:`. The guard against open redirects after a sign-in or action."""
    if not value or len(value) > NEXT_MAX or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ch in value for ch in "\\\r\n\t\0") or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def secure_cookies(request: Request) -> bool:
    """Cookies are `Secure` when the workspace is served over https (its public URL says so)."""
    return urlsplit(state_of(request).tt.settings.public_url).scheme == "https"


def workspace_key(request: Request, purpose: str) -> bytes:
    """A key for one purpose (login CSRF, flash, throttling), derived from the app's secret."""
    return hmac.new(state_of(request).workspace_key, purpose.encode("ascii"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def redirect(
    request: Request,
    url: str,
    text: str | None = None,
    *,
    error: bool = False,
    items: list[str] | None = None,
) -> RedirectResponse:
    """303 to `url` (a local path), leaving `text` (and up to FLASH_MAX_ITEMS `items`) for the next page."""
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    if text:
        shown = [i[:FLASH_MAX_TEXT] for i in (items or [])[:FLASH_MAX_ITEMS]]
        if items and len(items) > FLASH_MAX_ITEMS:
            shown.append(f"… and {len(items) - FLASH_MAX_ITEMS} more")
        payload = _b64(
            json.dumps({"m": text[:FLASH_MAX_TEXT], "k": "error" if error else "ok", "i": shown}).encode()
        )
        mac = _b64(hmac.new(workspace_key(request, "flash"), payload.encode(), hashlib.sha256).digest())
        response.set_cookie(
            FLASH_COOKIE,
            f"{payload}.{mac}",
            max_age=300,
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
        )
    return response


def read_flash(request: Request) -> dict[str, Any] | None:
    """The message the previous action left ({text, kind, items}), or None (none, or not ours)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw or len(raw) > 4096:
        return None
    payload, mac = raw.rsplit(".", 1)
    expected = _b64(hmac.new(workspace_key(request, "flash"), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(data, dict):
        return None
    items = data.get("i")
    return {
        "text": str(data.get("m", "")),
        "kind": "error" if data.get("k") == "error" else "ok",
        "items": [str(i) for i in items] if isinstance(items, list) else [],
    }


def _here(request: Request) -> str:
    """This page's local path with its query: what a form on it posts as `next`."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
