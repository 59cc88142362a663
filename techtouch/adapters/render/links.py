"""Signed one-click links: unsubscribe, preferences and survey answers.

A token is `base64url(json payload) + "." + base64url(HMAC-SHA256(kind key, first part))`, without
padding. It is deterministic (the same payload always gives the same link, so a re-rendered email
carries the same URLs), URL-safe, and verified in constant time. The payload is signed, not
encrypted: it holds ids and answers, never anything secret.

Namespaced by kind: the MAC key of a token is derived from the secret and the link's kind
(`HMAC(secret, "techtouch-link:" + kind)`), and the kind is in the signed payload too, so a token
minted for one kind never verifies as another, whatever its payload says.

Rotating keys: verification takes a key list. The first key signs every new link; every key of
the list verifies, so after a rotation (new key first, the old one kept among the previous keys)
links in mail already sent keep working, and removing an old key revokes every link it signed.
Tokens minted before kinds were namespaced (MAC under the secret itself, kind only in the
payload) still verify, for their own kind only: unsubscribe links already in inboxes must work.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring as _text

KINDS = ("unsubscribe", "preferences", "survey")
_NAMESPACE = b"techtouch-link:"


class BadToken(ValueError):
    """A token that was tampered with, signed with another secret, or is not a token at all."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64encode(data: bytes) -> str:
    """base64.urlsafe_b64encode(data) without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray):
        raise TypeError("the signing secret must be bytes")
    if not secret:
        raise ValueError("the signing secret must not be empty")


def _keys(keys: bytes | Sequence[bytes]) -> tuple[bytes, ...]:
    """One key or a key list (the first signs), each checked; at least one."""
    found = (keys,) if isinstance(keys, bytes | bytearray) else tuple(keys)
    if not found:
        raise ValueError("at least one link key is needed")
    for key in found:
        _check_secret(key)
    return tuple(bytes(key) for key in found)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown link kind {kind!r}; expected one of {', '.join(KINDS)}")


@functools.lru_cache(maxsize=64)
def _kind_key(secret: bytes, kind: str) -> bytes:
    """The MAC key of `kind`'s links: a token of one kind is never valid as another. Cached: a
    day's run signs a dozen links per message with the same few keys (an HMAC each saved)."""
    return hmac.new(secret, _NAMESPACE + kind.encode("ascii"), hashlib.sha256).digest()


def _signature(key: bytes, body: str) -> str:
    return _b64encode(hmac.digest(key, body.encode("ascii"), "sha256"))


_INNER_PAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104's ipad and opad, as translate tables
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class _Mac:
    """HMAC-SHA256 under one key (RFC 2104, as `hmac.new(key, message, sha256)`), with the key's two
    padded blocks hashed once and copied per message: OpenSSL 3 sets a MAC context up anew for every
    `hmac.new` / `hmac.digest`, which cost more than hashing a link's hundred bytes."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > 64:  # SHA-256's block: a longer key is hashed first
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def __call__(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=64)
def _kind_mac(secret: bytes, kind: str) -> _Mac:
    """The MAC that signs `kind`'s links under `secret` (see _kind_key)."""
    return _Mac(_kind_key(secret, kind))


def _token(mac: _Mac, data: bytes) -> str:
    """`base64url(data) + "." + base64url(MAC(first part))`, unpadded, kept in bytes until the end."""
    body = binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")
    signature = binascii.b2a_base64(mac(body), newline=False).translate(_URLSAFE).rstrip(b"=")
    return (body + b"." + signature).decode("ascii")


def _payload_json(payload: Mapping[str, str]) -> str:
    """`json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of a map of
    strings, character for character (the same C string encoder), without the encoder's set-up,
    which cost more than the signing itself."""
    pairs = [f"{_text(k)}:{_text(v)}" for k, v in sorted(payload.items())]
    return "{" + ",".join(pairs) + "}"


def sign(secret: bytes, kind: str, payload: Mapping[str, str]) -> str:
    """A URL-safe, deterministic token of `kind` for a payload of strings (`kind` is added to it)."""
    _check_secret(secret)
    _check_kind(kind)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in payload.items()):
        raise TypeError("a link payload maps strings to strings")
    return _token(_kind_mac(bytes(secret), kind), _payload_json({**payload, "kind": kind}).encode("utf-8"))


def verify(keys: bytes | Sequence[bytes], token: str, kind: str) -> dict[str, str]:
    """The payload of a `kind` token signed with any of `keys`; BadToken when it is not one."""
    candidates = _keys(keys)
    _check_kind(kind)
    if not isinstance(token, str) or token.count(".") != 1 or not token.isascii():
        raise BadToken("malformed link token")
    body, signature = token.split(".")
    given = signature.encode("ascii")
    # Every key is tried (no early exit): the time taken does not tell which key matched.
    matched = False
    for key in candidates:
        for mac_key in (_kind_key(key, kind), key):  # namespaced, then the format of older links
            matched |= hmac.compare_digest(_signature(mac_key, body).encode("ascii"), given)
    if not matched:
        raise BadToken("link token signature does not match")
    try:
        payload = json.loads(_b64decode(body).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadToken("malformed link token payload") from None
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in payload.items()
    ):
        raise BadToken("malformed link token payload")
    if payload.get("kind") != kind:
        raise BadToken(f"not a {kind} link")
    return payload


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def unsubscribe_url(public_url: str, secret: bytes, contact_id: str, channel: str = "email") -> str:
    token = sign(secret, "unsubscribe", {"contact": contact_id, "channel": channel})
    return f"{_base(public_url)}/u/{token}"


def preferences_url(public_url: str, secret: bytes, contact_id: str) -> str:
    token = sign(secret, "preferences", {"contact": contact_id})
    return f"{_base(public_url)}/p/{token}"


def survey_url(
    public_url: str, secret: bytes, account_id: str, contact_id: str, survey: str, answer: str
) -> str:
    """A one-click answer: following it shows `answer` to `survey` selected, to confirm."""
    token = sign(
        secret,
        "survey",
        {"account": account_id, "contact": contact_id, "survey": survey, "answer": str(answer)},
    )
    return f"{_base(public_url)}/s/{token}"


class LinkSigner:
    """The links of one deployment (public URL + key list), with a repr that never shows a key.

    `secret` signs; `previous` are the keys of earlier rotations, which still verify. Its links are
    those of unsubscribe_url, preferences_url and survey_url, to the byte, made faster for a daily
    run's dozen per message (eleven survey links for an NPS scale were the largest share of a
    message's cost outside Jinja): the secret is checked and each kind's MAC set up once, and each
    payload's fixed keys are written in their sorted order instead of through json.dumps.
    """

    def __init__(self, public_url: str, secret: bytes, previous: Sequence[bytes] = ()):
        self.public_url = _base(public_url)
        self._keys = _keys([secret, *previous])
        self._secret = self._keys[0]
        self._macs = {kind: _kind_mac(self._secret, kind) for kind in KINDS}

    def __repr__(self) -> str:
        return f"LinkSigner(public_url={self.public_url!r}, keys=<{len(self._keys)} hidden>)"

    # Each payload below is _payload_json({..., "kind": kind}): its keys in sorted order, every value
    # through the same string encoder (a TypeError for anything but a string, as sign() raises).

    def unsubscribe(self, contact_id: str, channel: str = "email") -> str:
        data = f'{{"channel":{_text(channel)},"contact":{_text(contact_id)},"kind":"unsubscribe"}}'
        return f"{self.public_url}/u/{_token(self._macs['unsubscribe'], data.encode('utf-8'))}"

    def preferences(self, contact_id: str) -> str:
        data = f'{{"contact":{_text(contact_id)},"kind":"preferences"}}'
        return f"{self.public_url}/p/{_token(self._macs['preferences'], data.encode('utf-8'))}"

    def survey(self, account_id: str, contact_id: str, survey: str, answer: str | int) -> str:
        data = (
            f'{{"account":{_text(account_id)},"answer":{_text(str(answer))},"contact":{_text(contact_id)},'
            f'"kind":"survey","survey":{_text(survey)}}}'
        )
        return f"{self.public_url}/s/{_token(self._macs['survey'], data.encode('utf-8'))}"

    def survey_url_for(self, account_id: str, contact_id: str) -> Callable[[str, str | int], str]:
        """The `survey_url(survey, answer)` callable that a template context carries."""

        def survey_url_(survey: str, answer: str | int) -> str:
            return self.survey(account_id, contact_id, survey, answer)

        return survey_url_

    def verify(self, token: str, kind: str) -> dict[str, str]:
        return verify(self._keys, token, kind)
