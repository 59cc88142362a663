"""`GET /queue` (managers): the team queue and the CTAs of the manager's team, to hand out.

The queue holds the CTAs of accounts without a CSM (assignee `queue:<name>`); below it, the open
and in-progress CTAs of the manager's team members, so a manager sees who is overloaded. Each row
has "Assign to me" and "Assign" to a CSM of the team: plain forms posting to
/inbox/ctas/{id}/assign (cta_actions.py), which checks again that the CTA and the person are the
manager's to hand out. Anyone but a manager gets the 403 page (logged without PII).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from techtouch.adapters.db.models import Cta, User
from techtouch.domain.access import can_see_queue
from techtouch.entrypoints.web.auth import SignedIn
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.inbox import ACTIVE, Row, colleagues, cta_rows, cta_select, names_of
from techtouch.entrypoints.web.workspace import forbidden, render, today

router = APIRouter()

LIMIT = 200  # per section; the rest are reached from the inbox filters and the CLI


@router.get("/queue", response_model=None)
def queue(request: Request, actor: SignedIn) -> Response:
    if not can_see_queue(actor):
        return forbidden(request, actor)
    day = today(request)
    with state_of(request).tt.engine.connect() as connection:
        queued = cta_rows(
            connection,
            cta_select(Cta.assignee.like("queue:%"), Cta.status.in_(ACTIVE)).limit(LIMIT + 1),
            day,
        )
        team: list[Row] = []
        if actor.team is not None:
            members = select(User.email).where(User.team == actor.team, User.email != actor.email)
            team = cta_rows(
                connection,
                cta_select(Cta.assignee.in_(members), Cta.status.in_(ACTIVE)).limit(LIMIT + 1),
                day,
            )
        people = colleagues(connection, actor)
        names = names_of(connection, {r.assignee for r in (*queued, *team)})
    return render(
        request,
        actor,
        "queue.html",
        title="Queue",
        queued=queued[:LIMIT],
        queued_more=len(queued) > LIMIT,
        team=team[:LIMIT],
        team_more=len(team) > LIMIT,
        people=people,
        names=names,
        limit=LIMIT,
    )
