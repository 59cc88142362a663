"""What a person does to CTAs from the workspace: one POST per action, and the bulk bar.

* POST /inbox/ctas/{id}/start              open or snoozed → in progress
* POST /inbox/ctas/{id}/done               `outcome` (one of the CTA's), optional `note`
* POST /inbox/ctas/{id}/snooze             `until` (YYYY-MM-DD, a later day), `reason`
* POST /inbox/ctas/{id}/assign             `to` (an email of an enabled CSM or manager)
* POST /inbox/ctas/{id}/cancel             `note` (why)
* POST /inbox/ctas/{id}/note               `note`
* POST /inbox/bulk                         `ids` (checkboxes), `action` = done|snooze|assign|start,
                                           plus that action's fields; each CTA on its own

Plain forms, so everything works without JavaScript: each answers 303 back to `next` (a local path
only: never another site) or to the CTA's page, with a message saying what happened. Every one is
CSRF-checked and signed-in; who may do what is decided by techtouch.services.ctas (the access rules,
then the lifecycle rules), not here: an unknown id is a 404 page, someone else's CTA a 403 page (and
a log line with the route and the user id), a change the lifecycle refuses goes back to the page
with the reason shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from techtouch.domain.access import Actor, Forbidden
from techtouch.domain.cta_rules import CtaChange, CtaRuleError
from techtouch.entrypoints.web.auth import CsrfChecked, SignedIn
from techtouch.entrypoints.web.deps import state_of
from techtouch.entrypoints.web.workspace import forbidden, not_found, redirect, safe_next, today
from techtouch.services import ctas
from techtouch.services.ctas import CtaRecord, UnknownCta

router = APIRouter(dependencies=[CsrfChecked])

BULK_ACTIONS: dict[str, CtaChange] = {
    "done": CtaChange.DONE,
    "snooze": CtaChange.SNOOZE,
    "assign": CtaChange.ASSIGN,
    "start": CtaChange.START,
}
BULK_MAX = 500  # one page of the inbox at most; a form of more is refused, not half done
PAST: dict[CtaChange, str] = {
    CtaChange.START: "started",
    CtaChange.DONE: "done",
    CtaChange.SNOOZE: "snoozed",
    CtaChange.ASSIGN: "reassigned",
    CtaChange.CANCEL: "cancelled",
    CtaChange.NOTE: "noted",
}

Field = Annotated[str, Form()]


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CtaRuleError(f"pick a date as YYYY-MM-DD (got {value.strip()[:20]!r})") from None


def _act(
    request: Request,
    actor: Actor,
    cta_id: int,
    next_path: str,
    done: str,
    change: Callable[[], CtaRecord],
) -> Response:
    """Run one change and answer: back to `next` with `done` said, or the refusal as a page or message."""
    back = safe_next(next_path) or f"/inbox/ctas/{cta_id}"
    try:
        change()
    except UnknownCta:
        return not_found(request, actor, "CTA")
    except Forbidden:
        return forbidden(request, actor)
    except CtaRuleError as exc:
        return redirect(request, back, f"CTA #{cta_id} was not changed: {exc}", error=True)
    return redirect(request, back, done)


@router.post("/inbox/ctas/{cta_id:int}/start", response_model=None)
def start(request: Request, actor: SignedIn, cta_id: int, next: Field = "") -> Response:
    tt, day = state_of(request).tt, today(request)
    return _act(
        request,
        actor,
        cta_id,
        next,
        f"CTA #{cta_id} is in progress.",
        lambda: ctas.start(tt, cta_id, actor, today=day),
    )


@router.post("/inbox/ctas/{cta_id:int}/done", response_model=None)
def done(
    request: Request, actor: SignedIn, cta_id: int, outcome: Field = "", note: Field = "", next: Field = ""
) -> Response:
    tt, day = state_of(request).tt, today(request)

    def change() -> CtaRecord:
        if not outcome.strip():
            raise CtaRuleError("pick an outcome")
        return ctas.complete(tt, cta_id, actor, outcome.strip(), note or None, today=day)

    return _act(request, actor, cta_id, next, f"CTA #{cta_id} is done ({outcome.replace('_', ' ')}).", change)


@router.post("/inbox/ctas/{cta_id:int}/snooze", response_model=None)
def snooze(
    request: Request, actor: SignedIn, cta_id: int, until: Field = "", reason: Field = "", next: Field = ""
) -> Response:
    tt, day = state_of(request).tt, today(request)

    def change() -> CtaRecord:
        return ctas.snooze(tt, cta_id, actor, parse_day(until), reason, today=day)

    return _act(request, actor, cta_id, next, f"CTA #{cta_id} is snoozed until {until.strip()}.", change)


@router.post("/inbox/ctas/{cta_id:int}/assign", response_model=None)
def assign(request: Request, actor: SignedIn, cta_id: int, to: Field = "", next: Field = "") -> Response:
    tt, day = state_of(request).tt, today(request)

    def change() -> CtaRecord:
        if not to.strip():
            raise CtaRuleError("pick someone to assign it to")
        return ctas.assign(tt, cta_id, actor, to, today=day)

    who = "you" if to.strip().lower() == actor.email else to.strip()
    return _act(request, actor, cta_id, next, f"CTA #{cta_id} is assigned to {who}.", change)


@router.post("/inbox/ctas/{cta_id:int}/cancel", response_model=None)
def cancel(request: Request, actor: SignedIn, cta_id: int, note: Field = "", next: Field = "") -> Response:
    tt, day = state_of(request).tt, today(request)
    return _act(
        request,
        actor,
        cta_id,
        next,
        f"CTA #{cta_id} is cancelled.",
        lambda: ctas.cancel(tt, cta_id, actor, note, today=day),
    )


@router.post("/inbox/ctas/{cta_id:int}/note", response_model=None)
def add_note(request: Request, actor: SignedIn, cta_id: int, note: Field = "", next: Field = "") -> Response:
    tt, day = state_of(request).tt, today(request)
    return _act(
        request,
        actor,
        cta_id,
        next,
        f"Note added to CTA #{cta_id}.",
        lambda: ctas.note(tt, cta_id, actor, note, today=day),
    )


@router.post("/inbox/bulk", response_model=None)
def bulk(
    request: Request,
    actor: SignedIn,
    ids: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults per request)
    action: Field = "",
    outcome: Field = "",
    until: Field = "",
    reason: Field = "",
    to: Field = "",
    next: Field = "",
) -> Response:
    """One action on the ticked CTAs, each in its own transaction: the ones refused are listed with why."""
    back = safe_next(next) or "/inbox"
    change = BULK_ACTIONS.get(action)
    if change is None:
        return redirect(request, back, "Pick an action for the selected CTAs.", error=True)
    try:
        cta_ids = [int(i) for i in ids]
    except ValueError:
        return redirect(request, back, "The selection is not a list of CTA ids.", error=True)
    if not cta_ids:
        return redirect(request, back, "Select at least one CTA first.", error=True)
    if len(cta_ids) > BULK_MAX:
        return redirect(request, back, f"Select at most {BULK_MAX} CTAs at a time.", error=True)
    day: date | None = None
    if change is CtaChange.SNOOZE:
        try:
            day = parse_day(until)
        except CtaRuleError as exc:
            return redirect(request, back, f"Nothing was snoozed: {exc}", error=True)
    if change is CtaChange.DONE and not outcome.strip():
        return redirect(request, back, "Nothing was closed: pick an outcome.", error=True)
    if change is CtaChange.ASSIGN and not to.strip():
        return redirect(request, back, "Nothing was reassigned: pick someone.", error=True)
    result = ctas.bulk(
        state_of(request).tt,
        cta_ids,
        actor,
        change,
        today=today(request),
        outcome=outcome.strip() or None,
        until=day,
        reason=reason,
        to_email=to,
    )
    n = len(result.changed)
    text = f"{n} CTA{'' if n == 1 else 's'} {PAST[change]}."
    if result.refused:
        text += f" {len(result.refused)} not changed:"
    items = [f"#{cta_id}: {why}" for cta_id, why in result.refused.items()]
    return redirect(request, back, text, error=bool(result.refused) and not result.changed, items=items)
