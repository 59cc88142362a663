"""SIGKILL delivery at random points, recover, and count: 0 duplicates and 0 lost messages.

Shared by tests/integration/test_crash_safety.py (50 trials in CI) and
benchmarks/bench_crash_trials.py (as many as asked). Each trial:

1. every email and SMS touch of a small base is `pending`;
2. a forked child delivers them through the real SendGrid and Twilio channels to the loopback
   fakes, and is killed with SIGKILL after a random delay (sometimes before it starts, sometimes
   mid-request, sometimes after it finished);
3. recovery as in production: SendGrid's `processed` events (which carry the touch key) go
   through the webhook's ingestion, then a normal delivery runs, reconciling what is ambiguous
   (Twilio: listing messages; SendGrid: the events, then the grace period, here 0);
4. each touch key must be at the providers exactly once, and every touch `sent`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import urllib.parse
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Engine, text

from techtouch import bootstrap
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Enrollment, Touch
from techtouch.bootstrap import load_journeys
from techtouch.domain.catalog import CompiledJourney
from techtouch.services import day as service
from techtouch.services.feedback import apply_sendgrid_events, parse_sendgrid_events
from techtouch.services.seed import seed
from techtouch.settings import Delivery, Settings
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.twilio_api import FakeTwilio

AS_OF = date(2026, 11, 2)
SECRET = "crash-trial-secret-key-0123456789abcdef"


@dataclass
class TrialResult:
    trials: int = 0
    killed_before_any_send: int = 0
    killed_mid_delivery: int = 0
    finished_before_kill: int = 0
    duplicates: int = 0
    lost: int = 0
    ambiguous_recovered: int = 0
    problems: list[str] = field(default_factory=list)


def settings_for(url: str, sendgrid: FakeSendGrid, twilio: FakeTwilio, grace_minutes: float) -> Settings:
    return Settings(
        database_url=url,
        timezone="Europe/Paris",
        secret_key=SECRET,
        email_channel="sendgrid",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_host=sendgrid.url,
        sms_channel="twilio",
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_messaging_service_sid="MG" + "0" * 32,
        twilio_base_url=twilio.base_url,
        twilio_mps=1000,
        # Recovery stands for the next run, hours later: no attempt is still in flight by then.
        # Business hours all day, every day: the seeded accounts span time zones, and these trials
        # are about the claim machine, not the recipients' window (test_delivery_window.py).
        delivery=Delivery(
            reconcile_after_minutes=grace_minutes,
            claim_lease_minutes=0,
            business_start="00:00",
            business_end="23:59",
            business_days=list(range(7)),
        ),
    )


def build_base(engine: Engine, accounts: int = 40) -> int:
    """Seeded accounts, one enrollment each, and an email plus an SMS touch per reachable contact."""
    seed(engine, accounts=accounts, seed=3, days=30, as_of=AS_OF, high_touch_arr=10**9)
    with engine.begin() as connection:
        rows = connection.execute(
            text(
                "SELECT c.id, c.account_id FROM contacts c JOIN accounts a ON a.id = c.account_id "
                "WHERE a.renewal_date IS NOT NULL AND c.email_consent AND c.sms_consent "
                "AND c.phone IS NOT NULL ORDER BY c.id"
            )
        ).all()
        account_ids = sorted({account_id for _, account_id in rows})
        insert_rows(
            connection,
            Enrollment.__table__,
            [
                {"account_id": a, "journey": "renewal", "cycle": 1, "status": "active"}
                | {"entered_as_of": AS_OF, "milestone": "announce", "phase": "active", "step": 1, "entry": {}}
                for a in account_ids
            ],
        )
        enrollment = dict(connection.execute(text("SELECT account_id, id FROM enrollments")).all())
        send_at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        touches = [
            {
                "key": f"renewal/{account_id}/1/announce/{channel}/{contact_id}",
                "enrollment_id": enrollment[account_id],
                "account_id": account_id,
                "contact_id": contact_id,
                "journey": "renewal",
                "milestone": "announce",
                "rung": channel,
                "channel": channel,
                "sender": "csm" if channel == "email" else None,
                "template": "renewal/announce",
                "status": "pending",
                "as_of": AS_OF,
                "send_at": send_at,
            }
            for contact_id, account_id in rows
            for channel in ("email", "sms")
        ]
        insert_rows(connection, Touch.__table__, touches)
    return len(touches)


def deliver(url: str, settings: Settings, catalog: dict[str, CompiledJourney]) -> None:
    app = bootstrap.build(settings, engine=make_engine(url), catalog=catalog)
    try:
        state = service.load_state(app, AS_OF)
        # Delivery at the touches' own day and hour (10:30 in Paris): not weeks later, when they
        # would be expired as past their day.
        service.deliver_pending(app, state, now=datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
    finally:
        app.close()


def reset(engine: Engine, sendgrid: FakeSendGrid, twilio: FakeTwilio) -> None:
    sendgrid.clear()
    with twilio._lock:  # the fake's own lock: no request is being recorded meanwhile
        twilio.messages.clear()
        twilio.requests.clear()
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE touches SET status = 'pending', attempted_at = NULL, provider_id = NULL, "
                "error = NULL WHERE channel IN ('email', 'sms')"
            )
        )
        connection.execute(text("DELETE FROM events WHERE source <> 'import'"))
        connection.execute(text("DELETE FROM suppressions"))


def sms_keys(twilio: FakeTwilio) -> Counter[str]:
    keys: Counter[str] = Counter()
    for message in list(twilio.messages):
        query = urllib.parse.urlparse(message.status_callback or "").query
        keys.update(urllib.parse.parse_qs(query).get("touch_key", []))
    return keys


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, COUNT(*) FROM touches GROUP BY status")).all()
    return Counter(dict(rows))


def _first_claim(url: str, started: float) -> Future[float]:
    """Seconds from `started` until a touch is first claimed (`sending`) or settled, polled."""

    def poll() -> float:
        engine = make_engine(url)
        try:
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline:
                now = statuses(engine)
                if now.get("sending", 0) or now.get("sent", 0):
                    return time.perf_counter() - started
                time.sleep(0.002)
            return 0.0
        finally:
            engine.dispose()

    return ThreadPoolExecutor(max_workers=1).submit(poll)


def run_trials(
    url: str, sendgrid: FakeSendGrid, twilio: FakeTwilio, trials: int, *, seed_value: int = 0
) -> TrialResult:
    """`url` names a database prepared with build_base()."""
    engine = make_engine(url)
    catalog = load_journeys(Settings(database_url=url))
    crash_settings = settings_for(url, sendgrid, twilio, grace_minutes=60)
    recover_settings = settings_for(url, sendgrid, twilio, grace_minutes=0)
    with engine.connect() as connection:
        by_channel = "SELECT channel, COUNT(*) FROM touches WHERE channel <> 'cta' GROUP BY channel"
        expected = dict(connection.execute(text(by_channel)).all())
    rng = random.Random(seed_value)
    result = TrialResult()

    # Calibrate: how long an uninterrupted (warm) delivery takes, and when its first claim lands
    # (before it, a delivery loads the accounts and prepares contexts), so that kills land across
    # the sending part of it whatever the share of the preparation on this machine.
    full = first = 0.0
    for _ in range(2):
        reset(engine, sendgrid, twilio)
        started = time.perf_counter()
        claimed = _first_claim(url, started)
        deliver(url, recover_settings, catalog)
        full = time.perf_counter() - started
        first = min(claimed.result(), full)
    for trial in range(trials):
        reset(engine, sendgrid, twilio)
        engine.dispose()  # the child must not share pooled connections
        pid = os.fork()
        if pid == 0:  # the child: deliver until killed
            try:
                deliver(url, crash_settings, catalog)
            finally:
                os._exit(0)
        time.sleep(first * 0.8 + rng.uniform(0, (full - first * 0.8) * 1.2))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        # What the killed child had already handed over lands at the providers before recovery
        # looks (in production the grace period covers this window).
        sendgrid.in_flight.wait_idle()
        twilio.in_flight.wait_idle()
        at_kill = statuses(engine)
        if os.WIFEXITED(status):
            result.finished_before_kill += 1
        elif at_kill.get("sent", 0) == 0 and at_kill.get("sending", 0) == 0:
            result.killed_before_any_send += 1
        else:
            result.killed_mid_delivery += 1
        result.ambiguous_recovered += at_kill.get("sending", 0)

        events = sendgrid.events("processed")
        if events:
            apply_sendgrid_events(engine, parse_sendgrid_events(json.dumps(events)))
        # Recovery is the next delivery; one that itself meets a timeout leaves that touch
        # ambiguous for the one after (as in production), so deliver until nothing is `sending`.
        for _ in range(3):
            deliver(url, recover_settings, catalog)
            if not statuses(engine).get("sending"):
                break

        emails, sms = Counter(sendgrid.accepted_keys()), sms_keys(twilio)
        after = statuses(engine)
        duplicates = sum(n - 1 for n in emails.values() if n > 1) + sum(n - 1 for n in sms.values() if n > 1)
        lost = (expected.get("email", 0) - len(emails)) + (expected.get("sms", 0) - len(sms))
        result.duplicates += duplicates
        result.lost += max(lost, 0)
        if duplicates or lost or after.get("sent", 0) != sum(expected.values()):
            result.problems.append(f"trial {trial}: {duplicates} duplicates, {lost} lost, {dict(after)}")
        result.trials += 1
    engine.dispose()
    return result
