"""The people who work CTAs: add, list, disable, sign in (with throttling), and who they are.

A user is a CSM, manager or ops person with a name and title (the emails a CSM sends sign with
them) and a team (a manager sees the team's CTAs). An account's `csm_email` does not need a user:
its CTAs are still assigned and digested; only signing in and the real name need one.

Failed sign-ins are throttled per email and per client address (a keyed hash of each is stored,
never the address or the email itself): `MAX_FAILURES_PER_EMAIL` in `WINDOW` lock that email out
for the rest of the window, whatever the password, and `MAX_FAILURES_PER_CLIENT` that client.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.orm import Session

from techtouch.adapters import passwords
from techtouch.adapters.db.models import LoginFailure, User, WebSession
from techtouch.domain.access import Actor, Role
from techtouch.services.app import App

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20
NAME_MAX = 200


class UserError(ValueError):
    """A bad user command: the message says what to change."""


class UnknownUser(LookupError):
    def __init__(self, email: str) -> None:
        super().__init__(f"no user {email!r} (see `techtouch users list`)")


class DisabledUser(PermissionError):
    def __init__(self, email: str) -> None:
        super().__init__(f"user {email!r} is disabled")


class Throttled(PermissionError):
    """Too many failed sign-ins: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed sign-ins; try again later")
        self.retry_after = retry_after


@dataclass(frozen=True)
class UserRow:
    id: int
    email: str
    name: str
    role: str
    title: str | None
    team: str | None
    disabled: bool
    created_at: datetime


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise UserError(f"not an email address: {exc}") from None


def add_user(
    app: App,
    email: str,
    *,
    name: str,
    role: str,
    password: str,
    title: str | None = None,
    team: str | None = None,
) -> UserRow:
    """Create a user; UserError for a bad field or an email that exists."""
    address = normalize_email(email)
    if not name.strip() or len(name) > NAME_MAX:
        raise UserError(f"--name: a name of 1 to {NAME_MAX} characters")
    try:
        Role(role)
    except ValueError:
        raise UserError(f"--role: one of {', '.join(r.value for r in Role)} (got {role!r})") from None
    try:
        hashed = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise UserError(f"password: {exc}") from None
    with app.engine.begin() as connection:
        if connection.execute(select(User.id).where(User.email == address)).first() is not None:
            raise UserError(f"a user {address!r} exists already")
        connection.execute(
            insert(User).values(
                email=address,
                name=name.strip(),
                role=role,
                title=(title or "").strip() or None,
                team=(team or "").strip() or None,
                password_hash=hashed,
                disabled=False,
            )
        )
        return _row(connection, address)


def list_users(app: App) -> list[UserRow]:
    with app.engine.connect() as connection:
        rows = _orm(connection).scalars(select(User).order_by(User.role, User.email))
        return [_from_model(u) for u in rows]


def set_disabled(app: App, email: str, disabled: bool = True) -> UserRow:
    """Disable (or enable) a user; a disabled user's sessions end at once."""
    address = email.strip().lower()
    with app.engine.begin() as connection:
        changed = connection.execute(
            update(User).where(User.email == address).values(disabled=disabled)
        ).rowcount
        if not changed:
            raise UnknownUser(address)
        if disabled:
            user_id = select(User.id).where(User.email == address).scalar_subquery()
            connection.execute(delete(WebSession).where(WebSession.user_id == user_id))
        return _row(connection, address)


def actor_for(connection: Connection, email: str) -> Actor:
    """The enabled user with this email as an Actor (the CLI's `--as`)."""
    address = email.strip().lower()
    user = _orm(connection).scalar(select(User).where(User.email == address))
    if user is None:
        raise UnknownUser(address)
    if user.disabled:
        raise DisabledUser(address)
    return to_actor(user)


def to_actor(user: User) -> Actor:
    return Actor(user.id, user.email, user.name, Role(user.role), user.team, user.title)


def people(connection: Connection) -> dict[str, tuple[str, str | None]]:
    """email → (name, title) of every user: who a CSM's emails sign as."""
    rows = connection.execute(select(User.email, User.name, User.title))
    return {r.email: (r.name, r.title) for r in rows}


def _key(kind: str, value: str, secret: bytes) -> str:
    digest = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:64]}"


def authenticate(
    app: App, email: str, password: str, *, client: str, secret: bytes, now: datetime | None = None
) -> Actor | None:
    """The user when email and password match an enabled user; None otherwise (and the failure
    counts). Throttled when the email or the client failed too often within WINDOW."""
    at = now or datetime.now(UTC)
    address = email.strip().lower()[:254]
    keys = (_key("email", address, secret), _key("client", client, secret))
    with app.engine.begin() as connection:
        since = at - WINDOW
        connection.execute(delete(LoginFailure).where(LoginFailure.at < at - 4 * WINDOW))
        counts: dict[str, int] = {
            key: count
            for key, count in connection.execute(
                select(LoginFailure.key, func.count())
                .where(LoginFailure.key.in_(keys), LoginFailure.at >= since)
                .group_by(LoginFailure.key)
            ).tuples()
        }
        if (
            counts.get(keys[0], 0) >= MAX_FAILURES_PER_EMAIL
            or counts.get(keys[1], 0) >= MAX_FAILURES_PER_CLIENT
        ):
            oldest = connection.execute(
                select(func.min(LoginFailure.at)).where(LoginFailure.key.in_(keys), LoginFailure.at >= since)
            ).scalar()
            retry = int(((oldest or at) + WINDOW - at).total_seconds()) + 1
            raise Throttled(max(retry, 1))
        user = _orm(connection).scalar(select(User).where(User.email == address))
        ok = passwords.verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            connection.execute(insert(LoginFailure), [{"key": k, "at": at} for k in keys])
            return None
        if passwords.needs_rehash(user.password_hash):
            connection.execute(
                update(User).where(User.id == user.id).values(password_hash=passwords.hash_password(password))
            )
        connection.execute(delete(LoginFailure).where(LoginFailure.key == keys[0]))
        return to_actor(user)


def _orm(connection: Connection) -> Session:
    """User objects from a Core connection: `connection.execute(select(User)).scalar()` is the
    first column (the id), not the object. The session joins the connection's transaction."""
    return Session(bind=connection)


def _row(connection: Connection, address: str) -> UserRow:
    user = _orm(connection).scalars(select(User).where(User.email == address)).one()
    return _from_model(user)


def _from_model(user: User) -> UserRow:
    return UserRow(
        user.id, user.email, user.name, user.role, user.title, user.team, user.disabled, user.created_at
    )
