"""`GET /inbox/ctas/{id}`: one CTA with everything a CSM needs to act on it.

What it shows (techtouch.services.account_view.cta_page): the CTA (priority, status, due date with
overdue highlighted, assignee, outcome, note, snooze), why it fired (journey, milestone, rung or
branch, the condition and the values of the names it used, the triggering answer, its contact and
comment), its history, the account (ARR, segment, renewal date, CSM, health with its 90-day chart,
usage chart, latest answers and comments), the contacts with consent and suppressions, and the
account's timeline. Then the actions, as plain forms posting to cta_actions.py (start, done with an
outcome, snooze until a date with a reason, reassign, cancel, note), each with the CSRF field and
`next` = this page, so the page comes back with what happened. Ops, and anyone on a closed CTA, see
it read-only: no forms.

Refusals are pages: 404 for no such CTA, 403 for someone else's (logged with the route and the
user's id only). `/charts.css` is the charts' stylesheet (techtouch.adapters.charts.stylesheet: the
CSP refuses the inline style pygal would put in each SVG); it holds no data, so it needs no session.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from techtouch.adapters.charts import stylesheet
from techtouch.domain.access import Forbidden, Role
from techtouch.entrypoints.web.auth import SignedIn
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.inbox import colleagues
from techtouch.entrypoints.web.workspace import forbidden, not_found, render, today
from techtouch.services import account_view
from techtouch.services.account_view import UnknownAccount, UnknownCta

router = APIRouter()

CHARTS_CSS_PATH = "/charts.css"
CHARTS_CSS_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}


@router.get("/inbox/ctas/{cta_id:int}", response_model=None)
def cta_page(request: Request, actor: SignedIn, cta_id: int) -> Response:
    tt = state_of(request).tt
    day = today(request)
    try:
        page = account_view.cta_page(tt, cta_id, actor, today=day)
    except (UnknownCta, UnknownAccount):
        return not_found(request, actor, "CTA")
    except Forbidden:
        return forbidden(request, actor)
    people: list[dict[str, str]] = []
    if page.can_change:
        with tt.engine.connect() as connection:
            people = [p for p in colleagues(connection, actor) if p["email"] != page.cta.assignee]
    return render(
        request,
        actor,
        "cta.html",
        title=page.cta.title,
        page=page,
        cta=page.cta,
        context=page.account,
        people=people,
        read_only_reason=None if page.can_change else _read_only_reason(actor.role, page.cta.is_open()),
        tomorrow=day + timedelta(days=1),
        zone=tt.settings.zone,
        charts_css=CHARTS_CSS_PATH,
    )


def _read_only_reason(role: Role, is_open: bool) -> str:
    if role is Role.OPS:
        return "Read-only: ops see every CTA and change none."
    if not is_open:
        return "This CTA is closed: it can no longer be changed."
    return "Read-only: this CTA is not yours to change."


@router.get(CHARTS_CSS_PATH, response_model=None)
def charts_css() -> Response:
    return Response(stylesheet(), media_type="text/css", headers=CHARTS_CSS_HEADERS)
