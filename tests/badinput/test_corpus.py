"""The bad-input corpus: every file under tests/badinput/<kind>/ is one case, and its folder's
`cases.toml` says what must come out of it.

Each case asserts a clear, located error (the file and its line, row or field; never a traceback)
and, where a database is involved (CSV imports, webhooks, links), that the database is exactly as
before (every table's rows hashed before and after). The database cases share one database per
backend (SQLite, PostgreSQL), seeded once from csv/base/: a case that wrote anything would fail
its own snapshot check.

`cases.toml` keys: `file`, `kind` (what is wrong, for the counts), `expect` (substrings of the
error: for files, the first names the place), and per folder: `import` (csv: the kind of file),
`status` (webhooks, links: the HTTP status), `xfail` (a reason naming the point of issue 13 the
case waits for; strict, so it is flipped as soon as that work lands).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Base
from techtouch.adapters.render.links import LinkSigner
from techtouch.entrypoints.cli import commands, ctas, journeys  # noqa: F401  (registers the commands)
from techtouch.entrypoints.cli.app import UserError, app, settings
from techtouch.entrypoints.cli.app import main as cli_main
from techtouch.entrypoints.web import create_app
from techtouch.services.importing import ImportFailed, import_csv
from techtouch.settings import PROJECT_ROOT, Settings
from tests.conftest import POSTGRES_ADMIN_URL, require_postgres

HERE = Path(__file__).parent
KINDS = ("journeys", "templates", "csv", "webhooks", "links", "settings")
PUBLIC_URL = "https://cs.example.com"
SECRET = "badinput-corpus-link-secret-0123456789"
OTHER_SECRET = "another-deployment-link-secret-98765"
TWILIO_TOKEN = "badinput-twilio-auth-token"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())


def load_cases(kind: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = tomllib.loads((HERE / kind / "cases.toml").read_text("utf-8"))["case"]
    return cases


def params(kind: str) -> list[Any]:
    return [
        pytest.param(
            case,
            id=case["file"],
            marks=[pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else [],
        )
        for case in load_cases(kind)
    ]


def assert_located(message: str, case: dict[str, Any]) -> None:
    assert "Traceback" not in message, message
    for expected in case["expect"]:
        assert expected in message, f"{expected!r} not in:\n{message}"


# ------------------------------------------------------------------------------- the corpus itself


def test_every_data_file_is_a_case_and_every_case_a_file() -> None:
    total = 0
    for kind in KINDS:
        folder = HERE / kind
        files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "cases.toml"}
        named = [case["file"] for case in load_cases(kind)]
        assert len(named) == len(set(named)), f"{kind}: a file is listed twice"
        assert set(named) == files, f"{kind}: files without a case or cases without a file"
        assert all(case["expect"] and case["kind"] for case in load_cases(kind))
        total += len(named)
    assert total >= 100


# ---------------------------------------------------------------------------------------- journeys


def check(*paths: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`techtouch check PATHS` in process: (exit code, what it printed)."""
    result = CliRunner().invoke(app, ["check", *map(str, paths)], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", params("journeys"))
def test_journey_file(case: dict[str, Any]) -> None:
    started = time.monotonic()
    code, output = check(HERE / "journeys" / case["file"])
    assert code == 1, output
    assert_located(output, case)
    assert time.monotonic() - started < 10, "check must stay fast on any input"


# --------------------------------------------------------------------------------------- templates

# A template `bad/t` that passes `check`; each case replaces one of its files.
GOOD_TEMPLATE = {
    "subject.txt": "Hello {{ contact.first_name }}\n",
    "email.html": '{% extends "_layout.email.html" %}\n{% block body %}\n'
    "<p>Hi {{ contact.first_name }},</p>\n{% endblock %}\n",
    "email.txt": '{% extends "_layout.email.txt" %}\n{% block body %}\nHi {{ contact.first_name }},\n'
    "{% endblock %}\n",
    "sms.txt": "Hi {{ contact.first_name }}, your renewal is coming up. Reply STOP to opt out\n",
}
TEMPLATE_JOURNEY = """\
id: bad
name: Bad
enter_when: "days_since_start >= 0"
milestones:
  - id: welcome
    ladder:
      - {{id: {channel}, channel: {channel}, template: bad/t{sender}}}
"""


def template_check(tmp_path: Path, slot: str, source: Path | None) -> tuple[int, str]:
    templates = tmp_path / "templates"
    (templates / "bad").mkdir(parents=True)
    for shared in (PROJECT_ROOT / "templates").glob("_*"):
        shutil.copy(shared, templates / shared.name)
    channel = "sms" if slot == "sms.txt" else "email"
    for name in ("sms.txt",) if channel == "sms" else ("subject.txt", "email.html", "email.txt"):
        (templates / "bad" / f"t.{name}").write_text(GOOD_TEMPLATE[name], "utf-8")
    if source is not None:
        shutil.copy(source, templates / "bad" / f"t.{slot}")
    journey = tmp_path / "bad.yaml"
    sender = ", sender: csm" if channel == "email" else ""
    journey.write_text(TEMPLATE_JOURNEY.format(channel=channel, sender=sender), "utf-8")
    return check(journey, env={"TECHTOUCH_TEMPLATES_DIR": str(templates)})


@pytest.mark.parametrize("slot", ["email.html", "sms.txt"])
def test_the_good_template_passes(tmp_path: Path, slot: str) -> None:
    code, output = template_check(tmp_path, slot, None)
    assert code == 0, output


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", params("templates"))
def test_template_file(case: dict[str, Any], tmp_path: Path) -> None:
    slot = next(s for s in GOOD_TEMPLATE if case["file"].endswith(f".{s}"))
    code, output = template_check(tmp_path, slot, HERE / "templates" / case["file"])
    assert code == 1, output
    assert_located(output, case)
    assert f"bad/t.{slot}" in output


# ---------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("case", params("settings"))
def test_settings_file(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    path = HERE / "settings" / case["file"]
    monkeypatch.setenv("TECHTOUCH_CONFIG_FILE", str(path))
    with pytest.raises(UserError) as refused:
        settings()
    assert str(path) in str(refused.value)
    assert_located(str(refused.value), case)


# -------------------------------------------------------------- the database cases: one per backend


def snapshot(engine: Engine) -> dict[str, tuple[int, str]]:
    """(rows, sha256 of the rows in order) of every table."""
    found = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            found[table.name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return found


@dataclass
class Corpus:
    engine: Engine
    client: TestClient


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """A migrated database seeded from csv/base/, and the web service on it (one per backend)."""
    folder = tmp_path_factory.mktemp("corpus")
    dropped: str | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'techtouch.db'}"
    else:
        require_postgres()
        dropped = f"tt_corpus_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{dropped}"'))
        url = make_url(POSTGRES_ADMIN_URL).set(database=dropped).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    for kind in ("accounts", "contacts", "usage", "events"):
        import_csv(engine, kind, HERE / "csv" / "base" / f"{kind}.csv")
    der = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(
        database_url=url,
        outbox_dir=folder / "outbox",
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        sendgrid_webhook_public_key=base64.b64encode(der).decode(),
        twilio_auth_token=TWILIO_TOKEN,
    )
    try:
        with TestClient(
            create_app(bootstrap.build(settings, engine=engine)),
            base_url=PUBLIC_URL,
            raise_server_exceptions=False,
        ) as client:
            yield Corpus(engine, client)
    finally:
        engine.dispose()
        if dropped is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)'))
            admin.dispose()


# --------------------------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("case", params("csv"))
def test_csv_file(case: dict[str, Any], corpus: Corpus) -> None:
    path = HERE / "csv" / case["file"]
    before = snapshot(corpus.engine)
    with pytest.raises(ImportFailed) as refused:
        import_csv(corpus.engine, case["import"], path, chunksize=2)
    listing = "\n".join(refused.value.problems)
    assert "nothing was imported" in str(refused.value)
    assert all(line.startswith(f"{path}") for line in refused.value.problems), listing
    assert_located(listing, case)
    assert snapshot(corpus.engine) == before


# ------------------------------------------------------------------------------- webhooks and links


def sendgrid_headers(body: bytes, how: str) -> dict[str, str]:
    stamp = int(time.time()) - (3600 if how == "sendgrid-stale" else 0)
    key = OTHER_SENDGRID_KEY if how == "sendgrid-other-key" else SENDGRID_KEY
    signature = key.sign(str(stamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(stamp),
    }


def twilio_headers(target: str, body: bytes, how: str) -> dict[str, str]:
    path, _, query = target.partition("?")
    if how == "twilio-status-path":
        path = "/webhooks/twilio/status"
    if how == "twilio-other-query":
        query = "touch_key=t-2"
    url = f"{PUBLIC_URL}{path}" + (f"?{query}" if query else "")
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if how == "twilio-tampered":
        fields["Body"] = "START"
    token = "some-other-token" if how == "twilio-other-token" else TWILIO_TOKEN
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, fields)}


def parse_request(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """`METHOD TARGET`, header lines, a blank line, the body (a .http file)."""
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8").splitlines()
    method, target = lines[0].split(" ", 1)
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return method, target, headers, body.rstrip(b"\n")


@pytest.mark.parametrize("case", params("webhooks"))
def test_webhook_request(case: dict[str, Any], corpus: Corpus) -> None:
    raw = (HERE / "webhooks" / case["file"]).read_bytes().replace(b"{now}", str(int(time.time())).encode())
    method, target, headers, body = parse_request(raw)
    how = headers.pop("X-Test-Sign", "")
    if how.startswith("sendgrid"):
        headers |= sendgrid_headers(body, how)
        if how == "sendgrid-tampered":
            body = body.replace(b'"open"', b'"click"')
    elif how.startswith("twilio"):
        headers |= twilio_headers(target, body, how)
    for name, value in headers.items():
        headers[name] = value.replace("{now}", str(int(time.time())))
    before = snapshot(corpus.engine)
    response = corpus.client.request(method, target, content=body, headers=headers)
    assert response.status_code == case["status"], response.text
    assert_located(response.text, case)
    assert snapshot(corpus.engine) == before


TOKEN = re.compile(r"\{([^}]*)\}")


def signed_token(spec: str) -> str:
    """`{unsubscribe c1 email}`, `{preferences c1}`, `{survey a1 c1 nps 9}`, with `|tamper`,
    `|other-key`, `|truncate` or `|drop-signature`: the token of such a link."""
    what, _, how = spec.partition("|")
    kind, *args = what.split()
    signer = LinkSigner(PUBLIC_URL, (OTHER_SECRET if how == "other-key" else SECRET).encode())
    url: str = getattr(signer, kind)(*args)
    body, signature = urlsplit(url).path.rsplit("/", 1)[1].split(".")
    if how == "tamper":
        signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    elif how == "truncate":
        body = body[:-4]
    elif how == "drop-signature":
        signature = ""
    return f"{body}.{signature}"


@pytest.mark.parametrize("case", params("links"))
def test_link_request(case: dict[str, Any], corpus: Corpus) -> None:
    raw = (HERE / "links" / case["file"]).read_text("utf-8")
    line, _, form = raw.partition("\n\n")
    method, target = line.strip().split(" ", 1)
    target = TOKEN.sub(lambda m: signed_token(m.group(1)), target)
    body = form.strip().encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    before = snapshot(corpus.engine)
    response = corpus.client.request(method, target, content=body, headers=headers)
    assert response.status_code == case["status"], response.text
    assert_located(response.text, case)
    assert snapshot(corpus.engine) == before


# ------------------------------------------------------------------ user data through the CLI's views

CLI_DAY = "2027-01-04"
MARKUP_LIKE = ("Acme [/] Corp", "[bold red]x", "acme[/]", "[/] Admin", "Call [/] them [bold red]now")


def test_user_data_that_looks_like_markup_is_printed_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names, ids and journey text with `[/]` or `[bold red]` go through every view unchanged (Rich
    would read them as markup: `[/]` closes nothing and raises)."""
    data = HERE / "cli"
    config = tmp_path / "config"
    shutil.copytree(data / "journeys", config / "journeys")
    env = {
        "TECHTOUCH_DATABASE_URL": f"sqlite:///{tmp_path / 'techtouch.db'}",
        "TECHTOUCH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TECHTOUCH_CONFIG_DIR": str(config),
        "COLUMNS": "400",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    migrate.upgrade(engine := make_engine(env["TECHTOUCH_DATABASE_URL"]))
    engine.dispose()

    def techtouch(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == 0, result.output
        return result.output

    for kind in ("accounts", "contacts"):
        odd = tmp_path / f"{kind} [bold].csv"  # a file name that looks like markup too
        shutil.copy(data / f"{kind}.csv", odd)
        assert f"from {odd}" in techtouch("import", kind, str(odd))
    preview = techtouch("preview", "brackets", "--account", "acme[/]", "--as-of", CLI_DAY)
    assert "for account acme[/]" in preview and "Acme [/] Corp" in preview
    techtouch("run", "--all", "--as-of", CLI_DAY)
    techtouch("run", "--all", "--as-of", "2027-01-05")
    shown = "\n".join(
        techtouch(*args)
        for args in (
            ("accounts", "show", "acme[/]"),
            ("accounts", "show", "red[b]"),
            ("touches",),
            ("ctas",),
            ("preview", "brackets", "--account", "acme[/]", "--as-of", "2027-01-06"),
        )
    )
    for text_ in MARKUP_LIKE:
        assert text_ in shown, text_

    # The error boundary prints what the user typed as it is, too (`main`, as the command runs).
    monkeypatch.setattr("sys.argv", ["techtouch", "accounts", "show", "[/]nobody[bold]"])
    with pytest.raises(SystemExit) as exited:
        cli_main()
    assert exited.value.code == 1
    assert "no account with id '[/]nobody[bold]'" in capsys.readouterr().err
