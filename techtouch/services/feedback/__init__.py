"""Provider and link feedback applied to the database: what SendGrid, Twilio and our links tell us.

No web framework here: techtouch.entrypoints.web verifies signatures and hands over parsed
payloads, and tests or a backfill script can call the same functions, all re-exported here
(`from techtouch.services import feedback; feedback.apply_sendgrid_events(...)`). The modules:

* `recording`: the database plumbing every call shares (transaction, batched inserts, retry);
* `sendgrid_events`: the Event Webhook; `twilio_events`: status callbacks and inbound SMS;
* `consent`: unsubscribe links, the preferences page, START lifting a STOP;
* `surveys`: survey answers (recorded by the confirming POST, never by opening a link) and
  comments; `errors`: what is refused, and why.

How it works, and why:

* One transaction per call (per webhook POST), taken with SQLite's write lock at BEGIN
  (techtouch.adapters.db.engine's `immediate`) so that concurrent POSTs queue instead of failing
  half-way.
* Batched: a SendGrid POST of 1,000 events costs one query for the touches it names, one
  INSERT … ON CONFLICT DO NOTHING RETURNING for the events, one executemany UPDATE for touches
  and one INSERT for suppressions, whatever the mix. PostgreSQL gets arrays (`= ANY`, `unnest`)
  instead of thousands of placeholders.
* Rows are written in key order, so two batches never wait for each other in a cycle; a deadlock
  with another writer (PostgreSQL aborts one side) re-runs the call, which is idempotent, under
  the shared retry policy (techtouch.adapters.retry: jittered backoff). So does a lock held by
  another process for longer than we wait (SQLite's "database is locked" after the busy timeout,
  PostgreSQL's `lock_timeout`); when the attempts run out the call raises DatabaseBusy, having
  recorded nothing, and the web service answers 503 with Retry-After: an opt-out is never lost
  behind a 200.
* Idempotent: every provider event gets a key derived from the provider's own id (`sg_event_id`,
  Twilio's MessageSid + status), so a replay inserts nothing. Side effects (suppressions, lifting
  them) follow only from events inserted *now* (RETURNING), so replaying an old STOP after a newer
  START does not re-suppress anyone.
* Evidence for crash reconciliation: any provider event about a touch still `sending` (or
  `pending`) proves the provider has the message; the touch becomes `sent` with the provider id.
* Suppressions follow techtouch.domain.suppression, as the importer does: email suppressions are
  permanent (first reason kept) except an unsubscribe, which a re-subscription from the
  preferences page lifts; SMS suppressions have reason `sms_stop`, which a START strictly later
  lifts (a STOP and a START at the same instant keep the opt-out).
* Email opt-outs follow the person: they are kept by address and reach every contact with the
  address, including contacts imported later (techtouch.services.importing.suppressions).
* Nothing personal is logged: counts only. Event values are touch keys or survey answers.
"""

from __future__ import annotations

from techtouch.services.feedback.consent import (
    LINK_CHANNELS,
    Preferences,
    Resubscribed,
    Unsubscribed,
    preferences,
    resubscribe,
    unsubscribe,
)
from techtouch.services.feedback.errors import BadAnswer, BadPayload
from techtouch.services.feedback.recording import (
    ATTEMPTS,
    EVIDENCE_STATUSES,
    IN_BATCH,
    RETRYABLE,
    Applied,
    DatabaseBusy,
)
from techtouch.services.feedback.sendgrid_events import (
    SENDGRID_EFFECTS,
    SendGridEvent,
    apply_sendgrid_events,
    parse_sendgrid_events,
)
from techtouch.services.feedback.surveys import (
    COMMENT_MAX,
    SURVEY_CHOICES,
    SurveyAnswer,
    SurveyQuestion,
    account_exists,
    confirmed_answer,
    record_survey_answer,
    record_survey_comment,
    survey_question,
    survey_value,
)
from techtouch.services.feedback.twilio_events import (
    HELP_WORDS,
    START_WORDS,
    STOP_WORDS,
    TWILIO_EVIDENCE,
    TWILIO_FAILED,
    TWILIO_KNOWN,
    TWILIO_OPTED_OUT,
    Inbound,
    SmsAction,
    apply_twilio_inbound,
    apply_twilio_status,
    classify_sms,
)

__all__ = [
    "ATTEMPTS",
    "COMMENT_MAX",
    "EVIDENCE_STATUSES",
    "HELP_WORDS",
    "IN_BATCH",
    "LINK_CHANNELS",
    "RETRYABLE",
    "SENDGRID_EFFECTS",
    "START_WORDS",
    "STOP_WORDS",
    "SURVEY_CHOICES",
    "TWILIO_EVIDENCE",
    "TWILIO_FAILED",
    "TWILIO_KNOWN",
    "TWILIO_OPTED_OUT",
    "Applied",
    "BadAnswer",
    "BadPayload",
    "DatabaseBusy",
    "Inbound",
    "Preferences",
    "Resubscribed",
    "SendGridEvent",
    "SmsAction",
    "SurveyAnswer",
    "SurveyQuestion",
    "Unsubscribed",
    "account_exists",
    "apply_sendgrid_events",
    "apply_twilio_inbound",
    "apply_twilio_status",
    "classify_sms",
    "confirmed_answer",
    "parse_sendgrid_events",
    "preferences",
    "record_survey_answer",
    "record_survey_comment",
    "resubscribe",
    "survey_question",
    "survey_value",
    "unsubscribe",
]
