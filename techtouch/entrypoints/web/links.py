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

# GET only shows the question with the clicked answer selected: mail scanners open every link of a
# message, and opening all eleven NPS links must not record a 0 (and raise a "Detractor" CTA).
# The page's one button POSTs back to the same URL; that POST records, after verifying the token
# again and checking that the answer is one the survey offers. No CSRF token: the signed token in
# the URL is the credential, and it names the only contact and survey a POST can answer for.

# The question each survey with a fixed scale asks, and how to read its scale (None: no hint).
QUESTIONS: dict[str, tuple[str, str | None]] = {
    "nps": (
        "How likely are you to recommend us to a friend or colleague?",
        "0 means not at all likely, 10 extremely likely.",
    ),
    "csat": ("How satisfied are you with our service?", "1 means very unsatisfied, 5 very satisfied."),
    "renewal": ("How likely are you to renew?", None),
    "advocate": ("Would you be willing to act as a reference for us?", None),
}
OTHER_QUESTION = ("Please confirm your answer", None)


def answer_label(answer: str) -> str:
    return answer.replace("_", " ")


def survey_question(link: SurveyLink) -> feedback.SurveyQuestion:
    try:
        return feedback.survey_question(link.survey, link.answer)
    except feedback.BadAnswer as exc:
        raise BadLink(str(exc)) from exc


@router.get("/s/{token}", response_class=HTMLResponse)
def survey_confirm(link: SurveyLinkDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """The question, the clicked answer selected, one confirm button: reads only, records nothing."""
    question = survey_question(link)
    if not feedback.account_exists(tt.engine, link.account_id):
        raise LinkGone()
    text, hint = QUESTIONS.get(question.survey, OTHER_QUESTION)
    return pages.render(
        "survey.html",
        question=text,
        hint=hint,
        choices=[(answer, answer_label(answer)) for answer in question.choices],
        selected=question.answer,
        comment_max=feedback.COMMENT_MAX,
    )


@router.post("/s/{token}", response_class=HTMLResponse)
def survey_record(link: SurveyLinkDep, form: FormDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """Record the confirmed answer (and the comment, if any); confirming twice records it once."""
    question = survey_question(link)
    posted = form.get("answer") if form is not None else None
    if not isinstance(posted, str):
        raise PageError(400, "Nothing recorded", "Choose an answer, then confirm it.")
    comment = form.get("comment") if form is not None else None
    comment = comment.strip() if isinstance(comment, str) else ""
    if len(comment) > feedback.COMMENT_MAX:
        raise PageError(
            400, "Nothing recorded", f"The comment is longer than {feedback.COMMENT_MAX} characters."
        )
    try:
        answer = feedback.confirmed_answer(question, posted)
    except feedback.BadAnswer as exc:
        raise PageError(400, "Nothing recorded", str(exc)) from exc
    recorded = feedback.record_survey_answer(tt.engine, link.account_id, link.contact_id, link.survey, answer)
    if recorded is None:
        raise LinkGone()
    if comment:
        feedback.record_survey_comment(
            tt.engine, link.account_id, link.contact_id, link.survey, answer, comment
        )
    return pages.render("survey_recorded.html", answer=answer_label(answer), commented=bool(comment))


@router.post("/s/{token}/comment", response_class=HTMLResponse)
def survey_comment(link: SurveyLinkDep, form: FormDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """A comment on the link's answer (the form of the thank-you pages of earlier versions)."""
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


def preferences_page(
    tt: App, pages: Pages, contact_id: str, changed: str | None = None, resumed: bool | None = None
) -> HTMLResponse:
    """The contact's channels as they are now (after a change: what was just stopped or resumed)."""
    state = feedback.preferences(tt.engine, contact_id)
    if state is None:
        raise LinkGone()
    return pages.render(
        "preferences.html", state=state, changed=changed and CHANNEL_NAMES[changed], resumed=resumed
    )


@router.get("/p/{token}", response_class=HTMLResponse)
def preferences_show(payload: PreferencesLink, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    return preferences_page(tt, pages, payload.get("contact", ""))


@router.post("/p/{token}", response_class=HTMLResponse)
def preferences_change(payload: PreferencesLink, form: FormDep, tt: AppDep, pages: PagesDep) -> HTMLResponse:
    """`channel=email|sms` stops a channel; `action=resume` with `channel=email` re-subscribes the
    address (an unsubscribe only: a bounce is not lifted by a click). Both are recorded as events."""
    channel = form.get("channel") if form is not None else None
    action = (form.get("action") if form is not None else None) or "stop"
    if (
        not isinstance(channel, str)
        or channel not in feedback.LINK_CHANNELS
        or action not in ("stop", "resume")
    ):
        raise PageError(400, "Nothing changed", "Choose email or text messages.")
    contact_id = payload.get("contact", "")
    if action == "resume":
        if channel != "email":
            raise PageError(
                400, "Nothing changed", "To get text messages again, reply START to one of our texts."
            )
        resumed = feedback.resubscribe(tt.engine, contact_id, source="preferences")
        if not resumed.found:
            raise LinkGone()
        return preferences_page(tt, pages, contact_id, resumed=resumed.changed)
    result = feedback.unsubscribe(tt.engine, contact_id, channel, source="preferences")
    if not result.found:
        raise LinkGone()
    return preferences_page(tt, pages, contact_id, changed=channel)
