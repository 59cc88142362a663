"""`techtouch check` renders every template with a sample context: it proves something only if
that sample has the very shape of the context messages are rendered with at send time.

Otherwise a template using a name only the sample has passes check and fails in production
(StrictUndefined), and a name the sample lacks is never checked at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from techtouch import bootstrap
from techtouch.adapters.channels.base import Receipt
from techtouch.adapters.render.context import context_builder
from techtouch.adapters.render.renderer import Renderer
from techtouch.services import day as service
from techtouch.services.check import check_journeys
from techtouch.services.delivery import deliver
from techtouch.settings import Settings
from tests.crash_trials import AS_OF, build_base


class RecordingChannel:
    """Takes every message; nothing leaves the test."""

    reconcile_is_authoritative = True

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, batch: Sequence[Any]) -> list[Receipt]:
        return [Receipt(m.key, "sent", provider_id=f"id-{m.key}") for m in batch]

    def reconcile(self, batch: Sequence[Any], since: datetime) -> dict[str, Receipt]:
        return {}


def shape(context: Mapping[str, Any]) -> dict[str, Any]:
    """Every key, nested mappings followed: {"account": {"id": None, ...}, "touch_key": None, ...}."""
    return {key: shape(value) if isinstance(value, Mapping) else None for key, value in context.items()}


def leaves(context: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """{"account.id": value, ...} for every value that is not a mapping."""
    found: dict[str, Any] = {}
    for key, value in context.items():
        if isinstance(value, Mapping):
            found |= leaves(value, f"{path}{key}.")
        else:
            found[f"{path}{key}"] = value
    return found


def check_sample_context(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Mapping[str, Any]:
    """The context `techtouch check` really renders templates with (whatever function builds it)."""
    seen: list[Mapping[str, Any]] = []
    real_check = Renderer.check

    def spy(self: Renderer, template: str, channel: Any, context: Mapping[str, Any]) -> list[str]:
        seen.append(context)
        return real_check(self, template, channel, context)

    monkeypatch.setattr(Renderer, "check", spy)
    problems, catalog = check_journeys(settings, bootstrap.journey_paths(settings))
    assert problems == [] and catalog, problems
    assert seen, "check rendered no template"
    assert all(shape(c) == shape(seen[0]) for c in seen), "check uses one sample shape"
    return seen[0]


def production_contexts(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """Contexts built at send time for real seeded accounts and contacts, one per touch delivered,
    over every sender kind: the account's CSM, each configured sender, and none."""
    build_base(engine, accounts=8)
    senders = ["csm", *settings.senders, None]
    with engine.begin() as connection:
        keys = connection.execute(text("SELECT key FROM touches ORDER BY key")).scalars().all()
        for i, key in enumerate(keys):
            connection.execute(
                text("UPDATE touches SET sender = :s WHERE key = :k"),
                {"s": senders[i % len(senders)], "k": key},
            )
    app = bootstrap.build(settings, engine=engine)
    state = service.load_state(app, AS_OF)
    build = context_builder(settings, state.accounts, app.catalog, app.link_secret)
    built: list[dict[str, Any]] = []

    def context_for(row: dict[str, Any]) -> dict[str, Any]:
        context = build(row)
        built.append(context)
        return context

    report = deliver(
        engine,
        app.renderer,
        {"email": RecordingChannel("email"), "sms": RecordingChannel("sms")},
        context_for,
        now=lambda: datetime(2026, 11, 2, 10, tzinfo=UTC),
    )
    assert report.failed == 0, report.errors
    assert len(built) == len(keys) > 0
    return built


def missing(value: Any) -> bool:
    """None, or pandas' stand-in for it (NaN) that leaks from a NULL column of a frame row."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        timezone="Europe/Paris",
        secret_key="template-context-secret-0123456789abcdef",
        outbox_dir=tmp_path / "outbox",
    )


def test_check_renders_with_exactly_the_names_messages_are_rendered_with(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = check_sample_context(settings, monkeypatch)
    contexts = production_contexts(engine, settings)

    for context in contexts:
        assert shape(context) == shape(sample), (
            f"check's sample context and a real message's context differ for {context['touch_key']}"
        )


def test_sample_values_have_the_types_of_real_values(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same names are not enough when a template calls a method or filter on a value
    (`account.renewal_date.strftime`, `account.arr | round`): the types must agree too."""
    sample = leaves(check_sample_context(settings, monkeypatch))
    seen: dict[str, set[type]] = {}
    for context in production_contexts(engine, settings):
        for path, value in leaves(context).items():
            if not missing(value):  # optional values: the sample shows the present case
                seen.setdefault(path, set()).add(type(value))
    mismatched = {
        path: (type(sample[path]).__name__, sorted(t.__name__ for t in types))
        for path, types in seen.items()
        if not all(isinstance(sample[path], t) for t in types)
    }
    assert mismatched == {}, f"sample type vs real types: {mismatched}"


def test_no_value_of_a_real_context_is_nan(engine: Engine, settings: Settings) -> None:
    """A template testing `{% if x %}` or printing x must see None, never a float NaN."""
    nan = {
        path
        for context in production_contexts(engine, settings)
        for path, value in leaves(context).items()
        if missing(value) and value is not None
    }
    assert nan == set(), f"NaN in message contexts: {sorted(nan)}"
