"""What a journey run does to CTAs besides opening them: say why they fired, add a new escalation
to the CTA already open, and close the ones whose cause went away.

- `explain` completes each new CTA's `why` (decide gives the condition and the values it read)
  with the journey, milestone, rung or branch, and, when the condition read a survey answer, that
  answer: which contact gave it, when, and the comment left with it;
- `after_record` writes the `created` history rows, joins escalations (services.ctas), and closes
  open CTAs of this journey whose cause cleared (domain.cta_rules.cause_cleared): the milestone of
  a ladder CTA got done, or the enrollment ended by reaching a goal. A customer's request is never
  closed by a run.
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from techtouch.adapters.db.models import Contact, Cta, Enrollment, Event
from techtouch.adapters.db.record import Recorded
from techtouch.adapters.db.sharding import in_shard
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.cta_rules import CtaCause, cause_cleared
from techtouch.domain.decide import BRANCH_PREFIX, GOAL_MILESTONE, REQUEST_MILESTONE, Decision
from techtouch.domain.shards import ALL, Shard
from techtouch.domain.statuses import OPEN_CTA_STATUSES
from techtouch.services import ctas


def cause_of(touch_key: str | None) -> CtaCause | None:
    """The milestone and kind of a CTA from its touch key (journey/account/cycle/milestone/rung/contact)."""
    if not touch_key:
        return None
    parts = touch_key.split("/")
    if len(parts) < 6:
        return None
    milestone, rung = parts[-3], parts[-2]
    if milestone == REQUEST_MILESTONE:
        kind = "request"
    elif milestone == GOAL_MILESTONE:
        kind = "goal"
    elif rung.startswith(BRANCH_PREFIX):
        kind = "branch"
    elif rung == "personal":
        kind = "personal"
    else:
        kind = "rung"
    return CtaCause(milestone, kind)


def explain(connection: Connection, journey: CompiledJourney, plan_ctas: pd.DataFrame) -> pd.DataFrame:
    """`plan_ctas` with each row's `why` complete (see the module docstring)."""
    if plan_ctas.empty:
        return plan_ctas
    whys: list[dict[str, Any]] = []
    answers = _answers(connection, plan_ctas)
    for row in plan_ctas.itertuples(index=False):
        cause = cause_of(str(row.touch_key))
        decided: dict[str, Any] = row.why if isinstance(row.why, dict) else {}
        rung = str(row.rung)
        why: dict[str, Any] = {
            "journey": journey.id,
            "milestone": None if cause and cause.kind == "request" else row.milestone,
            "rung": rung if cause and cause.kind in ("rung", "personal") else None,
            "branch": rung.removeprefix(BRANCH_PREFIX) if rung.startswith(BRANCH_PREFIX) else None,
            "goal": rung if cause and cause.kind == "goal" else None,
            "kind": cause.kind if cause else None,
            **decided,
        }
        surveys = sorted(
            c.removeprefix("survey.") for c in (decided.get("values") or {}) if c.startswith("survey.")
        )
        for survey in surveys:
            found = answers.get((str(row.account_id), survey))
            if found is not None:
                why["answer"] = found
                break
        whys.append(why)
    return plan_ctas.assign(why=pd.Series(whys, index=plan_ctas.index, dtype=object))


def _answers(connection: Connection, plan_ctas: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """(account, survey) → the latest answer: value, contact (id and name), when, its comment."""
    accounts = sorted(set(plan_ctas["account_id"].astype(str)))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    comments: dict[tuple[str, str], str] = {}
    for start in range(0, len(accounts), 500):
        chunk = accounts[start : start + 500]
        rows = connection.execute(
            select(
                Event.account_id,
                Event.type,
                Event.value,
                Event.occurred_at,
                Event.detail,
                Contact.id,
                Contact.name,
            )
            .outerjoin(Contact, Contact.id == Event.contact_id)
            .where(Event.account_id.in_(chunk), Event.type.in_(("survey", "survey_comment")))
            .order_by(Event.occurred_at, Event.id)
        )
        for r in rows:
            survey, _, answer = (r.value or "").partition(":")
            if r.type == "survey_comment":
                if r.detail:
                    comments[(r.account_id, r.value or "")] = r.detail
                continue
            found[(r.account_id, survey)] = {
                "survey": survey,
                "value": answer,
                "contact_id": r.id,
                "contact_name": r.name,
                "at": r.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "comment": None,
            }
    for (account, survey), answer in found.items():
        answer["comment"] = comments.get((account, f"{survey}:{answer['value']}"))
    return found


def after_record(
    connection: Connection,
    journey: CompiledJourney,
    decision: Decision,
    recorded: Recorded,
    as_of: date,
    shard: Shard = ALL,
) -> tuple[int, int]:
    """History for the new CTAs, escalations joined, and causes that cleared closed: (joined, closed).

    Only the shard's CTAs are looked at: shards of one cycle run at once and each closes its own.
    """
    ctas.record_created(connection, recorded.created_ids, as_of)
    ctas.join_escalations(connection, recorded.joined, as_of=as_of)
    closing = causes_cleared(connection, journey, decision, shard)
    closed = ctas.auto_close(connection, closing, as_of) if closing else 0
    return len(recorded.joined), closed


def causes_cleared(
    connection: Connection, journey: CompiledJourney, decision: Decision, shard: Shard = ALL
) -> dict[int, str]:
    """Open CTAs of `journey` (of the shard's accounts) whose cause went away in this run's view, with why."""
    rows = connection.execute(
        select(
            Cta.id,
            Cta.account_id,
            Cta.touch_key,
            Cta.enrollment_id,
            Enrollment.status,
            Enrollment.exit_reason,
        )
        .outerjoin(Enrollment, Enrollment.id == Cta.enrollment_id)
        .where(
            Cta.journey == journey.id,
            Cta.status.in_(OPEN_CTA_STATUSES),
            in_shard(shard, Cta.account_id),
        )
    ).all()
    if not rows:
        return {}
    goals = {goal.id: goal for goal, _ in journey.goals}
    done_now = {milestone: set(index) for milestone, index in decision.done_now.items()}
    ended = decision.enrollments
    ended_by: dict[int, str] = {}
    if not ended.empty:
        finished = ended[ended["status"] != "active"]
        ended_by = {
            int(e): str(r)
            for e, r in zip(finished["enrollment_id"], finished["exit_reason"], strict=True)
            if pd.notna(e) and r is not None
        }
    closing: dict[int, str] = {}
    for row in rows:
        cause = cause_of(row.touch_key)
        if cause is None:
            continue
        reason = ended_by.get(row.enrollment_id) if row.enrollment_id is not None else None
        if reason is None and row.status not in (None, "active"):
            reason = row.exit_reason
        why = cause_cleared(
            cause,
            milestone_done=row.account_id in done_now.get(cause.milestone, ()),
            ended_by=reason,
            goal_ids=goals,
        )
        if why is not None:
            closing[row.id] = f"Closed by the run: {why}."
    return closing
