"""The composition root: the one place that turns Settings into an engine, channels and a renderer."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.catalog import CompiledJourney, load_catalog
from techtouch.domain.clock import run_instant
from techtouch.settings import Settings


def open_engine(settings: Settings, *, upgrade: bool = True) -> Engine:
    """An engine on the configured database, migrated to head when it is behind."""
    engine = make_engine(settings.database_url)
    if upgrade and not migrate.is_current(engine):
        migrate.upgrade(engine)
    return engine


def as_of_instant(settings: Settings, as_of: date) -> datetime:
    return run_instant(as_of, settings.zone, settings.run_time)


class ConfigurationError(ValueError):
    """Settings that cannot work together; the message says what to set."""


INSECURE_DEV_SECRET = b"techtouch-insecure-development-secret"


def link_secret(settings: Settings) -> bytes:
    """The key that signs unsubscribe and survey links.

    The outbox (local, nothing leaves the machine) may run on a development key; a real
    provider channel refuses to send links nobody can trust.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if settings.email_channel != "outbox" or settings.sms_channel != "outbox":
        raise ConfigurationError(
            "TECHTOUCH_SECRET_KEY must be set to sign links when a provider channel is used"
        )
    return INSECURE_DEV_SECRET


def journey_paths(settings: Settings) -> list[Path]:
    return [settings.config_dir / "journeys"]


def load_journeys(settings: Settings, paths: list[Path] | None = None) -> dict[str, CompiledJourney]:
    return load_catalog(paths or journey_paths(settings))


def build_channels(settings: Settings) -> tuple[Any, Any]:
    """(email channel, SMS channel) for the configured names: the outbox, SendGrid or Twilio."""
    from techtouch.adapters.channels.outbox import OutboxEmailChannel, OutboxSmsChannel

    email: Any
    sms: Any
    if settings.email_channel == "sendgrid":
        from techtouch.adapters.channels.sendgrid import SendGridChannel

        if settings.sendgrid_api_key is None:  # Settings refuses this already; belt and braces
            raise ConfigurationError("TECHTOUCH_SENDGRID_API_KEY is not set")
        email = SendGridChannel(settings.sendgrid_api_key.get_secret_value(), settings.sendgrid_host)
    else:
        email = OutboxEmailChannel(settings.outbox_dir)
    if settings.sms_channel == "twilio":
        from techtouch.adapters.channels.twilio import TwilioChannel

        if not settings.twilio_account_sid or settings.twilio_auth_token is None:
            raise ConfigurationError("TECHTOUCH_TWILIO_ACCOUNT_SID and _AUTH_TOKEN must be set")
        sms = TwilioChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from,
            status_callback_url=f"{settings.public_url.rstrip('/')}/webhooks/twilio/status",
            base_url=settings.twilio_base_url,
            mps=settings.twilio_mps,
        )
    else:
        sms = OutboxSmsChannel(settings.outbox_dir)
    return email, sms


def build_renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir)
