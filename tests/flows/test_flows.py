"""The flows under a real (temporary) Prefect API: what they record, send and publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.artifacts import Artifact
from prefect.blocks.system import Secret
from sqlalchemy import Engine, text

from flows.csm_digest import csm_digest
from flows.daily import daily
from flows.deliver import deliver
from flows.health import health
from flows.journey import journey
from tasks.runtime import runtime_settings
from tests.flows.conftest import ACCOUNTS, AS_OF, AT


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def touch_rows(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return {(r.key, r.status) for r in connection.execute(text("SELECT key, status FROM touches"))}


def emails_in(outbox: Path) -> list[str]:
    return sorted(p.name for p in (outbox / "email").glob("*.eml")) if (outbox / "email").exists() else []


def test_daily_scores_health_runs_every_journey_and_a_rerun_sends_nothing(
    seeded: Engine, outbox: Path
) -> None:
    result = daily(as_of=AS_OF, deliver_at=AT)

    assert set(result["journeys"]) == {"onboarding", "renewal", "risk", "advocacy"}
    assert scalar(seeded, "SELECT COUNT(*) FROM health_snapshots WHERE as_of = :d", d=AS_OF) == ACCOUNTS
    journeys = {r[0] for r in seeded.connect().execute(text("SELECT DISTINCT journey FROM touches")).all()}
    assert journeys == {"onboarding", "renewal", "risk", "advocacy"}
    sent = scalar(seeded, "SELECT COUNT(*) FROM touches WHERE status = 'sent' AND channel = 'email'")
    assert sent == result["sent"]["email"] > 0
    assert len(emails_in(outbox)) == sent
    assert scalar(seeded, "SELECT COUNT(*) FROM touches WHERE status IN ('pending', 'sending')") == 0
    # The cycle brought everyone's /reports rollup up to date: every enrollment is in a cohort row.
    assert scalar(seeded, "SELECT COUNT(*) FROM report_refreshes WHERE as_of = :d", d=AS_OF) == 1
    enrollments = scalar(seeded, "SELECT COUNT(*) FROM enrollments")
    assert scalar(seeded, "SELECT SUM(enrollments) FROM report_cohort_days") == enrollments > 0
    before, files = touch_rows(seeded), emails_in(outbox)
    ctas = scalar(seeded, "SELECT COUNT(*) FROM ctas")

    again = daily(as_of=AS_OF, deliver_at=AT)

    assert touch_rows(seeded) == before
    assert emails_in(outbox) == files
    assert scalar(seeded, "SELECT COUNT(*) FROM ctas") == ctas
    assert again["sent"] == {"email": 0, "sms": 0}


def test_artifacts_count_steps_and_ctas_and_carry_no_contact_details(seeded: Engine) -> None:
    daily(as_of=AS_OF, deliver_at=AT)

    table = Artifact.get("renewal-steps")
    summary = Artifact.get("renewal-run")
    assert table is not None and summary is not None
    rows = table.data if isinstance(table.data, list) else __import__("json").loads(table.data)
    recorded = scalar(seeded, "SELECT COUNT(*) FROM touches WHERE journey = 'renewal'")
    assert sum(r["count"] for r in rows) == recorded > 0
    assert {"milestone", "rung", "channel", "status", "count"} <= set(rows[0])
    markdown = str(summary.data)
    assert "CTAs created" in markdown and "frequency cap" in markdown and "quiet hours" in markdown
    ctas = scalar(seeded, "SELECT COUNT(*) FROM ctas WHERE journey = 'renewal'")
    assert f"CTAs created: {ctas}" in markdown

    published = " ".join(
        str(a.data)
        for key in (
            "renewal-steps",
            "renewal-run",
            "risk-run",
            "advocacy-run",
            "onboarding-run",
            "delivery-email",
            "delivery-sms",
        )
        if (a := Artifact.get(key)) is not None
    )
    with seeded.connect() as connection:
        contacts = connection.execute(text("SELECT name, email, phone FROM contacts")).all()
    for name, email, phone in contacts:
        assert email not in published and name not in published
        assert phone is None or phone not in published
    assert "@" not in published  # CSMs appear by handle, never by address


def test_a_single_journey_flow_touches_only_its_journey(seeded: Engine) -> None:
    result = journey("renewal", as_of=AS_OF, deliver_at=AT)

    assert list(result["journeys"]) == ["renewal"]
    assert scalar(seeded, "SELECT COUNT(*) FROM touches WHERE journey <> 'renewal'") == 0
    assert scalar(seeded, "SELECT COUNT(*) FROM touches WHERE journey = 'renewal'") > 0


def test_a_dry_run_records_and_sends_nothing(seeded: Engine, outbox: Path) -> None:
    result = daily(as_of=AS_OF, dry_run=True)

    assert result["dry_run"] is True
    assert sum(j["entered"] for j in result["journeys"].values()) > 0
    assert scalar(seeded, "SELECT COUNT(*) FROM touches") == 0
    assert scalar(seeded, "SELECT COUNT(*) FROM enrollments") == 0
    assert scalar(seeded, "SELECT COUNT(*) FROM report_refreshes") == 0
    assert emails_in(outbox) == []


def test_shards_split_the_accounts_and_together_do_what_one_run_does(seeded: Engine) -> None:
    per_shard = []
    for shard in range(3):
        journey("advocacy", as_of=AS_OF, shard=shard, shards=3, deliver_at=AT)
        with seeded.connect() as connection:
            per_shard.append(
                {r[0] for r in connection.execute(text("SELECT DISTINCT account_id FROM enrollments"))}
            )
    # A shard does not refresh the /reports rollup: the others may still be running.
    assert scalar(seeded, "SELECT COUNT(*) FROM report_refreshes") == 0
    first, second, third = per_shard[0], per_shard[1] - per_shard[0], per_shard[2] - per_shard[1]
    assert first and second and third, "each shard enrolls accounts of its own"
    sharded = touch_rows(seeded)
    assert len({key for key, _ in sharded}) == len(sharded)

    with seeded.begin() as connection:
        for table in ("ctas", "touches", "enrollments"):
            connection.execute(text(f"DELETE FROM {table}"))
    journey("advocacy", as_of=AS_OF, deliver_at=AT)
    assert {key for key, _ in touch_rows(seeded)} == {key for key, _ in sharded}


def test_a_bad_shard_or_journey_fails_the_run_before_anything_is_written(seeded: Engine) -> None:
    with pytest.raises(ValueError, match=r"shard must be in 0\.\.1"):
        journey("renewal", as_of=AS_OF, shard=2, shards=2)
    with pytest.raises(ValueError, match=r"unknown journey.*nope.*known: "):
        daily(as_of=AS_OF, journeys=["renewal", "nope"])
    with pytest.raises(ValueError, match=r"unknown journey.*nope.*known: "):
        journey("nope", as_of=AS_OF, deliver_at=AT)
    assert scalar(seeded, "SELECT COUNT(*) FROM touches") == 0


def test_health_flow_keeps_a_snapshot_and_publishes_the_distribution(seeded: Engine) -> None:
    result = health(as_of=AS_OF)

    assert result["accounts"] == ACCOUNTS
    assert sum(result["colors"].values()) == ACCOUNTS
    assert scalar(seeded, "SELECT COUNT(*) FROM health_snapshots") == ACCOUNTS
    artifact = Artifact.get("health")
    assert artifact is not None and "green" in str(artifact.data)


def test_csm_digest_emails_each_csm_once_a_day_and_routes_the_queue_to_its_owner(
    seeded: Engine, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TECHTOUCH_QUEUE_OWNER", "cs.lead@techtouch.example")
    daily(as_of=AS_OF, deliver_at=AT)  # 07:00: CTAs are created; 08:00: the digest tells their owners
    with seeded.connect() as connection:
        due = connection.execute(
            text(
                "SELECT assignee, COUNT(*) FROM ctas WHERE due_date <= :d OR created_as_of > :since "
                "GROUP BY assignee"
            ),
            {"d": AS_OF, "since": AS_OF - timedelta(days=3)},  # a Monday's digest covers the weekend
        ).all()
    assert due, "the seeded base must give the digest something to say"

    result = csm_digest(as_of=AS_OF)

    assert result["digests"] == result["sent"] == len(due)
    digests = [p for p in (outbox / "email").glob("digest_*.eml")]
    assert len(digests) == len(due)
    queue = [a for a, _ in due if a.startswith("queue:")]
    recipients = {line for p in digests for line in p.read_text().splitlines() if line.startswith("To:")}
    assert any("cs.lead@techtouch.example" in line for line in recipients) == bool(queue)
    assert not any("@" in p.name for p in digests), "no address in keys or file names"
    again = csm_digest(as_of=AS_OF)
    assert again["sent"] == 0 and again["already_sent"] == len(due)
    assert len(list((outbox / "email").glob("digest_*.eml"))) == len(due)


def test_secrets_come_from_prefect_secret_blocks_when_the_environment_has_none(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TECHTOUCH_SECRET_KEY", raising=False)
    assert runtime_settings().secret_key is None
    Secret(value="from-a-block-0123456789abcdef").save("techtouch-secret-key", overwrite=True)
    try:
        assert runtime_settings().secret_key.get_secret_value() == "from-a-block-0123456789abcdef"
        monkeypatch.setenv("TECHTOUCH_SECRET_KEY", "from-the-environment-0123456789")
        assert runtime_settings().secret_key.get_secret_value() == "from-the-environment-0123456789"
    finally:
        Secret.delete("techtouch-secret-key")


WINBACK = """\
id: winback
name: Win back
description: Accounts whose logins stopped get one check-in, then a call.
priority: 50
audience: {segments: [tech_touch]}
recipients: [admin]
enter_when: "days_since_start >= 30 and logins_14d == 0"
goals:
  - {id: back, when: "logins_14d > 0"}
milestones:
  - id: checkin
    title: Logged in again
    done_when: "logins_14d > 0"
    ladder:
      - {id: email, channel: email, template: risk/content, sender: success}
      - {id: cta, channel: cta, after: 3d, priority: medium, title: "Win back: no logins", reason: winback}
"""


def test_a_journey_added_as_yaml_runs_on_prefect_without_new_python(
    seeded: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new journey file plus a deployment entry that only sets `name` is all it takes."""
    import shutil

    import yaml

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).parents[2] / "config" / "journeys", config / "journeys")
    (config / "journeys" / "winback.yaml").write_text(WINBACK)
    monkeypatch.setenv("TECHTOUCH_CONFIG_DIR", str(config))

    deployments = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())["deployments"]
    entry = next(d for d in deployments if d.get("parameters", {}).get("name") == "renewal")
    parameters = {**entry["parameters"], "name": "winback"}  # the new entry: a copy with another name
    path, function = entry["entrypoint"].split(":")
    module = path.removesuffix(".py").replace("/", ".")
    flow = getattr(__import__(module, fromlist=[function]), function)

    result = flow(as_of=AS_OF, **parameters)

    assert list(result["journeys"]) == ["winback"]
    assert scalar(seeded, "SELECT COUNT(*) FROM enrollments WHERE journey = 'winback'") > 0
    assert scalar(seeded, "SELECT COUNT(*) FROM touches WHERE journey <> 'winback'") == 0


def test_a_flow_run_on_a_database_without_accounts_fails_with_the_reason(
    engine: Engine, env: dict[str, str], prefect_api: None
) -> None:
    """A worker pointed at the wrong (empty) database must not look like a quiet success."""
    with pytest.raises(Exception, match=r"no accounts in .*TECHTOUCH_DATABASE_URL"):
        daily(as_of=AS_OF, deliver_at=AT)
    assert scalar(engine, "SELECT COUNT(*) FROM touches") == 0


def test_the_hourly_deliver_flow_sends_what_the_daily_run_could_not_yet_give_the_outbox(
    seeded: Engine, outbox: Path
) -> None:
    """The outbox sends at once, so the daily run hands it only what is due; `deliver` the rest."""
    early = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)  # before the 07:00 run's send times
    result = daily(as_of=AS_OF, deliver_at=early)
    held = scalar(seeded, "SELECT COUNT(*) FROM touches WHERE status = 'pending'")
    assert result["sent"] == {"email": 0, "sms": 0} and held > 0 and emails_in(outbox) == []

    delivered = deliver(at=AT)

    assert scalar(seeded, "SELECT COUNT(*) FROM touches WHERE status = 'pending'") == 0
    sent = scalar(seeded, "SELECT COUNT(*) FROM touches WHERE status = 'sent'")
    assert sent == held and len(emails_in(outbox)) == delivered["sent"]["email"] > 0


def test_a_replayed_delivery_clock_is_refused_with_a_provider_channel(
    seeded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider sends at the real time: `deliver_at` would lie about when mail goes out."""
    monkeypatch.setenv("TECHTOUCH_EMAIL_CHANNEL", "sendgrid")
    monkeypatch.setenv("TECHTOUCH_SENDGRID_API_KEY", "SG.never-used")
    monkeypatch.setenv("TECHTOUCH_SECRET_KEY", "flow-test-secret")
    with pytest.raises(Exception, match="outbox only"):
        daily(as_of=AS_OF, deliver_at=AT)
    assert scalar(seeded, "SELECT COUNT(*) FROM touches") == 0  # refused before anything was recorded
