"""Provider feedback in: SendGrid's signed Event Webhook, Twilio's status callbacks and inbound SMS.

Each route receives what deps verified (the exact signed bytes, or the signed form) and hands it to
techtouch.services.feedback. A payload the service cannot read raises feedback.BadPayload, which
create_app() answers with 400 and the reason. Providers only read the status code, so the bodies
are small JSON counts (or TwiML for inbound SMS).

A SendGrid body is bounded before it is parsed: its size by the BodyLimit middleware, its nesting
here (JSON nested deeper than MAX_JSON_DEPTH is 400 before `json` recurses into it: Python's
parser would raise RecursionError, a 500), and its number of events (`webhook_max_events`, 413)
before any of them is applied.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from twilio.twiml.messaging_response import MessagingResponse

from techtouch.entrypoints.web.deps import AppDep, StateDep, TwilioForm, VerifiedSendGridBody
from techtouch.entrypoints.web.errors import Problem
from techtouch.services import feedback
from techtouch.settings import Settings

SENDGRID_PATH = "/webhooks/sendgrid"
# techtouch.bootstrap gives Twilio `<public_url>/webhooks/twilio/status` as the status callback.
TWILIO_STATUS_PATH = "/webhooks/twilio/status"
TWILIO_INBOUND_PATH = "/webhooks/twilio/inbound"
TWIML_TYPE = "application/xml"
# SendGrid's events are objects in an array, with arrays (`category`) and objects (unique args)
# inside: 4 levels. 32 leaves room for any custom args and stays far from Python's recursion limit.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")

router = APIRouter()


def sms_help_text(settings: Settings) -> str:
    """The HELP answer: `sms_help_text` if the settings have one, else who we are and how to stop."""
    configured = settings.sms_help_text
    if configured:
        return str(configured)
    sender = settings.senders.get("success") or next(iter(settings.senders.values()), None)
    name = sender.name if sender else "Customer Success"
    reach = f" Questions: {sender.email}." if sender else ""
    return (
        f"{name}: account updates and tips by text.{reach} "
        "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply."
    )


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """BadPayload when arrays and objects nest deeper than `limit`, found without parsing.

    Strings are blanked out first (a bracket inside one is text), then brackets are counted; the
    scan stops at the first level too deep. Where the body is not JSON the parser says so next,
    and it cannot get deeper than this scan did before it fails.
    """
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise feedback.BadPayload(f"JSON nested deeper than {limit} levels")
        else:
            depth -= 1


@router.post(SENDGRID_PATH)
def sendgrid_events(body: VerifiedSendGridBody, tt: AppDep) -> JSONResponse:
    """A batch of email events; 403 unsigned, tampered or stale, 413 too large or too many events,
    400 malformed or nested too deep, 503 when the database stays locked (SendGrid retries)."""
    check_json_depth(body)
    try:
        events = feedback.parse_sendgrid_events(body)
    except RecursionError:  # cannot happen after check_json_depth; a 400 all the same if it does
        raise feedback.BadPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    most = tt.settings.webhook_max_events
    if len(events) > most:
        raise Problem(413, f"{len(events)} events in one request, more than the {most} accepted")
    return JSONResponse(feedback.apply_sendgrid_events(tt.engine, events).as_dict())


@router.post(TWILIO_STATUS_PATH)
def twilio_status(
    params: Annotated[dict[str, str], Depends(TwilioForm(TWILIO_STATUS_PATH))], request: Request, tt: AppDep
) -> JSONResponse:
    """A message's delivery status; the touch it belongs to is in the (signed) query: `touch_key`."""
    result = feedback.apply_twilio_status(tt.engine, params, request.query_params.get("touch_key"))
    return JSONResponse(result.as_dict())


@router.post(TWILIO_INBOUND_PATH)
def twilio_inbound(
    params: Annotated[dict[str, str], Depends(TwilioForm(TWILIO_INBOUND_PATH))], web: StateDep
) -> Response:
    """An SMS to our number: STOP/START/HELP keywords are acted on, answered with TwiML."""
    inbound = feedback.apply_twilio_inbound(web.tt.engine, params)
    answer = MessagingResponse()
    if inbound.action == "help":
        answer.message(web.sms_help)
    # STOP/START confirmations are sent by Twilio's own opt-out handling: answering too would
    # send the person a second message.
    return Response(str(answer), media_type=TWIML_TYPE)
