"""`techtouch preview`: one account through one journey, with the reasons and the rendered messages.

An account without an active enrollment gets `enrolled: False` and an `entry` block instead of
a position: would it enter today, and why (decide()'s entry rule: audience, `enter_when`, and
the re-entry rule when an earlier enrollment ended).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, cast

import pandas as pd
from sqlalchemy import Engine

from techtouch.adapters.db.state import (
    load_accounts,
    load_cap_counts,
    load_contacts,
    load_engagement,
    load_enrollments,
    reachability,
)
from techtouch.adapters.render.context import context_builder
from techtouch.adapters.render.renderer import TemplateProblem
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.decide import decide
from techtouch.domain.plan import plan_touches
from techtouch.domain.statuses import ENDED_ENROLLMENT_STATUSES, EnrollmentStatus
from techtouch.services.app import App
from techtouch.services.runner import build_frame
from techtouch.services.users import people


def preview_account(
    app: App,
    journey: CompiledJourney,
    account_id: str,
    as_of: date,
) -> dict[str, Any] | None:
    engine, settings = app.engine, app.settings
    run_at = app.instant(as_of)
    with engine.connect() as connection:
        accounts = load_accounts(connection, as_of, run_at, settings.health)
        if account_id not in accounts.index:
            return None
        contacts = load_contacts(connection)
        caps = load_cap_counts(connection, as_of)
        enrollments = load_enrollments(connection, journey.id)
        engagement = load_engagement(connection, journey.id)
        signers = people(connection)  # a CSM's emails sign with their user's name and title
    accounts = accounts.loc[[account_id]]
    roles: list[str] = list(journey.spec.recipients)
    frame = build_frame(accounts, enrollments, engagement, reachability(contacts, roles))
    decision = decide(frame, journey, as_of)
    plan = plan_touches(
        decision,
        accounts,
        contacts[contacts["account_id"] == account_id],
        roles,
        caps,
        settings.delivery,
        run_at,
        settings.timezone,
        settings.team_queue,
    )

    # Conditions see what decide() shows them: the enrollment-relative names filled in.
    outside = _condition_view(frame, journey, None, as_of)
    conditions: list[tuple[str, str, bool, dict[str, Any]]] = [
        ("enter_when", journey.enter_when.source, *_explain(journey.enter_when, outside, account_id))
    ]
    for goal, condition in journey.goals:
        conditions.append((f"goal {goal.id}", condition.source, *_explain(condition, outside, account_id)))
    enrolled = _plain(frame.loc[account_id].get("e_status")) == EnrollmentStatus.ACTIVE
    current = _plain(frame.loc[account_id].get("e_milestone")) if enrolled else None
    for m in journey.milestones:
        if m.spec.id != current:
            continue
        inside = _condition_view(frame, journey, m.spec.id, as_of)
        for label, step_condition in (
            ("start_when", m.start_when),
            ("skip_when", m.skip_when),
            ("done_when", m.done_when),
        ):
            if step_condition is not None:
                conditions.append(
                    (
                        f"{m.spec.id}.{label}",
                        step_condition.source,
                        *_explain(step_condition, inside, account_id),
                    )
                )

    renderer = app.renderer
    build = context_builder(settings, accounts, app.catalog, app.link_secret, signers)
    messages = []
    names = _contact_names(engine, account_id)
    # The stubs key records by Hashable; a plan's touch columns are all named by strings.
    touches = cast(list[dict[str, Any]], plan.touches.to_dict("records"))
    for touch in touches:
        if touch["channel"] not in ("email", "sms") or touch["status"] != "pending":
            continue
        row = touch | {
            "journey": journey.id,
            "contact_name": names.get(touch["contact_id"], ""),
            "role": None,
        }
        try:
            context = build(row)
            if touch["channel"] == "email":
                rendered = renderer.email(touch["template"], context)
                body = f"From: {context['sender']['name']} <{context['sender']['email']}>\n"
                body += f"Subject: {rendered.subject}\n\n{rendered.text}"
            else:
                body = renderer.sms(touch["template"], context)
        except TemplateProblem as exc:
            body = f"cannot render: {exc}"
        messages.append(
            {"key": touch["key"], "channel": touch["channel"], "send_at": touch["send_at"], "body": body}
        )

    position = frame.loc[account_id]
    return {
        "journey": journey.id,
        "account_id": account_id,
        "as_of": as_of,
        "enrolled": enrolled,
        "position": {
            k.removeprefix("e_"): _plain(position.get(k))
            for k in ("e_status", "e_milestone", "e_phase", "e_step", "e_next_due")
        },
        "entry": None
        if enrolled
        else _entry(journey, outside, account_id, as_of, decision.counts["entered"]),
        "paused": bool(position["paused"]),
        "conditions": conditions,
        "actions": decision.actions.to_dict("records"),
        "capped": account_id in plan.deferred,
        "ctas": plan.ctas.to_dict("records"),
        "messages": messages,
    }


def _entry(
    journey: CompiledJourney, view: pd.DataFrame, account_id: str, as_of: date, entered: int
) -> dict[str, Any]:
    """Why an account without an active enrollment would enter today or not (decide()'s rule 1);
    `view` is the state frame as conditions outside a milestone see it (`_condition_view`)."""
    spec = journey.spec
    row = view.loc[account_id]
    holds, values = _explain(journey.enter_when, view, account_id)
    status = _plain(row.get("e_status"))
    exited = _day(row.get("e_exited_as_of"))
    after = spec.reentry.after_days
    previous = None
    reenter_from = None
    if status is not None:
        previous = {
            "status": status,
            "cycle": _plain(row.get("e_cycle")),
            "exit_reason": _plain(row.get("e_exit_reason")),
            "exited_as_of": exited,
        }
        if after is not None and exited is not None:
            reenter_from = exited + timedelta(days=after)
    may_enter = status is None or (
        status in ENDED_ENROLLMENT_STATUSES and reenter_from is not None and reenter_from <= as_of
    )
    segment = _plain(row.get("segment"))
    return {
        "would_enter": entered > 0,
        "condition": _with_params(journey.enter_when.source, spec.params),
        "condition_holds": holds,
        "values": values,
        "segment": segment,
        "audience": list(spec.audience.segments),
        "in_audience": segment in spec.audience.segments,
        "previous": previous,
        "reentry_after_days": after,
        "reenter_from": reenter_from,
        "may_enter": may_enter,
    }


def _with_params(source: str, params: dict[str, Any]) -> str:
    """`params.lead_days` → its value, so that the condition reads as decide() evaluates it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            return match.group(0)
        return repr(params[name]) if isinstance(params[name], str) else str(params[name])

    return re.sub(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)", value, source)


def _plain(value: Any) -> Any:
    """A frame cell as a Python value; NaN / NaT → None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return value


def _day(value: Any) -> date | None:
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _condition_view(
    frame: pd.DataFrame, journey: CompiledJourney, milestone: str | None, as_of: date
) -> pd.DataFrame:
    """The one-row frame with the names decide() adds before evaluating a condition (`_Run.eval`):
    days in journey and milestone, opened/clicked of `milestone` (False outside one), entry.*."""
    row = frame.iloc[0]

    def days_since(column: str) -> float:
        day = _day(row.get(column))
        return float("nan") if day is None else float((as_of - day).days)

    entry = row.get("e_entry")
    captured = entry if isinstance(entry, dict) else {}
    return frame.assign(
        days_in_journey=days_since("e_entered_as_of"),
        days_in_milestone=days_since("e_milestone_since"),
        opened=frame.get(f"opened@{milestone}", False) if milestone else False,
        clicked=frame.get(f"clicked@{milestone}", False) if milestone else False,
        **{f"entry.{name}": captured.get(name, float("nan")) for name in journey.entry_columns},
    )


def _explain(condition: Any, frame: pd.DataFrame, account_id: str) -> tuple[bool, dict[str, Any]]:
    value = bool(condition.evaluate(frame.loc[[account_id]]).iloc[0])
    return value, condition.explain(frame, account_id)


def _contact_names(engine: Engine, account_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from techtouch.adapters.db.models import Contact

    with engine.connect() as connection:
        return dict(
            connection.execute(select(Contact.id, Contact.name).where(Contact.account_id == account_id))
            .tuples()
            .all()
        )
