"""Signed-in browsers: server-side sessions for the CSM workspace.

The cookie holds a random token (256 bits); the `web_sessions` table holds only its SHA-256, so a
copy of the database does not let anyone sign in as anyone. A session ends at the first of:
sign-out (the row is deleted), its absolute lifetime (`expires_at`, set once at sign-in), an idle
gap longer than the idle timeout (`last_seen_at`), or its user being disabled (`users.set_disabled`
deletes the rows, and a lookup also checks the flag). Every sign-in makes a new token, never reuses
one that the browser brought (session fixation).

Each session carries its own CSRF token (a second random value): the workspace's forms post it
back, and a POST whose token does not match is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update

from techtouch.adapters.db.models import User, WebSession
from techtouch.domain.access import Actor, Role
from techtouch.services.app import App

IDLE_TIMEOUT = timedelta(hours=12)
LIFETIME = timedelta(days=7)
# last_seen_at is written at most this often: a page view is a read, not a write per request.
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_BYTES = 32


@dataclass(frozen=True)
class NewSession:
    """What the browser gets at sign-in: the cookie's token (never stored) and the CSRF token."""

    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    """A live session, as a request sees it."""

    id: int
    actor: Actor
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create(
    app: App,
    user_id: int,
    *,
    lifetime: timedelta = LIFETIME,
    idle: timedelta = IDLE_TIMEOUT,
    now: datetime | None = None,
) -> NewSession:
    """A new session for `user_id` (after a successful sign-in), with fresh tokens.

    Sessions that are over (by either clock) are deleted on the way: the table holds live
    sessions and the few that ended since the last sign-in, not a growing history.
    """
    at = now or _now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = secrets.token_urlsafe(TOKEN_BYTES)
    expires = at + lifetime
    with app.engine.begin() as connection:
        connection.execute(
            delete(WebSession).where(or_(WebSession.expires_at <= at, WebSession.last_seen_at < at - idle))
        )
        connection.execute(
            insert(WebSession).values(
                token_hash=token_hash(token),
                user_id=user_id,
                csrf_token=csrf,
                created_at=at,
                expires_at=expires,
                last_seen_at=at,
            )
        )
    return NewSession(token, csrf, expires)


def lookup(
    app: App, token: str | None, *, idle: timedelta = IDLE_TIMEOUT, now: datetime | None = None
) -> Session | None:
    """The live session for a cookie's token, or None (no token, unknown, expired, idle, disabled user).

    One indexed read (the session with its user); `last_seen_at` is moved at most once a minute.
    """
    if not token or len(token) > 256:
        return None
    at = now or _now()
    with app.engine.connect() as connection:
        row = connection.execute(
            select(
                WebSession.id,
                WebSession.csrf_token,
                WebSession.expires_at,
                WebSession.last_seen_at,
                User.id.label("user_id"),
                User.email,
                User.name,
                User.role,
                User.team,
                User.title,
                User.disabled,
            )
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == token_hash(token))
        ).first()
    if row is None:
        return None
    if row.disabled or row.expires_at <= at or row.last_seen_at < at - idle:
        return None
    if at - row.last_seen_at >= TOUCH_EVERY:
        with app.engine.begin() as connection:
            connection.execute(update(WebSession).where(WebSession.id == row.id).values(last_seen_at=at))
    actor = Actor(row.user_id, row.email, row.name, Role(row.role), row.team, row.title)
    return Session(row.id, actor, row.csrf_token, row.expires_at)


def end(app: App, token: str | None) -> bool:
    """Sign out: delete the session of this token (True when there was one)."""
    if not token or len(token) > 256:
        return False
    with app.engine.begin() as connection:
        removed = connection.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
    return bool(removed.rowcount)


def end_all(app: App, user_id: int) -> int:
    """Every session of a user (e.g. after a password change); how many there were."""
    with app.engine.begin() as connection:
        removed = connection.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(removed.rowcount or 0)
