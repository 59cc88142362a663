"""Users on a real database (SQLite and PostgreSQL): the service (add, list, disable, sign in with
throttling, who a CSM's emails sign as), `techtouch users` as a user runs it, and an email of a
CSM with a user signed with the user's real name and title."""

from __future__ import annotations

import email
import json
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from techtouch import bootstrap
from techtouch.adapters.db.models import LoginFailure, User, WebSession
from techtouch.domain.access import Role
from techtouch.entrypoints.cli import commands, ctas, journeys  # noqa: F401  (registers the commands)
from techtouch.entrypoints.cli import users as users_cli  # noqa: F401
from techtouch.entrypoints.cli.app import app as cli
from techtouch.services import users
from techtouch.services.app import App
from techtouch.services.preview import preview_account
from techtouch.settings import Settings
from tests.integration.journey_base import Base, account, contact, settings_for

PASSWORD = "correct horse battery staple"
SECRET = b"s" * 32
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(engine: Engine, db_url: str) -> App:
    return bootstrap.build(Settings(database_url=db_url), engine=engine)


def sign_in(app: App, address: str, password: str, *, client: str = "203.0.113.7", at: datetime = NOW):
    return users.authenticate(app, address, password, client=client, secret=SECRET, now=at)


# --- the service -----------------------------------------------------------------------------------


def test_add_and_list_users_without_ever_keeping_the_password(app: App, engine: Engine) -> None:
    jane = users.add_user(
        app,
        "  Jane.Doe@Vendor.example ",
        name=" Jane Doe ",
        role="csm",
        password=PASSWORD,
        title="Senior CSM",
    )
    users.add_user(
        app, "lead@vendor.example", name="Lee Lead", role="manager", password=PASSWORD, team="emea"
    )
    assert (jane.email, jane.name, jane.role, jane.title, jane.team, jane.disabled) == (
        "jane.doe@vendor.example",
        "Jane Doe",
        "csm",
        "Senior CSM",
        None,
        False,
    )
    assert [(u.role, u.email) for u in users.list_users(app)] == [
        ("csm", "jane.doe@vendor.example"),
        ("manager", "lead@vendor.example"),
    ]
    with engine.connect() as connection:
        stored = connection.execute(select(User.password_hash)).scalars().all()
        assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in stored)
        assert users.people(connection) == {
            "jane.doe@vendor.example": ("Jane Doe", "Senior CSM"),
            "lead@vendor.example": ("Lee Lead", None),
        }


@pytest.mark.parametrize(
    ("address", "fields", "problem"),
    [
        ("not-an-email", {}, "not an email address"),
        ("x@vendor.example", {"role": "admin"}, "--role: one of csm, manager, ops"),
        ("x@vendor.example", {"name": "  "}, "--name"),
        ("x@vendor.example", {"password": "short"}, "at least 12 characters"),
        ("JANE@vendor.example", {}, "exists already"),
    ],
)
def test_bad_users_are_refused_with_what_to_change(
    app: App, engine: Engine, address: str, fields: dict[str, str], problem: str
) -> None:
    users.add_user(app, "jane@vendor.example", name="Jane Doe", role="csm", password=PASSWORD)
    values = {"name": "X Y", "role": "csm", "password": PASSWORD} | fields
    with pytest.raises(users.UserError, match=problem):
        users.add_user(app, address, **values)  # type: ignore[arg-type]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(User)).scalar_one() == 1


def test_sign_in_with_the_right_password_only(app: App) -> None:
    users.add_user(app, "jane@vendor.example", name="Jane Doe", role="csm", password=PASSWORD, team="emea")
    actor = sign_in(app, "Jane@Vendor.example", PASSWORD)
    assert actor is not None and (actor.email, actor.role, actor.team) == (
        "jane@vendor.example",
        Role.CSM,
        "emea",
    )
    assert sign_in(app, "jane@vendor.example", PASSWORD + "!") is None
    assert sign_in(app, "nobody@vendor.example", PASSWORD) is None


def test_five_failures_throttle_the_email_even_with_the_right_password_until_the_window_ends(
    app: App, engine: Engine
) -> None:
    users.add_user(app, "jane@vendor.example", name="Jane Doe", role="csm", password=PASSWORD)
    for i in range(users.MAX_FAILURES_PER_EMAIL):
        assert sign_in(app, "jane@vendor.example", "wrong password!", at=NOW + timedelta(seconds=i)) is None
    with pytest.raises(users.Throttled) as throttled:
        sign_in(app, "jane@vendor.example", PASSWORD, at=NOW + timedelta(minutes=1))
    # Until the first failure leaves the window: 15 minutes after it, less the minute gone.
    assert 13 * 60 < throttled.value.retry_after <= 14 * 60 + 1
    with pytest.raises(users.Throttled):  # another client: the email is still locked
        sign_in(app, "jane@vendor.example", PASSWORD, client="198.51.100.1", at=NOW + timedelta(minutes=2))
    with engine.connect() as connection:  # one row per key and failure; no email or address stored
        failures = connection.execute(select(func.count()).select_from(LoginFailure)).scalar_one()
        stored = " ".join(connection.execute(select(LoginFailure.key)).scalars())
    assert failures == 2 * users.MAX_FAILURES_PER_EMAIL  # the throttled attempts did not count
    assert "jane" not in stored and "203.0.113.7" not in stored
    later = NOW + users.WINDOW + timedelta(seconds=5)
    assert sign_in(app, "jane@vendor.example", PASSWORD, at=later) is not None


def test_a_disabled_user_cannot_sign_in_and_their_sessions_end(app: App, engine: Engine) -> None:
    jane = users.add_user(app, "jane@vendor.example", name="Jane Doe", role="csm", password=PASSWORD)
    users.add_user(app, "sam@vendor.example", name="Sam Lee", role="csm", password=PASSWORD)
    with engine.begin() as connection:
        sam_id = connection.execute(select(User.id).where(User.email == "sam@vendor.example")).scalar_one()
        for i, user_id in enumerate((jane.id, jane.id, sam_id)):
            connection.execute(
                insert(WebSession).values(
                    token_hash=f"{i:064x}",
                    user_id=user_id,
                    csrf_token="c",
                    expires_at=NOW + timedelta(days=1),
                )
            )
    assert users.set_disabled(app, "JANE@vendor.example").disabled is True
    with engine.connect() as connection:
        assert connection.execute(select(WebSession.user_id)).scalars().all() == [sam_id]
        with pytest.raises(users.DisabledUser, match="is disabled"):
            users.actor_for(connection, "jane@vendor.example")
    assert sign_in(app, "jane@vendor.example", PASSWORD) is None
    with pytest.raises(users.UnknownUser, match=r"no user 'nobody@vendor\.example'"):
        users.set_disabled(app, "nobody@vendor.example")

    assert users.set_disabled(app, "jane@vendor.example", False).disabled is False
    assert sign_in(app, "jane@vendor.example", PASSWORD, at=NOW + timedelta(seconds=1)) is not None


# --- the CLI ---------------------------------------------------------------------------------------


def run(env: dict[str, str], *args: str, input: str | None = None) -> tuple[int, str]:
    """`techtouch ARGS` in process as `main` runs it: a user error prints `error: ...` and exits 1."""
    from techtouch.entrypoints.cli.app import UserError

    result = CliRunner().invoke(cli, list(args), input=input, env=env | {"COLUMNS": "200"})
    if isinstance(result.exception, UserError):
        return 1, f"error: {result.exception}"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_users_add_list_disable_from_the_cli(env: dict[str, str]) -> None:
    code, said = run(
        env, "users", "add", "Jane@vendor.example", "--name", "Jane Doe", "--role", "csm",
        "--title", "Senior CSM", "--team", "emea", input=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, said
    assert "added csm jane@vendor.example (Jane Doe, Senior CSM), team emea" in said
    assert PASSWORD not in said and "password:" not in said  # piped: never echoed

    # Nothing on stdin: one is generated, printed once, and works.
    code, said = run(
        env, "users", "add", "ops@vendor.example", "--name", "Olly Ops", "--role", "ops", input=""
    )
    assert code == 0, said
    [generated] = [
        line.removeprefix("password: ") for line in said.splitlines() if line.startswith("password: ")
    ]
    assert len(generated) >= 20 and "will not be shown again" in said
    tt = bootstrap.build(Settings(database_url=env["TECHTOUCH_DATABASE_URL"]))
    try:
        assert sign_in(tt, "ops@vendor.example", generated) is not None
    finally:
        tt.close()

    code, said = run(env, "users", "list", "--json")
    listed = json.loads(said)
    assert [u["email"] for u in listed] == ["jane@vendor.example", "ops@vendor.example"]
    assert set(listed[0]) == {"email", "name", "role", "title", "team", "disabled"}
    assert "argon2" not in said

    code, said = run(env, "users", "list")
    assert code == 0 and "Jane Doe" in said and "Senior CSM" in said and "argon2" not in said

    assert run(env, "users", "disable", "jane@vendor.example")[0] == 0
    assert json.loads(run(env, "users", "list", "--json")[1])[0]["disabled"] is True
    assert run(env, "users", "enable", "jane@vendor.example")[0] == 0
    assert json.loads(run(env, "users", "list", "--json")[1])[0]["disabled"] is False


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("nope", "--role", "csm"), "", 2, "Invalid value for EMAIL: not an email address"),
        (("x@vendor.example", "--role", "admin"), "", 2, "'admin' is not one of 'csm', 'manager', 'ops'"),
        (
            ("x@vendor.example", "--role", "csm"),
            "short\n",
            1,
            "error: password: a password needs at least 12",
        ),
        (
            ("jane@vendor.example", "--role", "csm"),
            "",
            1,
            "error: a user 'jane@vendor.example' exists already",
        ),
    ],
)
def test_users_add_refuses_bad_input_clearly(
    env: dict[str, str], args: tuple[str, ...], stdin: str, code: int, message: str
) -> None:
    assert (
        run(env, "users", "add", "jane@vendor.example", "--name", "Jane Doe", "--role", "csm", input="")[0]
        == 0
    )
    got, said = run(env, "users", "add", *args, "--name", "X Y", input=stdin)
    assert got == code and message in " ".join(said.replace("│", " ").split()), said
    assert "Traceback" not in said
    assert len(json.loads(run(env, "users", "list", "--json")[1])) == 1


def test_disabling_an_unknown_user_says_so(env: dict[str, str]) -> None:
    assert run(env, "users", "disable", "nobody@vendor.example") == (
        1,
        "error: no user 'nobody@vendor.example' (see `techtouch users list`)",
    )


# --- emails signed with the CSM's real name ----------------------------------------------------------

D0 = date(2027, 1, 4)


def test_a_csms_emails_sign_with_their_users_name_and_title(engine: Engine, tmp_path: Path) -> None:
    """csm01 has a user (Jane Doe, Senior CSM): their welcome email comes from and is signed by her;
    csm02 has none: the name is derived from the address, as before."""
    settings = settings_for(engine, tmp_path / "outbox")
    base = Base(engine, settings)
    start = D0 - timedelta(days=1)
    base.add(
        [
            account("a1", start_date=start, csm_email="csm01@vendor.example"),
            account("a2", start_date=start, csm_email="csm02@vendor.example"),
        ],
        [contact("c1", "a1"), contact("c2", "a2")],
    )
    app = bootstrap.build(settings, engine=engine)
    users.add_user(
        app, "CSM01@vendor.example", name="Jane Doe", role="csm", password=PASSWORD, title="Senior CSM"
    )

    previewed = preview_account(app, app.catalog["onboarding"], "a1", D0)
    assert previewed is not None
    assert previewed["messages"][0]["body"].startswith("From: Jane Doe <csm01@vendor.example>\n")

    base.run(D0, "onboarding")
    sent = {}
    for path in (settings.outbox_dir / "email").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        sent[message["To"].addresses[0].addr_spec] = message
    jane = sent["c1@customer.example"]
    assert jane["From"].addresses[0].display_name == "Jane Doe"
    assert jane["From"].addresses[0].addr_spec == "csm01@vendor.example"
    text = jane.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Jane Doe\nSenior CSM" in text and "Csm01" not in text
    assert "Jane Doe" in jane.get_body(("html",)).get_content()

    other = sent["c2@customer.example"]
    assert other["From"].addresses[0].display_name == "Csm02"
    assert "Csm02\nCustomer Success Manager" in other.get_body(("plain",)).get_content().replace("\r\n", "\n")
