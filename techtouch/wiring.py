"""The composition root: the one place that turns Settings into an engine (and, later, channels)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from techtouch import migrate
from techtouch.clock import run_instant
from techtouch.db import make_engine
from techtouch.journeys.catalog import CompiledJourney, load_catalog
from techtouch.render import Renderer
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
    """(email channel, SMS channel) for the configured names."""
    from techtouch.channels.outbox import OutboxEmailChannel, OutboxSmsChannel

    if settings.email_channel != "outbox":
        raise ConfigurationError(f"unknown email channel {settings.email_channel!r} (available: outbox)")
    if settings.sms_channel != "outbox":
        raise ConfigurationError(f"unknown SMS channel {settings.sms_channel!r} (available: outbox)")
    return OutboxEmailChannel(settings.outbox_dir), OutboxSmsChannel(settings.outbox_dir)


def build_renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir)
