"""Signing in to the CSM workspace, on SQLite and PostgreSQL, through FastAPI's TestClient.

The sign-in form (labels, CSRF), the session cookie's flags and what the table stores, the same
answer for a wrong email and a wrong password, throttling (429 with Retry-After), a new token at
every sign-in, sign-out and disabling killing the session, idle and absolute expiry, and `next`
never sending anyone to another site.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from techtouch.adapters.db.models import CtaHistory, WebSession
from techtouch.services import users
from techtouch.services.app import App
from techtouch.settings import PROJECT_ROOT
from tests.integration.test_webhooks import free_port, wait_until_serving
from tests.integration.workspace_base import (
    PASSWORD,
    add_account,
    add_cta,
    add_user,
    client_for,
    csrf_of,
    cta_status,
    make_app,
    page_token,
    sign_in,
)

ANN = "ann@vendor.example"


@pytest.fixture
def tt(engine: Engine, tmp_path: Path) -> App:
    app = make_app(engine, tmp_path)
    add_user(app, ANN, name="Ann Lee")
    return app


@pytest.fixture
def client(tt: App) -> Iterator[TestClient]:
    with client_for(tt) as test_client:
        yield test_client


def session_rows(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as c:
        return [
            (r.token_hash, r.user_id) for r in c.execute(select(WebSession.token_hash, WebSession.user_id))
        ]


def set_cookie_of(response_headers: list[str], name: str) -> str:
    found = [h for h in response_headers if h.startswith(f"{name}=")]
    assert len(found) == 1, response_headers
    return found[0]


def test_the_sign_in_page_has_labelled_fields_and_safe_headers(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert re.search(r'<label for="email">Email</label>\s*<input id="email" name="email"', page.text)
    assert re.search(r'<label for="password">Password</label>\s*<input id="password"', page.text)
    assert '<button type="submit">Sign in</button>' in page.text
    assert csrf_of(page.text)
    headers = page.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # The stylesheet the CSP allows is served from the package.
    css = client.get("/static/workspace.css")
    assert css.status_code == 200 and "table.ctas" in css.text
    assert css.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/workspace.js").status_code == 200


def test_sign_in_makes_a_session_whose_cookie_is_secure_and_only_hashed_in_the_table(
    client: TestClient, engine: Engine
) -> None:
    response = sign_in(client, ANN)
    assert response.status_code == 303
    assert response.headers["location"] == "/inbox"
    cookie = set_cookie_of(response.headers.get_list("set-cookie"), "tt_session")
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "secure" in flags and "samesite=lax" in flags and "path=/" in flags
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40
    rows = session_rows(engine)
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), rows[0][1])]
    assert token not in str(rows)
    inbox = client.get("/inbox")
    assert inbox.status_code == 200
    assert "Ann Lee" in inbox.text and "Sign out" in inbox.text


def test_on_plain_http_the_cookie_is_not_marked_secure(engine: Engine, tmp_path: Path) -> None:
    tt = make_app(engine, tmp_path, public_url="http://127.0.0.1:8000")
    add_user(tt, ANN)
    with client_for(tt, base_url="http://127.0.0.1:8000") as client:
        response = sign_in(client, ANN)
        assert response.status_code == 303
        cookie = set_cookie_of(response.headers.get_list("set-cookie"), "tt_session").lower()
        assert "httponly" in cookie and "secure" not in cookie
        assert client.get("/inbox").status_code == 200


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    client: TestClient, engine: Engine
) -> None:
    wrong_password = sign_in(client, ANN, "not the right password")
    unknown_email = sign_in(client, "nobody@vendor.example", PASSWORD)
    assert wrong_password.status_code == unknown_email.status_code == 401
    message = re.compile(r'<p class="error" role="alert" id="login-error">([^<]*)</p>')
    first, second = message.search(wrong_password.text), message.search(unknown_email.text)
    assert first and second and first.group(1) == second.group(1)
    assert "tt_session" not in client.cookies
    assert session_rows(engine) == []
    # The form keeps the email typed, never the password.
    assert 'value="ann@vendor.example"' in wrong_password.text
    assert "not the right password" not in wrong_password.text


def test_repeated_failures_are_throttled_with_retry_after(client: TestClient, engine: Engine) -> None:
    for _ in range(users.MAX_FAILURES_PER_EMAIL):
        assert sign_in(client, ANN, "wrong password 123").status_code == 401
    throttled = sign_in(client, ANN, PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["retry-after"])
    assert 0 < retry_after <= users.WINDOW.total_seconds() + 1
    assert "Too many failed sign-ins" in throttled.text
    assert session_rows(engine) == []


def test_the_sign_in_form_is_csrf_protected(client: TestClient, engine: Engine) -> None:
    client.get("/login")
    no_token = client.post("/login", data={"email": ANN, "password": PASSWORD})
    wrong_token = client.post("/login", data={"email": ANN, "password": PASSWORD, "csrf_token": "x" * 43})
    assert no_token.status_code == wrong_token.status_code == 403
    # A token without the cookie it was made for (a page on another site cannot read or set it).
    token = csrf_of(client.get("/login").text)
    client.cookies.clear()
    no_cookie = client.post("/login", data={"email": ANN, "password": PASSWORD, "csrf_token": token})
    assert no_cookie.status_code == 403
    assert session_rows(engine) == []


def test_every_sign_in_gets_a_new_token_and_ends_the_old_session(client: TestClient, engine: Engine) -> None:
    # A token planted in the browser (session fixation) is never adopted.
    client.cookies.set("tt_session", "planted-by-someone-else-0123456789abcdef", domain="tt.example")
    sign_in(client, ANN, fresh=False)
    first = client.cookies["tt_session"]
    assert first != "planted-by-someone-else-0123456789abcdef"
    # Signing in again from the same browser (a form fetched before, posted with the session
    # cookie): a new token, and the session of the old one is gone.
    client.cookies.delete("tt_session")
    form = csrf_of(client.get("/login").text)
    client.cookies.set("tt_session", first, domain="tt.example")
    client.post("/login", data={"email": ANN, "password": PASSWORD, "csrf_token": form})
    second = client.cookies["tt_session"]
    assert first != second
    assert [h for h, _ in session_rows(engine)] == [hashlib.sha256(second.encode()).hexdigest()]
    client.cookies.set("tt_session", first, domain="tt.example")
    assert client.get("/inbox").status_code == 303


def test_sign_out_kills_the_session_even_for_a_copied_cookie(client: TestClient, engine: Engine) -> None:
    sign_in(client, ANN)
    copied = client.cookies["tt_session"]
    token = page_token(client)
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert session_rows(engine) == []
    assert "You are signed out." in client.get("/login").text
    client.cookies.set("tt_session", copied, domain="tt.example")
    again = client.get("/inbox")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_sign_out_without_the_csrf_token_is_refused(client: TestClient, engine: Engine) -> None:
    sign_in(client, ANN)
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert len(session_rows(engine)) == 1
    assert client.get("/inbox").status_code == 200


def test_a_disabled_user_is_signed_out_at_once(client: TestClient, tt: App) -> None:
    sign_in(client, ANN)
    assert client.get("/inbox").status_code == 200
    users.set_disabled(tt, ANN)
    response = client.get("/inbox")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/inbox"
    assert sign_in(client, ANN).status_code == 401


def test_sessions_end_after_the_idle_timeout_and_the_absolute_lifetime(
    client: TestClient, engine: Engine
) -> None:
    sign_in(client, ANN)
    assert client.get("/inbox").status_code == 200
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(update(WebSession).values(last_seen_at=now - timedelta(hours=13)))
    assert client.get("/inbox").status_code == 303

    sign_in(client, ANN)
    with engine.begin() as c:
        c.execute(update(WebSession).values(expires_at=now - timedelta(seconds=1), last_seen_at=now))
    assert client.get("/inbox").status_code == 303


def test_a_page_asked_signed_out_comes_back_after_sign_in(client: TestClient) -> None:
    asked = client.get("/inbox?status=done&journey=renewal")
    assert asked.status_code == 303
    location = asked.headers["location"]
    assert location.startswith("/login?next=")
    login_page = client.get(location)
    assert 'name="next" value="/inbox?status=done&amp;journey=renewal"' in login_page.text
    response = client.post(
        "/login",
        data={
            "email": ANN,
            "password": PASSWORD,
            "csrf_token": csrf_of(login_page.text),
            "next": "/inbox?status=done&journey=renewal",
        },
    )
    assert response.headers["location"] == "/inbox?status=done&journey=renewal"
    # Signed in already: /login goes straight on.
    assert client.get("/login?next=/queue").headers["location"] == "/queue"


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/x",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil",
        " /inbox",
    ],
)
def test_next_never_leads_to_another_site(client: TestClient, evil: str) -> None:
    response = sign_in(client, ANN, next_path=evil)
    assert response.status_code == 303
    assert response.headers["location"] == "/inbox"
    assert client.get("/login", params={"next": evil}).headers["location"] == "/inbox"


def test_an_action_refuses_an_outside_next_too(client: TestClient, engine: Engine) -> None:
    add_account(engine, "a1", ANN)
    cta = add_cta(engine, "a1", ANN)
    sign_in(client, ANN)
    token = page_token(client)
    response = client.post(
        f"/inbox/ctas/{cta}/start", data={"csrf_token": token, "next": "https://evil.example/inbox"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/inbox/ctas/{cta}"
    assert cta_status(engine, cta)[0] == "in_progress"


def test_a_signed_out_post_changes_nothing(client: TestClient, engine: Engine) -> None:
    add_account(engine, "a1", ANN)
    cta = add_cta(engine, "a1", ANN)
    response = client.post(f"/inbox/ctas/{cta}/start", data={"csrf_token": "anything"})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert cta_status(engine, cta)[0] == "open"
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(CtaHistory)).scalar() == 0


def test_techtouch_serve_prints_the_workspace_and_serves_it(sqlite_url: str, tmp_path: Path) -> None:
    """The real command under uvicorn: it says where the workspace is, and the sign-in page answers."""
    port = free_port()
    env = dict(os.environ) | {
        "TECHTOUCH_DATABASE_URL": sqlite_url,
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TECHTOUCH_SECRET_KEY": "a-long-random-secret-for-this-test",
        "TECHTOUCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    upgraded = subprocess.run(
        [sys.executable, "-m", "techtouch", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output = "".join(wait_until_serving(process))
        assert f"CSM workspace: http://127.0.0.1:{port}/inbox" in output
        base_url = f"http://127.0.0.1:{port}"
        asked = httpx.get(f"{base_url}/inbox")
        assert asked.status_code == 303 and asked.headers["location"] == "/login?next=/inbox"
        page = httpx.get(f"{base_url}/login")
        assert page.status_code == 200 and "Sign in" in page.text
        assert httpx.get(f"{base_url}/static/workspace.css").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
