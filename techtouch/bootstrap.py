"""The composition root: the one place that turns Settings into an App (engine, journeys, adapters).

Entry points (CLI, web service, Prefect flows, the demo) call `build()` once and hand the App
down; nothing else constructs engines, channels or renderers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.catalog import CompiledJourney, load_catalog
from techtouch.services.app import App, ConfigurationError, Parts
from techtouch.settings import Settings, load_settings

__all__ = ["App", "ConfigurationError", "build", "journey_paths"]

INSECURE_DEV_SECRET = b"techtouch-insecure-development-secret"


def build(
    settings: Settings | None = None,
    *,
    journeys: list[Path] | None = None,
    check_schema: bool = True,
    engine: Engine | None = None,
    catalog: dict[str, CompiledJourney] | None = None,
) -> App:
    """An App on the configured database.

    `check_schema` refuses a database whose schema is behind the code (SchemaOutdated says to run
    `techtouch db upgrade`); migrations are an explicit step, never a side effect of a command.
    `engine` reuses one the caller already has on the same database, `catalog` journeys it
    already compiled (tests, benchmarks).
    """
    settings = settings or load_settings()
    own = engine is None
    engine = engine if engine is not None else make_engine(settings.database_url)
    if check_schema:
        try:
            migrate.require_current(engine)
        except Exception:
            if own:
                engine.dispose()
            raise
    return App(
        settings,
        engine,
        Parts(
            catalog=(lambda: catalog) if catalog is not None else (lambda: load_journeys(settings, journeys)),
            renderer=lambda: Renderer(settings.templates_dir),
            link_secret=lambda: link_secret(settings),
            channels=lambda: build_channels(settings),
        ),
    )


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
