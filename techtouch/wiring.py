"""The composition root: the one place that turns Settings into an engine (and, later, channels)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Engine

from techtouch import migrate
from techtouch.clock import run_instant
from techtouch.db import make_engine
from techtouch.settings import Settings


def open_engine(settings: Settings, *, upgrade: bool = True) -> Engine:
    """An engine on the configured database, migrated to head when it is behind."""
    engine = make_engine(settings.database_url)
    if upgrade and not migrate.is_current(engine):
        migrate.upgrade(engine)
    return engine


def as_of_instant(settings: Settings, as_of: date) -> datetime:
    return run_instant(as_of, settings.zone, settings.run_time)
