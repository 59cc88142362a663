"""`techtouch preview`: one account through one journey, with the reasons and the rendered messages."""

from __future__ import annotations

from datetime import date
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
from techtouch.services.app import App
from techtouch.services.runner import build_frame


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

    conditions: list[tuple[str, str, bool, dict[str, Any]]] = [
        ("enter_when", journey.enter_when.source, *_explain(journey.enter_when, frame, account_id))
    ]
    for goal, condition in journey.goals:
        conditions.append((f"goal {goal.id}", condition.source, *_explain(condition, frame, account_id)))
    current = frame.loc[account_id].get("e_milestone")
    for m in journey.milestones:
        if m.spec.id != current:
            continue
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
                        *_explain(step_condition, frame, account_id),
                    )
                )

    renderer = app.renderer
    build = context_builder(settings, accounts, app.catalog, app.link_secret)
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
        "position": {
            k.removeprefix("e_"): position.get(k)
            for k in ("e_status", "e_milestone", "e_phase", "e_step", "e_next_due")
        },
        "paused": bool(position["paused"]),
        "conditions": conditions,
        "actions": decision.actions.to_dict("records"),
        "capped": account_id in plan.deferred,
        "ctas": plan.ctas.to_dict("records"),
        "messages": messages,
    }


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
