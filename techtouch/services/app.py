"""What every use case runs against: settings, the database and the adapters, built once.

`techtouch.bootstrap.build()` makes the one `App` of a process (CLI command, flow run, web
service) from settings; services take it as their first argument and never build adapters
themselves, so a test or the simulator can hand them other parts (cosmicpython's bootstrap).
The expensive or fallible parts (journeys, templates, provider channels, the link key) are
made on first use, so a command that needs none of them (`import`, `health`) never pays for
them or fails on their configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from techtouch.adapters.render.renderer import Renderer
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.clock import run_instant
from techtouch.settings import Settings


class ConfigurationError(ValueError):
    """Settings that cannot work together; the message says what to set."""


@dataclass(frozen=True)
class Parts:
    """Factories for the parts made on first use (bootstrap fills them in)."""

    catalog: Callable[[], dict[str, CompiledJourney]]
    renderer: Callable[[], Renderer]
    link_secret: Callable[[], bytes]
    channels: Callable[[], tuple[Any, Any]]


@dataclass
class App:
    settings: Settings
    engine: Engine
    parts: Parts = field(repr=False)

    @cached_property
    def catalog(self) -> dict[str, CompiledJourney]:
        """Every journey file compiled (a bad file raises JourneyErrors, located)."""
        return self.parts.catalog()

    @cached_property
    def renderer(self) -> Renderer:
        return self.parts.renderer()

    @cached_property
    def link_secret(self) -> bytes:
        """The key that signs unsubscribe and survey links (ConfigurationError if unsafe)."""
        return self.parts.link_secret()

    @cached_property
    def channels(self) -> tuple[Any, Any]:
        """(email channel, SMS channel) for the configured providers."""
        return self.parts.channels()

    def instant(self, as_of: date) -> datetime:
        """The aware UTC instant a run for `as_of` stands for (the team's run time in its zone)."""
        return run_instant(as_of, self.settings.zone, self.settings.run_time)

    def on(self, engine: Engine, settings: Settings | None = None) -> App:
        """The same parts against another database (the simulator's copy); nothing shared is rebuilt."""
        return replace(self, engine=engine, settings=settings or self.settings)

    def close(self) -> None:
        self.engine.dispose()
