"""The schema: account state (accounts, contacts, usage, events, health) and journey state
(enrollments, touches, CTAs, suppressions). Alembic migrations mirror this module exactly."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from techtouch.domain.shards import shard_key
from techtouch.domain.statuses import (
    OPEN_CTA_STATUSES,
    CtaAction,
    CtaStatus,
    DigestStatus,
    EnrollmentPhase,
    EnrollmentStatus,
    TouchStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite so that autoincrement works.
BigId = BigInteger().with_variant(Integer(), "sqlite")

SEGMENTS = ("tech_touch", "high_touch")
ROLES = ("admin", "champion", "executive", "user")
EVENT_TYPES = (
    "milestone",
    "survey",
    "renewal_signed",
    "unsubscribed",
    "sms_stop",
    "sms_start",
    "email_bounced",
    "email_opened",
    "email_clicked",
    # Provider and link feedback (techtouch.services.feedback): value = the touch key, or `<survey>:<answer>`.
    "email_delivered",
    "sms_delivered",
    "survey_comment",
    # A person lifting their email opt-out from the preferences page (value: where from).
    "email_resubscribed",
)
CHANNELS = ("email", "sms", "cta")
# The CHECK constraint's values, in its order (the migrations spell them out; keep them identical).
CTA_STATUSES: tuple[CtaStatus, ...] = tuple(CtaStatus)
CTA_ACTIONS: tuple[CtaAction, ...] = tuple(CtaAction)
USER_ROLES = ("csm", "manager", "ops")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every backend and hands back aware UTC datetimes."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: techtouch stores aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sql_in(column: str, values: Iterable[str]) -> str:
    """`column IN ('a', 'b')` for constraints and SQL text; `str()` so that a StrEnum member renders
    as its value, not its repr (CHECK constraints must stay byte-identical to the migrations)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _account_shard_key(context: Any) -> int:
    """The row's shard key, from its id: every INSERT of an account gets it without asking."""
    return shard_key(context.get_current_parameters()["id"])


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(sql_in("segment", SEGMENTS), name="segment"),
        CheckConstraint("arr >= 0", name="arr_not_negative"),
        Index("ix_accounts_csm_email", "csm_email"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(16))
    arr: Mapped[float] = mapped_column(Float)
    start_date: Mapped[date] = mapped_column(Date)
    renewal_date: Mapped[date | None] = mapped_column(Date)
    csm_email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str | None] = mapped_column(String(64))
    paused_until: Mapped[date | None] = mapped_column(Date)
    is_advocate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # CRC-32 of the id (domain.shards), so that a sharded run selects its accounts in SQL.
    shard_key: Mapped[int] = mapped_column(BigInteger, default=_account_shard_key)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(sql_in("role", ROLES), name="role"),
        Index("ix_contacts_phone", "phone"),  # inbound SMS (STOP/START) finds the contact by number
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(16))
    email_consent: Mapped[bool] = mapped_column(Boolean)
    sms_consent: Mapped[bool] = mapped_column(Boolean)
    timezone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UsageDaily(Base):
    """One row per account and day; the primary key doubles as the scan index by account."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        CheckConstraint("active_users >= 0 AND logins >= 0 AND key_actions >= 0", name="not_negative"),
        Index("ix_usage_daily_date", "date"),
        # SQLite: clustered by (account_id, date), so a run's 60-day aggregate is one sequential scan.
        {"sqlite_with_rowid": False},
    )

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    active_users: Mapped[int] = mapped_column(Integer)
    logins: Mapped[int] = mapped_column(Integer)
    key_actions: Mapped[int] = mapped_column(Integer)


class Event(Base):
    """Something a customer did or said. `key` hashes the row so re-imports change nothing."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(sql_in("type", EVENT_TYPES), name="type"),
        Index("ix_events_account_id_type", "account_id", "type", "occurred_at"),
        Index("ix_events_contact_id", "contact_id"),
        Index("ix_events_type_value", "type", "value"),  # engagement events name a touch key
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="import", server_default="import")
    # Free text that goes with the event (a survey comment): kept out of `value`, which is matched on.
    detail: Mapped[str | None] = mapped_column(Text)


class HealthSnapshot(Base):
    """Health of one account on one day, kept so that trends exist."""

    __tablename__ = "health_snapshots"
    __table_args__ = (Index("ix_health_snapshots_as_of", "as_of"),)

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    color: Mapped[str] = mapped_column(String(8))
    usage_score: Mapped[float] = mapped_column(Float)
    engagement_score: Mapped[float] = mapped_column(Float)
    sentiment_score: Mapped[float] = mapped_column(Float)
    renewal_score: Mapped[float] = mapped_column(Float)
    usage_change_30d: Mapped[float | None] = mapped_column(Float)
    logins_14d: Mapped[int] = mapped_column(Integer)
    active_users_7d: Mapped[float] = mapped_column(Float)
    key_actions_30d: Mapped[int] = mapped_column(Integer)
    # The rest of the day's usage window sums (adapters.db.signals): the next days' runs add and
    # take out the days that entered and left each window instead of summing 60 days again. NULL:
    # not a base (written before 0009, or the importer changed usage inside its windows since).
    key_actions_prev_30d: Mapped[int | None] = mapped_column(Integer)
    key_actions_7d: Mapped[int | None] = mapped_column(Integer)
    active_users_sum_7d: Mapped[int | None] = mapped_column(Integer)
    active_days_30d: Mapped[int | None] = mapped_column(Integer)


class Suppression(Base):
    """A channel a contact must not be reached on (unsubscribed, bounced, STOP)."""

    __tablename__ = "suppressions"

    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class EmailSuppression(Base):
    """An email address that must not be emailed, whichever contact holds it (opt-outs follow the
    person): an unsubscribe, bounce or spam report suppresses the address, and every contact with
    it, including contacts imported later, gets a `suppressions` row. `address` is lower-cased."""

    __tablename__ = "email_suppressions"

    address: Mapped[str] = mapped_column(String(254), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class Enrollment(Base):
    """One account in one journey and its position; `cycle` counts re-entries.

    Position: `milestone` (current), `phase` (pending: waiting to start; active: ladder running),
    `step` (rungs of the current ladder done) and `next_due` (the day the next step may happen).
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("account_id", "journey", "cycle"),
        Index("ix_enrollments_journey_status", "journey", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    journey: Mapped[str] = mapped_column(String(64))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=EnrollmentStatus.ACTIVE)
    entered_as_of: Mapped[date] = mapped_column(Date)
    exited_as_of: Mapped[date | None] = mapped_column(Date)
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    milestone: Mapped[str | None] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16), default=EnrollmentPhase.PENDING)
    step: Mapped[int] = mapped_column(Integer, default=0)
    next_due: Mapped[date | None] = mapped_column(Date)
    milestone_since: Mapped[date | None] = mapped_column(Date)
    last_touch_as_of: Mapped[date | None] = mapped_column(Date)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Touch(Base):
    """One outbound message or CTA. `key` is written before the provider call: exactly-once intent."""

    __tablename__ = "touches"
    __table_args__ = (
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
        Index("ix_touches_account_id", "account_id"),
        Index("ix_touches_contact_id_send_at", "contact_id", "send_at"),
        Index("ix_touches_journey_as_of", "journey", "as_of"),
        Index("ix_touches_status", "status"),
        Index("ix_touches_delivery_status", "delivery_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    journey: Mapped[str] = mapped_column(String(64))
    milestone: Mapped[str] = mapped_column(String(64))
    rung: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str | None] = mapped_column(String(254))
    template: Mapped[str | None] = mapped_column(String(200))
    # Every writer names the status it records (see TouchStatus); a bare insert gets the documented
    # initial state. (It was "planned", a value nothing else wrote or read.)
    status: Mapped[str] = mapped_column(String(16), default=TouchStatus.PENDING)
    as_of: Mapped[date] = mapped_column(Date)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    # Set when a delivery attempt starts (status `sending`): a crash after it is ambiguous and reconciled.
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's verdict (DeliveryStatus), apart from the claim state in `status`: NULL until
    # a provider reports one, then only ever raised (techtouch.services.feedback), with the time
    # the provider gave for it.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Digest(Base):
    """One CSM digest email for one day; `key` (digest/<recipient>/<as_of>) makes it exactly-once."""

    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_as_of", "as_of"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    recipient: Mapped[str] = mapped_column(String(254))
    as_of: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.PENDING)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Cta(Base):
    """A call-to-action for a human; at most one open per account and reason (partial unique index).

    `why` says what raised it (journey, milestone, rung or branch, the condition and the values of
    its names at decision time, the answer, contact and comment: techtouch.services.cta_why);
    `outcomes` the outcomes it may be closed with. Every change is a `cta_history` row.
    """

    __tablename__ = "ctas"
    __table_args__ = (
        CheckConstraint(sql_in("status", CTA_STATUSES), name="status"),
        CheckConstraint(sql_in("priority", ("low", "medium", "high")), name="priority"),
        Index("ix_ctas_assignee_status", "assignee", "status"),
        Index("ix_ctas_account_id_reason", "account_id", "reason"),
        Index(
            "uq_ctas_open_account_reason",
            "account_id",
            "reason",
            unique=True,
            sqlite_where=text(sql_in("status", OPEN_CTA_STATUSES)),
            postgresql_where=text(sql_in("status", OPEN_CTA_STATUSES)),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"))
    touch_key: Mapped[str | None] = mapped_column(String(200))
    journey: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(8), default="medium")
    assignee: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default=CtaStatus.OPEN)
    due_date: Mapped[date] = mapped_column(Date)
    created_as_of: Mapped[date] = mapped_column(Date)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str | None] = mapped_column(Text)
    why: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    snoozed_until: Mapped[date | None] = mapped_column(Date)
    snooze_reason: Mapped[str | None] = mapped_column(Text)
    # The first time a person acted on it (start, snooze, done, assign): "time to first action".
    first_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_as_of: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CtaHistory(Base):
    """One change of a CTA: who (a user's email, or `techtouch` for a run), when, from, to."""

    __tablename__ = "cta_history"
    __table_args__ = (
        CheckConstraint(sql_in("action", CTA_ACTIONS), name="action"),
        Index("ix_cta_history_cta_id", "cta_id", "id"),
        Index("ix_cta_history_action_as_of", "action", "as_of"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cta_id: Mapped[int] = mapped_column(ForeignKey("ctas.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    as_of: Mapped[date | None] = mapped_column(Date)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    from_assignee: Mapped[str | None] = mapped_column(String(254))
    to_assignee: Mapped[str | None] = mapped_column(String(254))
    outcome: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A CSM, manager or ops person: who signs in, who emails sign as, who may see which CTAs."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(sql_in("role", USER_ROLES), name="role"),
        Index("ix_users_team", "team"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower-cased
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginFailure(Base):
    """A failed sign-in, for throttling: keyed by a hash of the email and of the client address."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- report rollups (techtouch.services.report_rollup) -------------------------------------------
# Everyone's numbers behind `/reports`, per day of entry (a cohort) or week, kept by the runs so the
# page sums a few thousand rows instead of grouping every touch. No contact data: counts only.


class ReportFunnelDay(Base):
    """The funnel of the enrollments of `journey` that entered on `entered_on`, per milestone and
    rung (`rung` '' is the milestone as a whole)."""

    __tablename__ = "report_funnel_days"

    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    entered_on: Mapped[date] = mapped_column(Date, primary_key=True)
    milestone: Mapped[str] = mapped_column(String(64), primary_key=True)
    rung: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str | None] = mapped_column(String(8))
    entered: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    clicked: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    escalated: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)


class ReportCohortDay(Base):
    """How many enrollments of `journey` that entered on `entered_on` stand in each status."""

    __tablename__ = "report_cohort_days"

    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    entered_on: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    enrollments: Mapped[int] = mapped_column(Integer)


class ReportSurveyDay(Base):
    """Of the enrollments of `journey` that entered on `entered_on`, those asked `survey` and those
    of them whose account answered it since."""

    __tablename__ = "report_survey_days"

    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    entered_on: Mapped[date] = mapped_column(Date, primary_key=True)
    survey: Mapped[str] = mapped_column(String(64), primary_key=True)
    asked: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)


class ReportWorkloadWeek(Base):
    """The CTAs created in the week of `week_start` (a Monday) assigned to `assignee`."""

    __tablename__ = "report_workload_weeks"
    __table_args__ = (Index("ix_report_workload_weeks_week_start", "week_start"),)

    assignee: Mapped[str] = mapped_column(String(254), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    opened: Mapped[int] = mapped_column(Integer)
    open_now: Mapped[int] = mapped_column(Integer)
    overdue_now: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    acted: Mapped[int] = mapped_column(Integer)
    joined: Mapped[int] = mapped_column(Integer)
    median_first_action_hours: Mapped[float | None] = mapped_column(Float)
    outcomes: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class ReportRefresh(Base):
    """When the rollups were last brought up to date, from which day, and how long it took."""

    __tablename__ = "report_refreshes"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[date] = mapped_column(Date)
    cohorts_from: Mapped[date | None] = mapped_column(Date)
    weeks_from: Mapped[date | None] = mapped_column(Date)
    seconds: Mapped[float] = mapped_column(Float)
