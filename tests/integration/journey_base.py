"""Build small, explicit customer bases in a real database for journey tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows, upsert_rows
from techtouch.adapters.db.models import Account, Contact, Event, Suppression, UsageDaily
from techtouch.domain.catalog import CompiledJourney, load_catalog
from techtouch.services.day import run_day
from techtouch.services.runner import RunReport
from techtouch.settings import PROJECT_ROOT, Settings

JOURNEYS = PROJECT_ROOT / "config" / "journeys"


def account(account_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": account_id,
        "name": f"Account {account_id}",
        "segment": "tech_touch",
        "arr": 8000.0,
        "start_date": date(2025, 1, 1),
        "renewal_date": None,
        "csm_email": "casey.morgan@vendor.example",
        "timezone": "Europe/Paris",
        "paused_until": None,
        "is_advocate": False,
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    } | extra


def contact(contact_id: str, account_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": contact_id,
        "account_id": account_id,
        "name": f"Ada {contact_id}",
        "email": f"{contact_id}@customer.example",
        "phone": "+33612345678",
        "role": "admin",
        "email_consent": True,
        "sms_consent": True,
        "timezone": None,
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    } | extra


@dataclass
class Base:
    engine: Engine
    settings: Settings
    catalog: dict[str, CompiledJourney] = field(default_factory=dict)

    def add(
        self,
        accounts: list[dict],
        contacts: list[dict],
        usage_days: int = 70,
        key_actions: int = 40,
        as_of: date = date(2027, 1, 4),
    ) -> None:
        with self.engine.begin() as c:
            insert_rows(c, Account.__table__, accounts)
            insert_rows(c, Contact.__table__, contacts)
            insert_rows(
                c,
                UsageDaily.__table__,
                [
                    {
                        "account_id": a["id"],
                        "date": as_of - timedelta(days=d),
                        "active_users": 4,
                        "logins": 6,
                        "key_actions": key_actions,
                    }
                    for a in accounts
                    for d in range(1, usage_days + 1)
                ],
            )

    def event(
        self, account_id: str, kind: str, value: str | None, when: date, contact_id: str | None = None
    ) -> None:
        occurred = datetime.combine(when, time(6, 0), tzinfo=UTC)
        key = hashlib.sha256(f"{account_id}|{contact_id}|{occurred}|{kind}|{value}".encode()).hexdigest()
        with self.engine.begin() as c:
            upsert_rows(
                c,
                Event.__table__,
                [
                    {
                        "key": key,
                        "account_id": account_id,
                        "contact_id": contact_id,
                        "occurred_at": occurred,
                        "type": kind,
                        "value": value,
                        "source": "test",
                    }
                ],
                key=("key",),
                update=False,
            )

    def suppress(self, contact_id: str, channel: str, reason: str) -> None:
        with self.engine.begin() as c:
            insert_rows(
                c,
                Suppression.__table__,
                [
                    {
                        "contact_id": contact_id,
                        "channel": channel,
                        "reason": reason,
                        "since": datetime(2026, 12, 1, tzinfo=UTC),
                    }
                ],
            )

    def run(self, as_of: date, *names: str, dry_run: bool = False, real_clock: bool = False) -> RunReport:
        """Run `as_of` on its own clock (delivered at its run, then as the hourly delivery would until
        the next day's run), or with `real_clock` as `techtouch run` would deliver it now."""
        if not self.catalog:
            self.catalog = load_catalog([JOURNEYS])
        chosen = (
            [self.catalog[n] for n in names]
            if names
            else sorted(self.catalog.values(), key=lambda j: j.spec.priority)
        )
        app = bootstrap.build(self.settings, engine=self.engine, catalog=self.catalog)
        if real_clock:
            return run_day(app, chosen, as_of, dry_run=dry_run)
        return run_day(
            app,
            chosen,
            as_of,
            dry_run=dry_run,
            now=app.instant(as_of),
            play_until=app.instant(as_of + timedelta(days=1)) - timedelta(seconds=1),
        )


def settings_for(engine: Engine, outbox: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        outbox_dir=outbox,
        timezone="Europe/Paris",
        **overrides,
    )
