"""The pages behind the signed one-click links: unsubscribe, survey answers and comments, preferences.

The paths are exactly those techtouch.adapters.render.links generates. Every route takes its
payload from deps.SignedLink, so a token that does not verify (or is of another kind) is a 400
page before anything is read or stored; a genuine token naming something deleted since is a 404.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from techtouch.entrypoints.web.deps import AppDep, FormDep, PagesDep, SignedLink
from techtouch.entrypoints.web.errors import BadLink, LinkGone, PageError
from techtouch.entrypoints.web.pages import Pages
from techtouch.services import feedback
from techtouch.services.app import App

CHANNEL_NAMES = {"email": "emails", "sms": "text messages"}

router = APIRouter()

UnsubscribeLink = Annotated[dict[str, str], Depends(SignedLink("unsubscribe"))]
PreferencesLink = Annotated[dict[str, str], Depends(SignedLink("preferences"))]


class SurveyLink(NamedTuple):
    account_id: str
    contact_id: str
    survey: str
    answer: str


def survey_link(payload: Annotated[dict[str, str], Depends(SignedLink("survey"))]) -> SurveyLink:
    """A verified survey link with the four fields an answer needs (400 when one is missing)."""
    fields = [payload.get(name, "") for name in ("account", "contact", "survey", "answer")]
    if not all(fields):
        raise BadLink("this link does not name an account, contact, survey and answer")
    return SurveyLink(*fields)


SurveyLinkDep = Annotated[SurveyLink, Depends(survey_link)]

# ------------------------------------------------------------------------------------ unsubscribe

# GET only shows a confirmation: mail scanners follow links, and must not unsubscribe anyone.
# POST is RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the confirmation's button.


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(payload: UnsubscribeLink, pages: PagesDep) -> HTMLResponse:
    channel = payload.get("channel", "email")
    if channel not in feedback.LINK_CHANNELS:
        raise BadLink(f"unknown channel {channel!r}")
    return pages.render("unsubscribe.html", what=CHANNEL_NAMES[channel])


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe_now(payload: UnsubscribeLink, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """The body is not read: the signed token is the consent, whether the POST comes from a mailbox
    provider (RFC 8058) or from the confirmation page's button."""
    channel = payload.get("channel", "email")
    if channel not in feedback.LINK_CHANNELS or not payload.get("contact"):
        raise BadLink("this link does not name a contact and channel")
    feedback.unsubscribe(tt.engine, payload["contact"], channel, source="link")
    return pages.render("unsubscribed.html", what=CHANNEL_NAMES[channel])


# ----------------------------------------------------------------------------------------- survey


@router.get("/s/{token}", response_class=HTMLResponse)
def survey_answer(token: str, link: SurveyLinkDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """Record the answer the link stands for; the thank-you page posts a comment back to this token."""
    try:
        recorded = feedback.record_survey_answer(
            tt.engine, link.account_id, link.contact_id, link.survey, link.answer
        )
    except feedback.BadAnswer as exc:
        raise BadLink(str(exc)) from exc
    if recorded is None:
        raise LinkGone()
    return pages.render("survey.html", token=token, answer=recorded.value.split(":", 1)[1])


@router.post("/s/{token}/comment", response_class=HTMLResponse)
def survey_comment(link: SurveyLinkDep, form: FormDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    comment = form.get("comment") if form is not None else None
    if not isinstance(comment, str):
        raise PageError(400, "Nothing to send", "The comment was missing.")
    try:
        stored = feedback.record_survey_comment(
            tt.engine, link.account_id, link.contact_id, link.survey, link.answer, comment
        )
    except feedback.BadAnswer as exc:
        raise PageError(400, "Your comment was not saved", str(exc)) from exc
    if stored is None:
        raise LinkGone()
    return pages.message(200, "Thank you", "We read every comment.")


# ------------------------------------------------------------------------------------ preferences


def preferences_page(tt: App, pages: Pages, contact_id: str, changed: str | None = None) -> HTMLResponse:
    """The contact's channels as they are now (after a change: what was just stopped, too)."""
    state = feedback.preferences(tt.engine, contact_id)
    if state is None:
        raise LinkGone()
    return pages.render("preferences.html", state=state, changed=changed and CHANNEL_NAMES[changed])


@router.get("/p/{token}", response_class=HTMLResponse)
def preferences_show(payload: PreferencesLink, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    return preferences_page(tt, pages, payload.get("contact", ""))


@router.post("/p/{token}", response_class=HTMLResponse)
def preferences_change(payload: PreferencesLink, form: FormDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    channel = form.get("channel") if form is not None else None
    if not isinstance(channel, str) or channel not in feedback.LINK_CHANNELS:
        raise PageError(400, "Nothing changed", "Choose email or text messages.")
    result = feedback.unsubscribe(tt.engine, payload.get("contact", ""), channel, source="preferences")
    if not result.found:
        raise LinkGone()
    return preferences_page(tt, pages, payload.get("contact", ""), changed=channel)
