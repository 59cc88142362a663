"""Who may post to the webhooks: SendGrid's signed Event Webhook and Twilio's X-Twilio-Signature.

Both checks use the providers' own libraries (sendgrid's EventWebhook, twilio's RequestValidator),
so a change in their signing scheme is a library upgrade, not a patch here.

Each verifier checks in two steps, because a signature covers the body: `precheck` looks at what
the headers alone can prove (a key to verify with, a signature present, a SendGrid timestamp
inside the tolerance) before the body is read, so an unsigned or stale request is refused without
reading or parsing a byte of it; `verify` then checks the signature over the exact bytes (SendGrid)
or the form fields (Twilio signs the parsed fields, so their form is parsed, bounded, first).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE = EventWebhookHeader.SIGNATURE  # X-Twilio-Email-Event-Webhook-Signature
SENDGRID_TIMESTAMP = EventWebhookHeader.TIMESTAMP  # X-Twilio-Email-Event-Webhook-Timestamp
TWILIO_SIGNATURE = "X-Twilio-Signature"

# A signed body older (or newer) than this is refused: a captured request cannot be replayed later.
# SendGrid documents no window; events are idempotent anyway (sg_event_id), so this is defence in
# depth against replaying old bodies, sized for clock skew plus SendGrid's own queueing.
SENDGRID_TOLERANCE_SECONDS = 600


class Unverified(Exception):
    """The request is not provably from the provider (HTTP 403); the message says why."""


class NotConfigured(Exception):
    """The key or token to verify this provider is not set (HTTP 503, so the provider retries)."""


class SendGridVerifier:
    """ECDSA (P-256, SHA-256) over `timestamp + body`, with the Event Webhook's public key."""

    def __init__(self, public_key: str | None, tolerance_seconds: float = SENDGRID_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds
        self._webhook: EventWebhook | None = None
        if public_key:
            try:
                self._webhook = EventWebhook(public_key.strip())
            except ValueError as exc:
                raise ValueError(
                    f"TECHTOUCH_SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC public key: {exc}"
                ) from None

    def precheck(self, signature: str | None, timestamp: str | None, now: float | None = None) -> None:
        """What the headers prove before the body is read: configured, signed, and not stale."""
        if self._webhook is None:
            raise NotConfigured(
                "SendGrid webhook verification key is not set (TECHTOUCH_SENDGRID_WEBHOOK_PUBLIC_KEY)"
            )
        if not signature or not timestamp:
            raise Unverified(f"unsigned: {SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} are required")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise Unverified(f"{SENDGRID_TIMESTAMP} is not a Unix time") from None
        age = (time.time() if now is None else now) - sent_at
        if abs(age) > self.tolerance_seconds:
            raise Unverified(
                f"timestamp is {age:.0f} s off, beyond the {self.tolerance_seconds:.0f} s tolerance"
            )

    def verify(
        self, body: bytes, signature: str | None, timestamp: str | None, now: float | None = None
    ) -> None:
        self.precheck(signature, timestamp, now)
        assert self._webhook is not None and signature and timestamp  # precheck refused otherwise
        try:
            valid = self._webhook.verify_signature(body.decode("utf-8"), signature, timestamp)
        except (ValueError, TypeError):  # not base64, not UTF-8 (binascii.Error is a ValueError)
            valid = False
        if not valid:
            raise Unverified("signature does not match the body")


class TwilioVerifier:
    """HMAC of the full public URL (with query) and the sorted form fields, keyed by the auth token.

    Twilio signs the URL it was configured with, so we rebuild it from `public_url` (what we give
    Twilio as callback base), not from the Host header a proxy may have changed.
    """

    def __init__(self, auth_token: str | None, public_url: str) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self.public_url = public_url.rstrip("/")

    def url(self, path: str, query: str) -> str:
        return f"{self.public_url}{path}" + (f"?{query}" if query else "")

    def precheck(self, signature: str | None) -> None:
        """What the headers prove before the form is read: configured, and signed at all."""
        if self._validator is None:
            raise NotConfigured("Twilio auth token is not set (TECHTOUCH_TWILIO_AUTH_TOKEN)")
        if not signature:
            raise Unverified(f"unsigned: {TWILIO_SIGNATURE} is required")

    def verify(self, path: str, query: str, params: Mapping[str, Any], signature: str | None) -> None:
        self.precheck(signature)
        assert self._validator is not None and signature  # precheck refused otherwise
        if not self._validator.validate(self.url(path, query), params, signature):
            raise Unverified("signature does not match the URL and form fields")
