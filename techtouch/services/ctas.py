"""The CTA lifecycle: the one place that changes a CTA, for the CLI, the web workspace and the runs.

People (`start`, `complete`, `snooze`, `assign`, `cancel`, `note`) act as an `Actor`: the access
rules (techtouch.domain.access) are checked first, then the lifecycle rules
(techtouch.domain.cta_rules), then the row is changed with a compare-and-set on its status, so two
people acting at once cannot both move it, and a `cta_history` row records who, when, from and
to, in the same transaction. Runs act as `techtouch`: `wake_snoozed` reopens CTAs whose snooze date
came, `auto_close` closes the ones whose cause went away, `join_escalations` adds new escalations
to the CTA already open for that account and reason (raising its priority when higher).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.models import Account, Cta, CtaHistory, User
from techtouch.domain import cta_rules
from techtouch.domain.access import (
    Actor,
    CtaScope,
    Forbidden,
    Role,
    can_assign_to,
    can_change_cta,
    can_view_cta,
)
from techtouch.domain.cta_rules import (
    RESOLVED_BY_CUSTOMER,
    SYSTEM_ACTOR,
    CtaChange,
    CtaRuleError,
)
from techtouch.domain.statuses import OPEN_CTA_STATUSES, CtaAction, CtaStatus
from techtouch.services.app import App

__all__ = [
    "BulkResult",
    "CtaRecord",
    "CtaRuleError",
    "Forbidden",
    "UnknownCta",
    "assign",
    "auto_close",
    "bulk",
    "cancel",
    "complete",
    "get",
    "history",
    "join_escalations",
    "note",
    "snooze",
    "start",
    "wake_snoozed",
]


class UnknownCta(LookupError):
    """No CTA with that id (said the same way whether it does not exist or is not yours to see)."""

    def __init__(self, cta_id: int) -> None:
        super().__init__(f"no CTA with id {cta_id}")
        self.cta_id = cta_id


@dataclass(frozen=True)
class CtaRecord:
    """One CTA as the workspace shows it."""

    id: int
    account_id: str
    account_name: str
    journey: str
    reason: str
    title: str
    priority: str
    assignee: str
    status: str
    due_date: date
    created_as_of: date
    outcome: str | None
    outcomes: tuple[str, ...]
    note: str | None
    snoozed_until: date | None
    snooze_reason: str | None
    why: dict[str, Any]
    context: dict[str, Any]
    first_action_at: datetime | None
    closed_as_of: date | None
    closed_at: datetime | None
    enrollment_id: int | None
    touch_key: str | None
    scope: CtaScope = field(repr=False)

    def is_open(self) -> bool:
        return self.status in OPEN_CTA_STATUSES

    def overdue(self, today: date) -> bool:
        return self.is_open() and self.due_date < today


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _writing(app: App) -> Iterator[Connection]:
    """The transaction of one person's change. On SQLite it takes the write lock at BEGIN (the
    engine's `immediate` option): a deferred transaction that read before another one committed
    cannot write any more ("database is locked"), so two people changing CTAs at the same moment
    would fail instead of queueing. PostgreSQL ignores the option (the compare-and-set decides)."""
    with app.engine.connect() as connection, connection.execution_options(immediate=True).begin():
        yield connection


def _record(connection: Connection, cta_id: int) -> CtaRecord:
    row = (
        connection.execute(
            select(Cta.__table__, Account.name.label("account_name"))
            .join(Account, Account.id == Cta.account_id)
            .where(Cta.id == cta_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise UnknownCta(cta_id)
    team = None
    if not row["assignee"].startswith("queue:"):
        team = connection.execute(select(User.team).where(User.email == row["assignee"])).scalar()
    scope = CtaScope(row["assignee"], team, row["assignee"].startswith("queue:"))
    return CtaRecord(
        id=row["id"],
        account_id=row["account_id"],
        account_name=row["account_name"],
        journey=row["journey"],
        reason=row["reason"],
        title=row["title"],
        priority=row["priority"],
        assignee=row["assignee"],
        status=row["status"],
        due_date=row["due_date"],
        created_as_of=row["created_as_of"],
        outcome=row["outcome"],
        outcomes=tuple(row["outcomes"] or cta_rules.outcomes_for(row["reason"])),
        note=row["note"],
        snoozed_until=row["snoozed_until"],
        snooze_reason=row["snooze_reason"],
        why=dict(row["why"] or {}),
        context=dict(row["context"] or {}),
        first_action_at=row["first_action_at"],
        closed_as_of=row["closed_as_of"],
        closed_at=row["closed_at"],
        enrollment_id=row["enrollment_id"],
        touch_key=row["touch_key"],
        scope=scope,
    )


def get(connection: Connection, cta_id: int, actor: Actor | None) -> CtaRecord:
    """The CTA if `actor` may see it (None: the caller already is the system), else UnknownCta
    for a missing one and Forbidden for someone else's."""
    record = _record(connection, cta_id)
    if actor is not None and not can_view_cta(actor, record.scope):
        raise Forbidden("not allowed to see this CTA")
    return record


def history(connection: Connection, cta_id: int) -> list[dict[str, Any]]:
    """The CTA's changes, oldest first."""
    table = CtaHistory.__table__
    rows = connection.execute(select(table).where(table.c.cta_id == cta_id).order_by(table.c.id))
    return [dict(r) for r in rows.mappings()]


ID_BATCH = 5_000  # CTA ids per statement (SQLite allows 32,766 parameters)


def _history_row(
    cta_id: int,
    actor: str,
    action: CtaAction,
    *,
    at: datetime,
    as_of: date | None,
    from_status: str | None = None,
    to_status: str | None = None,
    from_assignee: str | None = None,
    to_assignee: str | None = None,
    outcome: str | None = None,
    note: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "cta_id": cta_id,
        "at": at,
        "as_of": as_of,
        "actor": actor,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "from_assignee": from_assignee,
        "to_assignee": to_assignee,
        "outcome": outcome,
        "note": note,
        "detail": detail or {},
    }


def _write_history(connection: Connection, cta_id: int, actor: str, action: CtaAction, **fields: Any) -> None:
    connection.execute(insert(CtaHistory).values(**_history_row(cta_id, actor, action, **fields)))


def _change(
    connection: Connection,
    cta_id: int,
    actor: Actor,
    change: CtaChange,
    action: CtaAction,
    *,
    today: date,
    at: datetime | None,
    values: dict[str, Any],
    outcome: str | None = None,
    note: str | None = None,
    to_assignee: str | None = None,
    detail: dict[str, Any] | None = None,
) -> CtaRecord:
    record = _record(connection, cta_id)
    if not can_view_cta(actor, record.scope):
        raise Forbidden("not allowed to see this CTA")
    if not can_change_cta(actor, record.scope):
        raise Forbidden(f"not allowed to {change} this CTA")
    new_status = cta_rules.check_change(change, record.status)
    when = at or _now()
    values = dict(values)
    if new_status is not None:
        values["status"] = new_status
    if record.first_action_at is None and change is not CtaChange.NOTE:
        values["first_action_at"] = when
    if new_status in (CtaStatus.DONE, CtaStatus.CANCELLED):
        values |= {"closed_as_of": today, "closed_at": when}
    if new_status is not CtaStatus.SNOOZED and record.status == CtaStatus.SNOOZED and new_status is not None:
        values |= {"snoozed_until": None}
    moved = connection.execute(
        update(Cta).where(Cta.id == cta_id, Cta.status == record.status).values(**values)
    ).rowcount
    if not moved:
        raise CtaRuleError("this CTA was changed by someone else just now: reload it and try again")
    _write_history(
        connection,
        cta_id,
        actor.email,
        action,
        at=when,
        as_of=today,
        from_status=record.status,
        to_status=new_status or record.status,
        from_assignee=record.assignee if to_assignee else None,
        to_assignee=to_assignee,
        outcome=outcome,
        note=note,
        detail=detail,
    )
    return _record(connection, cta_id)


def start(app: App, cta_id: int, actor: Actor, *, today: date, at: datetime | None = None) -> CtaRecord:
    with _writing(app) as connection:
        return _change(
            connection, cta_id, actor, CtaChange.START, CtaAction.STARTED, today=today, at=at, values={}
        )


def complete(
    app: App,
    cta_id: int,
    actor: Actor,
    outcome: str,
    note_text: str | None = None,
    *,
    today: date,
    at: datetime | None = None,
) -> CtaRecord:
    """Done with an outcome from the CTA's list, and an optional note."""
    with _writing(app) as connection:
        current = get(connection, cta_id, actor)
        cta_rules.check_outcome(outcome, current.outcomes)
        text = cta_rules.check_note(note_text)
        values: dict[str, Any] = {"outcome": outcome}
        if text:
            values["note"] = text
        return _change(
            connection,
            cta_id,
            actor,
            CtaChange.DONE,
            CtaAction.DONE,
            today=today,
            at=at,
            values=values,
            outcome=outcome,
            note=text,
        )


def snooze(
    app: App,
    cta_id: int,
    actor: Actor,
    until: date,
    reason: str,
    *,
    today: date,
    at: datetime | None = None,
) -> CtaRecord:
    """Out of the inbox until `until` (a later day), for a reason; the run of that day reopens it."""
    cta_rules.check_snooze(until, today, reason)
    with _writing(app) as connection:
        return _change(
            connection,
            cta_id,
            actor,
            CtaChange.SNOOZE,
            CtaAction.SNOOZED,
            today=today,
            at=at,
            values={"snoozed_until": until, "snooze_reason": reason.strip()},
            note=reason.strip(),
            detail={"until": until.isoformat()},
        )


def cancel(
    app: App, cta_id: int, actor: Actor, note_text: str, *, today: date, at: datetime | None = None
) -> CtaRecord:
    text = cta_rules.check_note(note_text)
    if not text:
        raise CtaRuleError("say why the CTA is cancelled (a note)")
    with _writing(app) as connection:
        return _change(
            connection,
            cta_id,
            actor,
            CtaChange.CANCEL,
            CtaAction.CANCELLED,
            today=today,
            at=at,
            values={"note": text},
            note=text,
        )


def note(
    app: App, cta_id: int, actor: Actor, note_text: str, *, today: date, at: datetime | None = None
) -> CtaRecord:
    text = cta_rules.check_note(note_text)
    if not text:
        raise CtaRuleError("the note is empty")
    with _writing(app) as connection:
        return _change(
            connection,
            cta_id,
            actor,
            CtaChange.NOTE,
            CtaAction.NOTED,
            today=today,
            at=at,
            values={},
            note=text,
        )


def assign(
    app: App, cta_id: int, actor: Actor, to_email: str, *, today: date, at: datetime | None = None
) -> CtaRecord:
    """Hand the CTA to another person: an enabled CSM or manager (a manager within their team)."""
    target = to_email.strip().lower()
    with _writing(app) as connection:
        user = connection.execute(
            select(User.role, User.team, User.disabled).where(User.email == target)
        ).first()
        if user is None or user.disabled:
            raise CtaRuleError(f"no enabled user {target!r} to assign to (see `techtouch users list`)")
        role = Role(user.role)
        if role is Role.OPS:
            raise CtaRuleError("ops users do not work CTAs: assign to a CSM or manager")
        if not can_assign_to(actor, role, user.team, target):
            raise Forbidden("not allowed to assign outside your team")
        return _change(
            connection,
            cta_id,
            actor,
            CtaChange.ASSIGN,
            CtaAction.ASSIGNED,
            today=today,
            at=at,
            values={"assignee": target},
            to_assignee=target,
        )


@dataclass(frozen=True)
class BulkResult:
    changed: list[int]
    refused: dict[int, str]  # id → why (not found, not yours, not allowed from its status)


def bulk(
    app: App,
    cta_ids: Iterable[int],
    actor: Actor,
    change: CtaChange,
    *,
    today: date,
    outcome: str | None = None,
    until: date | None = None,
    reason: str | None = None,
    to_email: str | None = None,
) -> BulkResult:
    """One change to many CTAs, each in its own transaction: one refusal does not undo the rest."""
    changed: list[int] = []
    refused: dict[int, str] = {}
    for cta_id in dict.fromkeys(cta_ids):
        try:
            if change is CtaChange.DONE:
                complete(app, cta_id, actor, outcome or "", today=today)
            elif change is CtaChange.SNOOZE:
                if until is None:
                    raise CtaRuleError("a snooze needs a date")
                snooze(app, cta_id, actor, until, reason or "", today=today)
            elif change is CtaChange.ASSIGN:
                assign(app, cta_id, actor, to_email or "", today=today)
            elif change is CtaChange.START:
                start(app, cta_id, actor, today=today)
            else:
                raise CtaRuleError(f"{change} is not a bulk action")
            changed.append(cta_id)
        except (UnknownCta, Forbidden, CtaRuleError) as exc:
            refused[cta_id] = str(exc)
    return BulkResult(changed, refused)


# --- what runs do (actor: techtouch) -------------------------------------------------------------


def wake_snoozed(connection: Connection, as_of: date) -> int:
    """Reopen every snoozed CTA whose date came (`snoozed_until <= as_of`), with a history row:
    one UPDATE … RETURNING and one insert of history rows, whatever their number."""
    woken = connection.execute(
        update(Cta)
        .where(Cta.status == CtaStatus.SNOOZED, Cta.snoozed_until <= as_of)
        .values(status=CtaStatus.OPEN, snoozed_until=None)
        .returning(Cta.id)
    ).scalars()
    at = _now()
    history = [
        _history_row(
            cta_id,
            SYSTEM_ACTOR,
            CtaAction.WOKE,
            at=at,
            as_of=as_of,
            from_status=CtaStatus.SNOOZED,
            to_status=CtaStatus.OPEN,
        )
        for cta_id in sorted(woken)
    ]
    if history:
        insert_rows(connection, CtaHistory.__table__, history)
    return len(history)


def auto_close(connection: Connection, closing: dict[int, str], as_of: date) -> int:
    """Close open CTAs whose cause went away: done, outcome `resolved_by_customer`, and why.

    Set-based (a launch day may close thousands): one UPDATE … RETURNING per reason and batch,
    compare-and-set on the open statuses, and the history rows in one insert.
    """
    at = _now()
    by_why: dict[str, list[int]] = {}
    for cta_id, why in closing.items():
        by_why.setdefault(why, []).append(cta_id)
    history: list[dict[str, Any]] = []
    for why, ids in by_why.items():
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start : start + ID_BATCH]
            found = connection.execute(
                select(Cta.id, Cta.status).where(Cta.id.in_(chunk), Cta.status.in_(OPEN_CTA_STATUSES))
            )
            before = {row.id: row.status for row in found}
            if not before:
                continue
            moved = connection.execute(
                update(Cta)
                .where(Cta.id.in_(list(before)), Cta.status.in_(OPEN_CTA_STATUSES))
                .values(
                    status=CtaStatus.DONE,
                    outcome=RESOLVED_BY_CUSTOMER,
                    note=why,
                    snoozed_until=None,
                    closed_as_of=as_of,
                    closed_at=at,
                )
                .returning(Cta.id)
            ).scalars()
            history += [
                _history_row(
                    cta_id,
                    SYSTEM_ACTOR,
                    CtaAction.AUTO_CLOSED,
                    at=at,
                    as_of=as_of,
                    from_status=before[cta_id],
                    to_status=CtaStatus.DONE,
                    outcome=RESOLVED_BY_CUSTOMER,
                    note=why,
                )
                for cta_id in sorted(moved)
            ]
    if history:
        insert_rows(connection, CtaHistory.__table__, history)
    return len(history)


def join_escalations(
    connection: Connection, joined: Sequence[tuple[int, Mapping[str, Any]]], *, as_of: date
) -> int:
    """New escalations for accounts and reasons with an open CTA: each adds a history row on that
    CTA (what fired, why) and raises its priority if the new one is higher; none is dropped.

    `joined` holds (CTA id, escalation: priority, title, why, touch_key) in the order they fired;
    two on one CTA are taken in that order (the second sees the first's priority). It is set-based:
    one read of the priorities and one update per raised priority per batch, one history insert,
    not two statements per escalation (50,000 at 1M accounts). Returns the history rows written."""
    ids = list(dict.fromkeys(cta_id for cta_id, _ in joined))
    current: dict[int, str] = {}
    for start in range(0, len(ids), ID_BATCH):
        rows = connection.execute(
            select(Cta.id, Cta.priority).where(Cta.id.in_(ids[start : start + ID_BATCH]))
        )
        current.update({row.id: row.priority for row in rows})
    before = dict(current)
    at = _now()
    history: list[dict[str, Any]] = []
    for cta_id, escalation in joined:
        if cta_id not in current:
            continue
        was = current[cta_id]
        current[cta_id] = cta_rules.higher_priority(was, str(escalation["priority"]))
        history.append(
            _history_row(
                cta_id,
                SYSTEM_ACTOR,
                CtaAction.ESCALATED,
                at=at,
                as_of=as_of,
                note=str(escalation["title"]),
                detail={
                    "why": escalation.get("why") or {},
                    "touch_key": str(escalation["touch_key"]),
                    "priority": {"from": was, "to": current[cta_id]},
                },
            )
        )
    raised: dict[str, list[int]] = {}
    for cta_id, priority in current.items():
        if priority != before[cta_id]:
            raised.setdefault(priority, []).append(cta_id)
    for priority, cta_ids in raised.items():
        for start in range(0, len(cta_ids), ID_BATCH):
            connection.execute(
                update(Cta).where(Cta.id.in_(cta_ids[start : start + ID_BATCH])).values(priority=priority)
            )
    if history:
        insert_rows(connection, CtaHistory.__table__, history)
    return len(history)


def record_created(connection: Connection, cta_ids: Iterable[int], as_of: date) -> None:
    """The first history row of CTAs a run just opened (one insert for all of them)."""
    at = _now()
    ids = list(cta_ids)
    history: list[dict[str, Any]] = []
    for start in range(0, len(ids), ID_BATCH):
        rows = connection.execute(
            select(Cta.id, Cta.assignee, Cta.status).where(Cta.id.in_(ids[start : start + ID_BATCH]))
        )
        history += [
            _history_row(
                row.id,
                SYSTEM_ACTOR,
                CtaAction.CREATED,
                at=at,
                as_of=as_of,
                to_status=row.status,
                to_assignee=row.assignee,
            )
            for row in rows.all()
        ]
    if history:
        insert_rows(connection, CtaHistory.__table__, history)
