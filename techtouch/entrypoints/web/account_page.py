"""`GET /accounts/{id}`: one account's context, journeys, CTAs and timeline.

The same context as on a CTA page (techtouch.services.account_view.account_page: ARR, segment,
renewal date, CSM, health with its 90-day chart, usage chart, latest answers and comments,
contacts with consent and suppressions, the timeline of touches, provider events, answers,
comments and CTA changes), plus where the account stands in each journey and its CTAs (open first;
a link on each the signed-in person may open). Read-only: the actions are on the CTA pages.

Who may open it is domain.access.can_view_account: a CSM their accounts (`csm_email`) and those
where they hold a CTA; a manager their team's, the accounts without a CSM and those where a CTA of
theirs or the team's is; ops every account. Anything else is the 403 page (logged without PII);
an unknown id is the 404 page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from techtouch.domain.access import Forbidden
from techtouch.entrypoints.web.auth import SignedIn
from techtouch.entrypoints.web.cta_page import CHARTS_CSS_PATH
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.workspace import forbidden, not_found, render, today
from techtouch.services import account_view
from techtouch.services.account_view import UnknownAccount

router = APIRouter()

ACCOUNT_ID_MAX = 64  # accounts.id is a String(64): a longer id cannot exist


@router.get("/accounts/{account_id}", response_model=None)
def account_page(request: Request, actor: SignedIn, account_id: str) -> Response:
    if len(account_id) > ACCOUNT_ID_MAX:
        return not_found(request, actor, "account")
    tt = state_of(request).tt
    try:
        context = account_view.account_page(tt, account_id, actor, today=today(request))
    except UnknownAccount:
        return not_found(request, actor, "account")
    except Forbidden:
        return forbidden(request, actor)
    return render(
        request,
        actor,
        "account.html",
        title=context.facts.name,
        context=context,
        zone=tt.settings.zone,
        charts_css=CHARTS_CSS_PATH,
    )
