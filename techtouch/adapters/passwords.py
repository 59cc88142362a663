"""Password hashing with Argon2id (argon2-cffi, the reference binding; OWASP's first choice).

Why a library: the parameters, salts, encoding and constant-time verify are exactly what must not
be hand-written. A hash made with older parameters is upgraded at the next sign-in
(`needs_rehash`).
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, the library's current defaults (RFC 9106 low-memory profile)


@functools.cache
def _dummy() -> str:
    """Verifying against this when the user does not exist costs as much as a real check, so the
    time a sign-in takes does not tell whether an email has an account. Made on first use, not at
    import: a hash costs ~0.1 s and 64 MiB, and most processes that import this never verify."""
    return _HASHER.hash(secrets.token_urlsafe(16))


MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 takes any length; a bound keeps a hostile form from costing more


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; a missing user (None) still spends the same time."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def generate_password() -> str:
    """A random password for `users add` without one: 20 URL-safe characters (~120 bits)."""
    return secrets.token_urlsafe(15)
