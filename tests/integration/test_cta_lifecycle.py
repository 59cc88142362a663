"""The CTA lifecycle service (techtouch.services.ctas) on a real database, SQLite and PostgreSQL:
each change is one compare-and-set with exactly one history row, the rules refuse what they must
and a refusal changes nothing, concurrent changes cannot both win, and the run-side changes
(wake, auto-close, join an escalation) keep the same history."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from techtouch import bootstrap
from techtouch.adapters import passwords
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Cta, CtaHistory, User
from techtouch.domain.access import Actor, Role
from techtouch.domain.cta_rules import RESOLVED_BY_CUSTOMER, SYSTEM_ACTOR, CtaChange, CtaRuleError
from techtouch.domain.statuses import CtaAction, CtaStatus
from techtouch.services import ctas as service
from techtouch.services.app import App
from techtouch.services.users import actor_for
from techtouch.settings import Settings
from tests.integration.journey_base import account

TODAY = date(2027, 1, 4)
JANE, SAM, ANA = "jane@vendor.example", "sam@vendor.example", "ana@vendor.example"
LEAD, OPS, GONE = "lead@vendor.example", "ops@vendor.example", "gone@vendor.example"
HASH = passwords.hash_password("a long enough password")  # once: argon2 costs ~0.1 s per hash

USERS = [
    (JANE, "Jane Doe", Role.CSM, "emea", False),
    (SAM, "Sam Lee", Role.CSM, "emea", False),
    (ANA, "Ana Ruiz", Role.CSM, "amer", False),
    (LEAD, "Lee Lead", Role.MANAGER, "emea", False),
    (OPS, "Olly Ops", Role.OPS, None, False),
    (GONE, "Gone Away", Role.CSM, "emea", True),
]


@pytest.fixture
def app(engine: Engine, db_url: str) -> App:
    return bootstrap.build(Settings(database_url=db_url), engine=engine)


def add_cta(engine: Engine, account_id: str, assignee: str, reason: str, **extra: Any) -> int:
    values = {
        "account_id": account_id,
        "journey": "renewal",
        "reason": reason,
        "title": f"Renewal at risk ({reason})",
        "priority": "medium",
        "assignee": assignee,
        "status": CtaStatus.OPEN,
        "due_date": TODAY + timedelta(days=2),
        "created_as_of": TODAY - timedelta(days=1),
        "context": {},
        "why": {},
        "outcomes": [],
    } | extra
    with engine.begin() as connection:
        return int(connection.execute(insert(Cta).values(**values).returning(Cta.id)).scalar_one())


@pytest.fixture
def ids(engine: Engine) -> dict[str, int]:
    """Users, three accounts (Jane's, Ana's, one without a CSM) and a CTA on each, plus Sam's."""
    with engine.begin() as connection:
        insert_rows(
            connection,
            Account.__table__,
            [
                account("a1", csm_email=JANE),
                account("a2", csm_email=ANA),
                account("a3", csm_email=None),
                account("a4", csm_email=SAM),
            ],
        )
        insert_rows(
            connection,
            User.__table__,
            [
                {
                    "email": email,
                    "name": name,
                    "role": role.value,
                    "title": None,
                    "team": team,
                    "password_hash": HASH,
                    "disabled": disabled,
                }
                for email, name, role, team, disabled in USERS
            ],
        )
    return {
        "jane": add_cta(engine, "a1", JANE, "renewal_at_risk"),
        "ana": add_cta(engine, "a2", ANA, "renewal_at_risk"),
        "queue": add_cta(engine, "a3", "queue:cs", "renewal_at_risk"),
        "sam": add_cta(engine, "a4", SAM, "renewal_at_risk"),
    }


def who(engine: Engine, email: str) -> Actor:
    with engine.connect() as connection:
        return actor_for(connection, email)


def row(engine: Engine, cta_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Cta.__table__).where(Cta.id == cta_id)).mappings().one())


def changes(engine: Engine, cta_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return service.history(connection, cta_id)


def test_every_change_writes_exactly_one_history_row_with_actor_from_and_to(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane, lead = who(engine, JANE), who(engine, LEAD)
    cta = ids["jane"]
    assert changes(engine, cta) == []

    started = service.start(app, cta, jane, today=TODAY)
    assert started.status == CtaStatus.IN_PROGRESS and started.first_action_at is not None
    first_action = started.first_action_at

    snoozed = service.snooze(app, cta, jane, TODAY + timedelta(days=7), "  waiting for budget  ", today=TODAY)
    assert (snoozed.status, snoozed.snoozed_until, snoozed.snooze_reason) == (
        CtaStatus.SNOOZED,
        TODAY + timedelta(days=7),
        "waiting for budget",
    )
    restarted = service.start(app, cta, jane, today=TODAY + timedelta(days=1))
    assert restarted.status == CtaStatus.IN_PROGRESS and restarted.snoozed_until is None

    noted = service.note(app, cta, jane, "left a voicemail", today=TODAY + timedelta(days=1))
    assert noted.status == CtaStatus.IN_PROGRESS

    moved = service.assign(app, cta, lead, SAM, today=TODAY + timedelta(days=1))
    assert moved.assignee == SAM and moved.status == CtaStatus.IN_PROGRESS

    sam = who(engine, SAM)
    closed = service.complete(
        app, cta, sam, "renewal_confirmed", "signed on the call", today=TODAY + timedelta(days=2)
    )
    assert (closed.status, closed.outcome, closed.note) == ("done", "renewal_confirmed", "signed on the call")
    assert closed.closed_as_of == TODAY + timedelta(days=2) and closed.closed_at is not None
    assert closed.first_action_at == first_action  # the first action stays the first
    assert not closed.is_open() and not closed.overdue(TODAY + timedelta(days=30))

    got = [
        (
            h["actor"],
            h["action"],
            h["from_status"],
            h["to_status"],
            h["from_assignee"],
            h["to_assignee"],
            h["outcome"],
            h["note"],
            h["as_of"],
        )
        for h in changes(engine, cta)
    ]
    d0, d1, d2 = TODAY, TODAY + timedelta(days=1), TODAY + timedelta(days=2)
    assert got == [
        (JANE, "started", "open", "in_progress", None, None, None, None, d0),
        (JANE, "snoozed", "in_progress", "snoozed", None, None, None, "waiting for budget", d0),
        (JANE, "started", "snoozed", "in_progress", None, None, None, None, d1),
        (JANE, "noted", "in_progress", "in_progress", None, None, None, "left a voicemail", d1),
        (LEAD, "assigned", "in_progress", "in_progress", JANE, SAM, None, None, d1),
        (SAM, "done", "in_progress", "done", None, None, "renewal_confirmed", "signed on the call", d2),
    ]
    assert changes(engine, cta)[1]["detail"] == {"until": "2027-01-11"}
    assert all(h["at"] is not None for h in changes(engine, cta))


def test_cancel_needs_a_note_and_closes_the_cta(app: App, engine: Engine, ids: dict[str, int]) -> None:
    jane = who(engine, JANE)
    with pytest.raises(CtaRuleError, match="say why"):
        service.cancel(app, ids["jane"], jane, "   ", today=TODAY)
    assert changes(engine, ids["jane"]) == [] and row(engine, ids["jane"])["status"] == "open"
    cancelled = service.cancel(app, ids["jane"], jane, "duplicate of a call already booked", today=TODAY)
    assert cancelled.status == CtaStatus.CANCELLED and cancelled.closed_as_of == TODAY
    [change] = changes(engine, ids["jane"])
    assert (change["action"], change["from_status"], change["to_status"]) == (
        "cancelled",
        "open",
        "cancelled",
    )
    with pytest.raises(CtaRuleError, match="cannot start a CTA that is cancelled"):
        service.start(app, ids["jane"], jane, today=TODAY)
    assert len(changes(engine, ids["jane"])) == 1


def test_a_snooze_needs_a_later_day_and_a_reason_and_a_refusal_changes_nothing(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane, cta = who(engine, JANE), ids["jane"]
    before = row(engine, cta)
    for until, reason, problem in (
        (TODAY, "next week", "later day"),
        (TODAY - timedelta(days=1), "next week", "later day"),
        (TODAY + timedelta(days=3), "  ", "needs a reason"),
    ):
        with pytest.raises(CtaRuleError, match=problem):
            service.snooze(app, cta, jane, until, reason, today=TODAY)
    assert row(engine, cta) == before and changes(engine, cta) == []


def test_done_needs_an_allowed_outcome_and_a_refusal_changes_nothing(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane, cta = who(engine, JANE), ids["jane"]
    before = row(engine, cta)
    with pytest.raises(CtaRuleError) as unknown:
        service.complete(app, cta, jane, "won", today=TODAY)
    assert "unknown outcome 'won'" in str(unknown.value) and "renewal_confirmed" in str(unknown.value)
    with pytest.raises(CtaRuleError, match="set by a run"):
        service.complete(app, cta, jane, RESOLVED_BY_CUSTOMER, today=TODAY)
    assert row(engine, cta) == before and changes(engine, cta) == []

    # A journey's own outcomes replace the defaults.
    custom = add_cta(engine, "a1", JANE, "renewal_custom", outcomes=["saved", "lost"])
    with pytest.raises(CtaRuleError, match="closes with: saved, lost"):
        service.complete(app, custom, jane, "renewal_confirmed", today=TODAY)
    assert service.complete(app, custom, jane, "saved", today=TODAY).outcome == "saved"

    service.complete(app, cta, jane, "no_answer", today=TODAY)
    with pytest.raises(CtaRuleError, match="cannot complete a CTA that is done"):
        service.complete(app, cta, jane, "no_answer", today=TODAY)
    assert len(changes(engine, cta)) == 1


def test_a_csm_cannot_see_or_change_another_csms_cta_and_nothing_changes(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane, ops, lead = who(engine, JANE), who(engine, OPS), who(engine, LEAD)
    for cta in (ids["sam"], ids["ana"], ids["queue"]):
        before = row(engine, cta)
        with engine.connect() as connection, pytest.raises(service.Forbidden, match="not allowed"):
            service.get(connection, cta, jane)
        with pytest.raises(service.Forbidden, match="not allowed"):
            service.start(app, cta, jane, today=TODAY)
        with pytest.raises(service.Forbidden, match="not allowed"):
            service.complete(app, cta, jane, "no_answer", today=TODAY)
        assert row(engine, cta) == before and changes(engine, cta) == []
    # Ops see it and change nothing.
    with engine.connect() as connection:
        assert service.get(connection, ids["sam"], ops).assignee == SAM
    with pytest.raises(service.Forbidden, match="not allowed to start"):
        service.start(app, ids["sam"], ops, today=TODAY)
    # The manager of the team changes their team's and the queue's, not another team's.
    assert service.start(app, ids["sam"], lead, today=TODAY).status == "in_progress"
    assert service.start(app, ids["queue"], lead, today=TODAY).status == "in_progress"
    with pytest.raises(service.Forbidden):
        service.start(app, ids["ana"], lead, today=TODAY)
    assert changes(engine, ids["ana"]) == []


def test_an_unknown_id_is_said_plainly(app: App, engine: Engine, ids: dict[str, int]) -> None:
    jane = who(engine, JANE)
    with engine.connect() as connection, pytest.raises(service.UnknownCta, match=r"^no CTA with id 999999$"):
        service.get(connection, 999999, jane)
    with pytest.raises(service.UnknownCta, match="no CTA with id 999999"):
        service.start(app, 999999, jane, today=TODAY)


def test_assign_to_an_unknown_disabled_or_ops_user_or_outside_the_team_is_refused(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane, lead = who(engine, JANE), who(engine, LEAD)
    cta = ids["jane"]
    for target, problem in (
        ("nobody@vendor.example", "no enabled user"),
        (GONE, "no enabled user"),
        (OPS, "ops users do not work CTAs"),
    ):
        with pytest.raises(CtaRuleError, match=problem):
            service.assign(app, cta, lead, target, today=TODAY)
    with pytest.raises(service.Forbidden, match="outside your team"):
        service.assign(app, cta, lead, ANA, today=TODAY)
    with pytest.raises(service.Forbidden, match="outside your team"):
        service.assign(app, cta, jane, ANA, today=TODAY)
    assert row(engine, cta)["assignee"] == JANE and changes(engine, cta) == []

    # A teammate, written the way people type it.
    moved = service.assign(app, cta, jane, "  Sam@Vendor.example ", today=TODAY)
    assert moved.assignee == SAM
    with pytest.raises(service.Forbidden):  # no longer Jane's
        service.start(app, cta, jane, today=TODAY)
    # "Assign to me" from the queue.
    assert service.assign(app, ids["queue"], lead, LEAD, today=TODAY).assignee == LEAD


def wait_for_lock_waiter(engine: Engine, timeout: float = 20.0) -> None:
    """PostgreSQL: until a backend of this database waits on a row lock (the stale writer)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            watcher.rollback()
            time.sleep(0.02)
    raise AssertionError("the second change never waited on the first one's row lock")


def test_a_second_concurrent_change_from_a_stale_status_is_refused(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    """The manager closes the CTA while Jane starts it: Jane read `open`, but by the time her change
    writes, the CTA is done. Her change is refused, and the history holds the manager's alone."""
    jane, lead = who(engine, JANE), who(engine, LEAD)
    cta = ids["jane"]
    outcome: dict[str, BaseException | str] = {}

    def janes_start() -> None:
        try:
            service.start(app, cta, jane, today=TODAY)
            outcome["jane"] = "started"
        except BaseException as exc:
            outcome["jane"] = exc

    with engine.connect() as managers, managers.execution_options(immediate=True).begin():
        # The manager's change, written but not committed: the row is locked (SQLite: the file).
        service._change(
            managers,
            cta,
            lead,
            CtaChange.DONE,
            CtaAction.DONE,
            today=TODAY,
            at=None,
            values={"outcome": "no_answer"},
            outcome="no_answer",
        )
        jane_thread = threading.Thread(target=janes_start)
        jane_thread.start()
        if engine.dialect.name == "postgresql":
            wait_for_lock_waiter(engine)  # Jane read `open` and waits to write it
        else:
            time.sleep(0.3)  # Jane waits for the write lock, then reads the committed status
    jane_thread.join(timeout=60)
    assert not jane_thread.is_alive()

    refused = outcome["jane"]
    assert isinstance(refused, CtaRuleError), refused
    if engine.dialect.name == "postgresql":
        assert "changed by someone else just now" in str(refused)  # the compare-and-set said no
    else:
        assert "cannot start a CTA that is done" in str(refused)  # serialized: saw the new status
    assert row(engine, cta)["status"] == "done" and row(engine, cta)["outcome"] == "no_answer"
    assert [(h["actor"], h["action"]) for h in changes(engine, cta)] == [(LEAD, "done")]


def test_two_people_changing_different_ctas_at_once_both_succeed(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    """On SQLite a read-then-write transaction that lost the race for the file would fail with
    "database is locked"; a person's change takes the write lock first, so both go through."""
    jane, sam = who(engine, JANE), who(engine, SAM)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(actor: Actor, cta: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                service.note(app, cta, actor, "tried again", today=TODAY)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(jane, ids["jane"])),
        threading.Thread(target=work, args=(sam, ids["sam"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(changes(engine, ids["jane"])) == len(changes(engine, ids["sam"])) == 3


def test_wake_snoozed_reopens_on_the_date_with_a_history_row(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    jane = who(engine, JANE)
    back = TODAY + timedelta(days=3)
    service.snooze(app, ids["jane"], jane, back, "after the holidays", today=TODAY)
    with engine.begin() as connection:
        assert service.wake_snoozed(connection, back - timedelta(days=1)) == 0
    assert row(engine, ids["jane"])["status"] == "snoozed"
    with engine.begin() as connection:
        assert service.wake_snoozed(connection, back) == 1
    woke = row(engine, ids["jane"])
    assert woke["status"] == "open" and woke["snoozed_until"] is None
    last = changes(engine, ids["jane"])[-1]
    assert (last["actor"], last["action"], last["from_status"], last["to_status"], last["as_of"]) == (
        SYSTEM_ACTOR,
        "woke",
        "snoozed",
        "open",
        back,
    )
    with engine.begin() as connection:  # a rerun of the day wakes nothing twice
        assert service.wake_snoozed(connection, back) == 0
    assert len(changes(engine, ids["jane"])) == 2


def test_a_run_closes_a_cta_whose_cause_went_away_once(app: App, engine: Engine, ids: dict[str, int]) -> None:
    with engine.begin() as connection:
        closed = service.auto_close(
            connection, {ids["jane"]: "the renewal was signed", ids["sam"]: "the renewal was signed"}, TODAY
        )
    assert closed == 2
    done = row(engine, ids["jane"])
    assert (done["status"], done["outcome"], done["note"], done["closed_as_of"]) == (
        "done",
        RESOLVED_BY_CUSTOMER,
        "the renewal was signed",
        TODAY,
    )
    with engine.begin() as connection:  # already closed: nothing, no second history row
        assert service.auto_close(connection, {ids["jane"]: "again"}, TODAY) == 0
    [change] = changes(engine, ids["jane"])
    assert (change["actor"], change["action"], change["outcome"]) == (
        SYSTEM_ACTOR,
        "auto_closed",
        RESOLVED_BY_CUSTOMER,
    )


def test_new_escalations_join_their_open_ctas_in_order_and_raise_their_priority(
    engine: Engine, ids: dict[str, int]
) -> None:
    why = {"journey": "renewal", "milestone": "announce", "kind": "branch"}

    def escalation(priority: str, title: str, key: str) -> dict[str, Any]:
        return {"priority": priority, "title": title, "why": why, "touch_key": key}

    sam_before = row(engine, ids["sam"])["priority"]
    with engine.begin() as connection:
        written = service.join_escalations(
            connection,
            [
                (ids["jane"], escalation("high", "Detractor", "k1")),
                (999999, escalation("high", "Gone", "k0")),  # no such CTA: nothing
                (ids["sam"], escalation("low", "Quiet", "k3")),
                (ids["jane"], escalation("low", "Again", "k2")),
            ],
            as_of=TODAY,
        )
    assert written == 3
    assert row(engine, ids["jane"])["priority"] == "high"
    assert row(engine, ids["sam"])["priority"] == sam_before  # a lower one never lowers it
    got = [
        (h["action"], h["note"], h["detail"]["priority"], h["detail"]["touch_key"])
        for h in changes(engine, ids["jane"])
    ]
    assert got == [
        ("escalated", "Detractor", {"from": "medium", "to": "high"}, "k1"),
        ("escalated", "Again", {"from": "high", "to": "high"}, "k2"),
    ]
    [sam] = changes(engine, ids["sam"])
    assert sam["detail"]["priority"] == {"from": sam_before, "to": sam_before}


def test_bulk_changes_each_cta_on_its_own_and_says_why_the_others_were_refused(
    app: App, engine: Engine, ids: dict[str, int]
) -> None:
    lead = who(engine, LEAD)
    result = service.bulk(
        app,
        [ids["jane"], ids["sam"], ids["ana"], 999999, ids["jane"]],
        lead,
        CtaChange.SNOOZE,
        today=TODAY,
        until=TODAY + timedelta(days=5),
        reason="quarter-end freeze",
    )
    assert result.changed == [ids["jane"], ids["sam"]]
    assert set(result.refused) == {ids["ana"], 999999}
    assert "not allowed" in result.refused[ids["ana"]] and "no CTA" in result.refused[999999]
    with engine.connect() as connection:
        counts = dict(
            connection.execute(select(CtaHistory.cta_id, func.count()).group_by(CtaHistory.cta_id))
            .tuples()
            .all()
        )
    assert counts == {ids["jane"]: 1, ids["sam"]: 1}
