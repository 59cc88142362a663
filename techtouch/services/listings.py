"""Listings for scripts and people: touches and CTAs as JSON-ready dicts (dates as ISO strings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from techtouch.adapters.db import listings
from techtouch.domain.access import Actor, CtaScope, can_view_cta
from techtouch.domain.spec import JourneyErrors
from techtouch.services.app import App


def jsonable(value: Any) -> Any:
    """Dates as ISO strings, instants (aware UTC) ending in `Z`: the listings' and `accounts show`'s form."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: jsonable(v) for k, v in row.items()} for row in rows]


def list_touches(
    app: App, *, account: str | None = None, journey: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    with app.engine.connect() as connection:
        return _plain(listings.touch_rows(connection, account=account, journey=journey, status=status))


def list_ctas(
    app: App,
    *,
    assignee: str | None = None,
    journey: str | None = None,
    status: str | None = None,
    account: str | None = None,
    actor: Actor | None = None,
) -> list[dict[str, Any]]:
    """CTAs most urgent first; with an `actor`, only those the access rules let them see."""
    with app.engine.connect() as connection:
        rows = listings.cta_rows(
            connection, assignee=assignee, journey=journey, status=status, account=account
        )
        if actor is not None:
            teams = listings.user_teams(connection)
            rows = [row for row in rows if can_view_cta(actor, cta_scope(row["assignee"], teams))]
    return _plain(rows)


def cta_scope(assignee: str, teams: dict[str, str | None]) -> CtaScope:
    """What the access rules need about a CTA, from its assignee (`queue:<name>`: the team queue)."""
    in_queue = assignee.startswith("queue:")
    return CtaScope(assignee, None if in_queue else teams.get(assignee), in_queue)


def known_journeys(app: App) -> list[str]:
    """Journey ids a listing may filter on: the journey files' (when they compile) and any id
    touches or CTAs were recorded under (a retired journey keeps its history), sorted."""
    try:
        ids = set(app.catalog)
    except JourneyErrors:  # a broken file must not stop anyone from reading what was recorded
        ids = set()
    with app.engine.connect() as connection:
        return sorted(ids | listings.journey_ids(connection))
