"""Signed one-click links: unsubscribe, preferences and survey answers.

A token is `base64url(json payload) + "." + base64url(HMAC-SHA256(secret, first part))`, without
padding. It is deterministic (the same payload always gives the same link, so a re-rendered email
carries the same URLs), URL-safe, and verified in constant time. The payload is signed, not
encrypted: it holds ids and answers, never anything secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping

KINDS = ("unsubscribe", "preferences", "survey")


class BadToken(ValueError):
    """A token that was tampered with, signed with another secret, or is not a token at all."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray):
        raise TypeError("the signing secret must be bytes")
    if not secret:
        raise ValueError("the signing secret must not be empty")


def _signature(secret: bytes, body: str) -> str:
    return _b64encode(hmac.new(bytes(secret), body.encode("ascii"), hashlib.sha256).digest())


def sign(secret: bytes, payload: Mapping[str, str]) -> str:
    """A URL-safe, deterministic token for a payload of strings."""
    _check_secret(secret)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in payload.items()):
        raise TypeError("a link payload maps strings to strings")
    data = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body = _b64encode(data.encode("utf-8"))
    return f"{body}.{_signature(secret, body)}"


def verify(secret: bytes, token: str, kind: str | None = None) -> dict[str, str]:
    """The payload of a token signed with `secret`; BadToken when it is not (or not of `kind`)."""
    _check_secret(secret)
    if not isinstance(token, str) or token.count(".") != 1 or not token.isascii():
        raise BadToken("malformed link token")
    body, signature = token.split(".")
    if not hmac.compare_digest(_signature(secret, body).encode("ascii"), signature.encode("ascii")):
        raise BadToken("link token signature does not match")
    try:
        payload = json.loads(_b64decode(body).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadToken("malformed link token payload") from None
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in payload.items()
    ):
        raise BadToken("malformed link token payload")
    if kind is not None and payload.get("kind") != kind:
        raise BadToken(f"not a {kind} link")
    return payload


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def unsubscribe_url(public_url: str, secret: bytes, contact_id: str, channel: str = "email") -> str:
    token = sign(secret, {"kind": "unsubscribe", "contact": contact_id, "channel": channel})
    return f"{_base(public_url)}/u/{token}"


def preferences_url(public_url: str, secret: bytes, contact_id: str) -> str:
    token = sign(secret, {"kind": "preferences", "contact": contact_id})
    return f"{_base(public_url)}/p/{token}"


def survey_url(
    public_url: str, secret: bytes, account_id: str, contact_id: str, survey: str, answer: str
) -> str:
    """A one-click answer: following it records `answer` to `survey` for this contact."""
    token = sign(
        secret,
        {
            "kind": "survey",
            "account": account_id,
            "contact": contact_id,
            "survey": survey,
            "answer": str(answer),
        },
    )
    return f"{_base(public_url)}/s/{token}"


class LinkSigner:
    """The links of one deployment (public URL + secret), with a repr that never shows the secret."""

    def __init__(self, public_url: str, secret: bytes):
        _check_secret(secret)
        self.public_url = _base(public_url)
        self._secret = bytes(secret)

    def __repr__(self) -> str:
        return f"LinkSigner(public_url={self.public_url!r}, secret=<hidden>)"

    def unsubscribe(self, contact_id: str, channel: str = "email") -> str:
        return unsubscribe_url(self.public_url, self._secret, contact_id, channel)

    def preferences(self, contact_id: str) -> str:
        return preferences_url(self.public_url, self._secret, contact_id)

    def survey(self, account_id: str, contact_id: str, survey: str, answer: str | int) -> str:
        return survey_url(self.public_url, self._secret, account_id, contact_id, survey, str(answer))

    def survey_url_for(self, account_id: str, contact_id: str) -> Callable[[str, str | int], str]:
        """The `survey_url(survey, answer)` callable that a template context carries."""

        def survey_url_(survey: str, answer: str | int) -> str:
            return self.survey(account_id, contact_id, survey, answer)

        return survey_url_

    def verify(self, token: str, kind: str | None = None) -> dict[str, str]:
        return verify(self._secret, token, kind)
