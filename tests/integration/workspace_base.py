"""Helpers for the CSM workspace's tests: an app on a migrated database, users, accounts, CTAs,
a TestClient over https, and signing in through the real sign-in form (CSRF token and all)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from techtouch import bootstrap
from techtouch.adapters.db.models import Account, Cta
from techtouch.entrypoints.web import create_app
from techtouch.services import users
from techtouch.services.app import App
from techtouch.settings import Settings

PUBLIC_URL = "https://tt.example"
PASSWORD = "correct horse battery staple"
SECRET = "workspace-test-secret-0123456789abcdef"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def make_app(engine: Engine, tmp_path: Path, **overrides: Any) -> App:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        outbox_dir=tmp_path / "outbox",
        public_url=overrides.pop("public_url", PUBLIC_URL),
        secret_key=SECRET,
        **overrides,
    )
    return bootstrap.build(settings, engine=engine)


def client_for(app: App, base_url: str = PUBLIC_URL) -> TestClient:
    return TestClient(create_app(app), base_url=base_url, follow_redirects=False)


def add_user(
    app: App, email: str, role: str = "csm", team: str | None = "emea", name: str | None = None
) -> int:
    return users.add_user(
        app, email, name=name or email.split("@")[0].title(), role=role, password=PASSWORD, team=team
    ).id


def add_account(engine: Engine, account_id: str, csm_email: str | None, name: str | None = None) -> None:
    with engine.begin() as c:
        c.execute(
            insert(Account).values(
                id=account_id,
                name=name or f"Account {account_id}",
                segment="tech_touch",
                arr=8000.0,
                start_date=date(2025, 1, 1),
                csm_email=csm_email,
                updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )


def add_cta(
    engine: Engine,
    account_id: str,
    assignee: str,
    *,
    reason: str = "renewal_at_risk",
    journey: str = "renewal",
    priority: str = "medium",
    status: str = "open",
    due: date | None = None,
    title: str | None = None,
) -> int:
    """A CTA as a run would open it (no `outcomes` list: the defaults for its reason apply)."""
    with engine.begin() as c:
        return int(
            c.execute(
                insert(Cta)
                .values(
                    account_id=account_id,
                    journey=journey,
                    reason=reason,
                    title=title or f"{reason} for {account_id}",
                    priority=priority,
                    assignee=assignee,
                    status=status,
                    due_date=due or datetime.now(UTC).date() + timedelta(days=3),
                    created_as_of=datetime.now(UTC).date() - timedelta(days=1),
                    context={"health": 55.0, "health_color": "yellow", "arr": 8000.0},
                    why={},
                    outcomes=[],
                )
                .returning(Cta.id)
            ).scalar_one()
        )


def cta_status(engine: Engine, cta_id: int) -> tuple[str, str, str | None]:
    """(status, assignee, outcome) of a CTA, read straight from the table."""
    with engine.connect() as c:
        row = c.execute(select(Cta.status, Cta.assignee, Cta.outcome).where(Cta.id == cta_id)).one()
    return row.status, row.assignee, row.outcome


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def sign_in(
    client: TestClient, email: str, password: str = PASSWORD, next_path: str = "", *, fresh: bool = True
) -> httpx.Response:
    """Sign in through the form, as a browser would: GET /login (cookie + token), then POST.

    `fresh`: forget the browser's session first (signed in, /login would only send it on).
    """
    if fresh:
        client.cookies.delete("tt_session")
    page = client.get("/login")
    assert page.status_code == 200
    form = {"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    if next_path:
        form["next"] = next_path
    return client.post("/login", data=form)


def page_token(client: TestClient, path: str = "/inbox") -> str:
    """The session's CSRF token, read from a signed-in page's forms."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
