"""The numbers behind `/reports`: journey funnels, survey answer rates, the NPS distribution, the risk
recovery rate and the CTA workload per CSM per week, for a date range and a person's scope.

Not the per-run report (techtouch.services.reports and summary write the Prefect artifacts of one
run): these read the whole history, so every aggregate is computed by the database (GROUP BY,
window functions), never row by row in Python. Python only orders the few resulting rows and
does arithmetic on them. The SQL is the same on SQLite and PostgreSQL but for three expressions
(`_Dialect`: a date's week, the seconds between two instants, the survey of an answer) and
SQLite's planner hints (`_Source`, `CROSS JOIN`).

Speed (benchmarks/workspace.py, 100,000 accounts, ~660,000 touches in 90 days): a manager's reports
read their team's accounts only (through the index on accounts.csm_email) and are computed in a
few hundred milliseconds; everyone's read every touch of the range and take seconds. So the
queries group per day of entry (funnels, answers) and per week (workload), and the runs keep
everyone's rows in rollup tables (techtouch.services.report_rollup), which the page sums.

Who sees what (techtouch.domain.access): ops see everything; a manager sees the accounts whose CSM
is in their team (users.team) and the CTAs assigned to those people; anybody else is Forbidden.

Definitions (the page and the README say the same):

- The **funnel** follows the enrollments that *entered* the journey in the range (a cohort), up to
  today. Its numbers count enrollments, not messages (an email to two contacts counts once;
  `messages` counts the messages sent). Per milestone, and per rung of it: *entered* got at least
  one touch of it (a message, a skipped rung or a CTA); *sent* got a message the channel accepted;
  *delivered* one the provider delivered (its verdict is delivered, opened or clicked, or an
  `email_delivered`/`sms_delivered`/engagement event names it, and no bounce or failure came
  after); *opened* / *clicked* as journeys read them (the touch's status, its verdict, or an
  `email_opened`/`email_clicked` event naming its key: techtouch.adapters.db.state); *done*
  moved past the milestone or completed the journey there; *escalated* got a CTA (a ladder's CTA
  rung, a branch's, or a high-touch account's personal one; joined to an open CTA included). A
  customer's request for a person (`request` rows) is a CTA whatever the milestone, never done.
- **Answer rates**: per survey, of the enrollments that entered in the range (the funnel's cohort),
  those that were sent an email offering it (*asked*: the template puts a link to it,
  techtouch.adapters.render.renderer.offered_surveys) and those of them whose account answered it
  on or after the day of the first such email, up to today (*answered*); *answers* counts every
  answer recorded in the range (imports included).
- **NPS**: each respondent's (contact's) latest `nps` answer in the range; promoters 9-10,
  passives 7-8, detractors 0-6; the score is % promoters - % detractors.
- **Risk recovery**: risk enrollments that ended in the range, and how many of them with exit
  reason `recovered` (the goal); every exit reason is listed.
- **CTA workload** per assignee and ISO week of creation, for the weeks the range touches (whole
  weeks, Monday to Sunday): CTAs opened, of them still open now and overdue now, closed, the
  median time to the first action (`first_action_at - created_at`) and the outcomes they were
  closed with; *joined* counts escalations that joined an open CTA of the assignee that week
  (cta_history).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Date, String, bindparam, select, text
from sqlalchemy.sql.elements import TextClause

from techtouch.adapters.db.models import Account, User, UTCDateTime
from techtouch.domain.access import Actor, Forbidden, Role, can_see_reports
from techtouch.domain.catalog import CompiledJourney
from techtouch.domain.decide import BRANCH_PREFIX, GOAL_MILESTONE, REQUEST_MILESTONE
from techtouch.domain.statuses import (
    CLOSED_CTA_STATUSES,
    ENDED_ENROLLMENT_STATUSES,
    ENGAGED_DELIVERY_STATUSES,
    ENGAGED_TOUCH_STATUSES,
    OPEN_CTA_STATUSES,
    TERMINAL_DELIVERY_STATUSES,
    CtaAction,
    DeliveryStatus,
    EnrollmentStatus,
    TouchStatus,
)
from techtouch.services.app import App
from techtouch.services.runner import ordered

DEFAULT_DAYS = 90
MAX_DAYS = 3_660  # ten years: a range is a question about the business, not a full-table dump
RISK_JOURNEY = "risk"
RECOVERED = "recovered"
GOAL_TITLE = "Goal reached"
REQUEST_TITLE = "Customer asked for a person"
PROMOTERS = range(9, 11)
PASSIVES = range(7, 9)
DETRACTORS = range(0, 7)
# The names a CSV download and the page's sections go by (`/reports/<name>.csv`); a journey's own
# funnel is `funnel-<journey>`.
REPORT_NAMES = ("funnel", "answer-rates", "nps", "risk-recovery", "cta-workload")

SENT_STATUSES: tuple[TouchStatus, ...] = (TouchStatus.SENT, *ENGAGED_TOUCH_STATUSES)
ESCALATED_STATUSES: tuple[TouchStatus, ...] = (TouchStatus.CREATED, TouchStatus.DEDUPLICATED)
DELIVERED_VERDICTS: tuple[DeliveryStatus, ...] = (DeliveryStatus.DELIVERED, *ENGAGED_DELIVERY_STATUSES)
DELIVERED_EVENTS = ("email_delivered", "sms_delivered", "email_opened", "email_clicked")
OPENED_EVENTS = ("email_opened", "email_clicked")


class ReportError(ValueError):
    """A bad report request (a date range that is not one); the message says what to change."""


class UnknownReport(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no report {name!r}")


# --- the question: which dates, whose accounts --------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Inclusive range of days."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        """The first instant after the range (exclusive bound for timestamps)."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=UTC)


def period(start: date | None, end: date | None, today: date) -> Period:
    """The range asked for; by default the last DEFAULT_DAYS days up to `today`."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ReportError(f"the start ({start}) is after the end ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise ReportError(f"a range of at most {MAX_DAYS} days")
    return Period(start, end)


def parse_day(value: str | None, what: str) -> date | None:
    """`YYYY-MM-DD` from a form field (empty: None); ReportError naming the field otherwise."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ReportError(f"{what}: a date like 2026-11-24 (got {value.strip()[:20]!r})") from None


@dataclass(frozen=True)
class Scope:
    """Whose numbers: everyone's (`members` None) or those of the accounts whose CSM, and the CTAs
    whose assignee, is one of `members` (a manager's team, lower-case emails). `people`: every
    spelling of those emails in `accounts.csm_email` (an import keeps the case of the local part),
    matched exactly so that the indexes on accounts.csm_email and ctas.assignee find them."""

    label: str
    members: tuple[str, ...] | None = None
    people: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        return self.members is None


def scope_for(connection: Connection, actor: Actor) -> Scope:
    """Ops: everyone. A manager: the people of their team (and themselves). Others: Forbidden."""
    if not can_see_reports(actor):
        raise Forbidden("not allowed to see reports")
    if actor.role is Role.OPS:
        return Scope("all teams")
    members = {actor.email.lower()}
    if actor.team:
        members |= {
            str(e).lower()
            for e in connection.execute(select(User.email).where(User.team == actor.team)).scalars()
        }
    # The distinct CSM addresses come from the index on accounts.csm_email (a few hundred).
    spellings = connection.execute(select(Account.csm_email).where(Account.csm_email.is_not(None)).distinct())
    people = members | {str(e) for e in spellings.scalars() if str(e).lower() in members}
    label = f"team {actor.team}" if actor.team else "your own accounts"
    return Scope(label, tuple(sorted(members)), tuple(sorted(people)))


# --- the results --------------------------------------------------------------------------------

FUNNEL_MEASURES = ("entered", "sent", "delivered", "opened", "clicked", "done", "escalated")


@dataclass(frozen=True)
class FunnelRow:
    """One milestone (`rung` None: the milestone as a whole) or one rung of it."""

    journey: str
    milestone: str
    milestone_title: str
    rung: str | None
    kind: str  # milestone, rung, personal, branch, goal, other
    channel: str | None
    entered: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    done: int = 0
    escalated: int = 0
    messages: int = 0

    def measures(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in FUNNEL_MEASURES}


@dataclass(frozen=True)
class JourneyFunnel:
    journey: str
    name: str
    enrolled: int  # enrollments that entered in the range
    completed: int
    exited: int
    active: int
    rows: tuple[FunnelRow, ...]

    @property
    def milestones(self) -> tuple[FunnelRow, ...]:
        return tuple(r for r in self.rows if r.rung is None)


@dataclass(frozen=True)
class SurveyRate:
    survey: str
    asked: int
    answered: int
    answers: int

    @property
    def rate(self) -> float | None:
        return None if not self.asked else self.answered / self.asked


@dataclass(frozen=True)
class Nps:
    counts: dict[int, int]  # 0..10, every score present

    @property
    def responses(self) -> int:
        return sum(self.counts.values())

    def _share(self, scores: range) -> int:
        return sum(self.counts[s] for s in scores)

    @property
    def promoters(self) -> int:
        return self._share(PROMOTERS)

    @property
    def passives(self) -> int:
        return self._share(PASSIVES)

    @property
    def detractors(self) -> int:
        return self._share(DETRACTORS)

    @property
    def score(self) -> float | None:
        """% promoters - % detractors, one decimal; None without responses."""
        if not self.responses:
            return None
        return round(100.0 * (self.promoters - self.detractors) / self.responses, 1)


def nps_group(score: int) -> str:
    return "promoter" if score in PROMOTERS else "passive" if score in PASSIVES else "detractor"


@dataclass(frozen=True)
class RiskRecovery:
    by_reason: dict[str, int]  # exit reason -> enrollments, most first

    @property
    def ended(self) -> int:
        return sum(self.by_reason.values())

    @property
    def recovered(self) -> int:
        return self.by_reason.get(RECOVERED, 0)

    @property
    def rate(self) -> float | None:
        return None if not self.ended else self.recovered / self.ended


@dataclass(frozen=True)
class WorkloadRow:
    assignee: str
    name: str  # the user's name; the assignee itself for a queue or an address without a user
    week: str  # ISO week, `2026-W47`
    week_start: date  # its Monday
    opened: int
    open_now: int
    overdue_now: int
    closed: int
    acted: int  # with a first action
    joined: int
    median_first_action_hours: float | None
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    rows: tuple[WorkloadRow, ...]  # newest week first, then most opened
    outcomes: tuple[str, ...]  # every outcome present, sorted

    def weeks(self) -> list[str]:
        """The weeks present, oldest first."""
        return sorted({r.week for r in self.rows})

    def by_assignee(self) -> dict[str, int]:
        """CTAs opened per assignee over the range, most first."""
        totals: dict[str, int] = {}
        for r in self.rows:
            totals[r.assignee] = totals.get(r.assignee, 0) + r.opened
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class WorkspaceReports:
    period: Period
    scope: Scope
    today: date
    funnels: tuple[JourneyFunnel, ...]
    answer_rates: tuple[SurveyRate, ...]
    nps: Nps
    risk: RiskRecovery
    workload: Workload
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Everyone's funnels, answer rates and workload come from the rollup brought up to date then
    # (report_rollup); None: every number was computed from the history just now.
    refreshed_at: datetime | None = None


# --- SQL that differs per database ----------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    name: str

    def week_index(self, column: str) -> str:
        """The week (Monday to Sunday) of the date `column` as an integer: weeks since the one of
        1 January 1970, a Thursday (`_week_monday` turns it back into its Monday). Arithmetic on
        the day number, cheaper than date functions per row."""
        if self.name == "sqlite":
            return f"CAST((julianday({column}) - 2440587.5 + 3) / 7 AS INTEGER)"
        return f"(({column} - DATE '1970-01-01') + 3) / 7"

    def before_colon(self, column: str) -> str:
        """The text before the first `:` (a survey answer `nps:9` → `nps`)."""
        if self.name == "sqlite":
            return f"SUBSTR({column}, 1, INSTR({column}, ':') - 1)"
        return f"SPLIT_PART({column}, ':', 1)"

    def unindexed(self, column: str) -> str:
        """`column` in a condition SQLite's planner must not look up by an index (`+column`): where
        another index is the better way in and the statistics it would need are not kept."""
        return f"+{column}" if self.name == "sqlite" else column

    def day_start(self, column: str) -> str:
        """The first instant of the DATE `column`, comparable with a stored instant (naive UTC).
        SQLite keeps both as text, the day a prefix of its instants."""
        if self.name == "sqlite":
            return column
        return f"CAST({column} AS TIMESTAMP)"

    def seconds_between(self, later: str, earlier: str) -> str:
        if self.name == "sqlite":
            return f"((julianday({later}) - julianday({earlier})) * 86400.0)"
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


def _dialect(connection: Connection) -> _Dialect:
    return _Dialect(connection.dialect.name)


def _quoted(values: Iterable[str]) -> str:
    """`'a', 'b'` for IN lists of our own vocabularies (StrEnum members: their value, never input)."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


@dataclass(frozen=True)
class _Source:
    """Where a query reads `table` from, for a scope.

    Everyone: the table (its own indexes on dates and kinds). A team: the team's accounts first
    (the index on accounts.csm_email), then the table's rows of each account (its index on
    account_id): a manager's reports read their team's rows only, not everyone's. On SQLite the
    other conditions are then written `+column` (`col`), which keeps its planner from looping over
    another index inside the accounts loop.
    """

    scope: Scope
    dialect: _Dialect
    table: str
    alias: str

    @property
    def from_(self) -> str:
        if self.scope.everyone:
            return f"{self.table} {self.alias}"
        return f"accounts sa CROSS JOIN {self.table} {self.alias}"

    @property
    def where(self) -> str:
        if self.scope.everyone:
            return "1 = 1"
        return f"sa.csm_email IN :people AND {self.alias}.account_id = sa.id"

    def col(self, column: str) -> str:
        scoped = not self.scope.everyone and self.dialect.name == "sqlite"
        return f"+{column}" if scoped else column


def _params(scope: Scope, **values: Any) -> dict[str, Any]:
    if not scope.everyone:
        values["people"] = list(scope.people)
    return values


def _bind(sql: str, scope: Scope, **types: Any) -> TextClause:
    """`sql` with typed parameters (dates and instants stored as each database stores them)."""
    params = [bindparam(name, type_=kind) for name, kind in types.items()]
    if not scope.everyone:
        params.append(bindparam("people", expanding=True))
    return text(sql).bindparams(*params)


# --- the funnel ---------------------------------------------------------------------------------


def _funnel_sql(scope: Scope, dialect: _Dialect) -> str:
    """The journeys' funnels in one pass over the touches of their cohorts: grouped per enrollment
    and rung, then per journey, day of entry, milestone and rung (the rollup keeps those rows; a
    range sums them).

    Written for SQLite's sorter, which does every GROUP BY here (PostgreSQL hashes them): only
    integer flags aggregated (a MAX over a text column costs as much as the rest), the channel as
    two flags. One query for every journey: a team's touches are read once, not once per journey
    (over 100,000 accounts a manager's funnels take 0.32 s instead of 0.40 s on PostgreSQL, which
    scans the touches for each query, 0.17 s instead of 0.21 s on SQLite); the journey column to
    carry makes everyone's (the rollup's refresh, not a page) ~10 % slower on SQLite.

    - Touches come through the (journey, as_of) index, each joined to its enrollment by primary key
      (`CROSS JOIN`: SQLite keeps that order); a touch is never older than its enrollment, so
      `t.as_of >= :start` drops older history early.
    - Events are looked up (by the (type, value) index) only for a sent message whose own status
      and provider verdict do not already say it: SendGrid's feedback sets the verdict from the
      same events, so most messages need no lookup.
    - Done: positions only move forward, so an enrollment that has a touch of a milestone and
      stands elsewhere now moved past it; a completed one is done where it stands (a goal's
      touches come with the completion of the journey). A customer's request is no milestone:
      never done.
    """
    sent = f"t.status IN ({_quoted(SENT_STATUSES)})"
    engaged_status = f"t.status IN ({_quoted(ENGAGED_TOUCH_STATUSES)})"
    terminal = f"t.delivery_status IN ({_quoted(TERMINAL_DELIVERY_STATUSES)})"

    # PostgreSQL hashes such a subquery: it reads every event of the types once (~50 ms each), the
    # better way for everyone's touches; for a team's few thousand, `OFFSET 0` (which it may not
    # flatten) keeps it a lookup per message through the (type, value) index (0.7 s → 0.2 s).
    per_row = " OFFSET 0" if dialect.name == "postgresql" and not scope.everyone else ""

    def event(types: Sequence[str]) -> str:
        return (
            f"EXISTS (SELECT 1 FROM events e WHERE e.type IN ({_quoted(types)}) AND e.value = t.key{per_row})"
        )

    measures = "sent, delivered, opened, clicked, escalated, done, is_cta, is_sms"
    src = _Source(scope, dialect, "touches", "t")
    return f"""
    WITH marks AS (
        SELECT t.enrollment_id, t.journey, n.entered_as_of AS entered_on, t.milestone, t.rung,
               MAX(CASE WHEN t.channel <> 'cta' AND {sent} THEN 1 ELSE 0 END) AS sent,
               MAX(CASE WHEN t.channel = 'cta' OR NOT ({sent}) OR {terminal} THEN 0
                        WHEN t.delivery_status IS NOT NULL OR {engaged_status} THEN 1
                        WHEN {event(DELIVERED_EVENTS)} THEN 1 ELSE 0 END) AS delivered,
               MAX(CASE WHEN t.channel <> 'email' OR NOT ({sent}) THEN 0
                        WHEN {engaged_status}
                          OR t.delivery_status IN ({_quoted(ENGAGED_DELIVERY_STATUSES)}) THEN 1
                        WHEN {event(OPENED_EVENTS)} THEN 1 ELSE 0 END) AS opened,
               MAX(CASE WHEN t.channel <> 'email' OR NOT ({sent}) THEN 0
                        WHEN t.status = '{TouchStatus.CLICKED}'
                          OR t.delivery_status = '{DeliveryStatus.CLICKED}' THEN 1
                        WHEN {event(("email_clicked",))} THEN 1 ELSE 0 END) AS clicked,
               MAX(CASE WHEN t.channel = 'cta' AND t.status IN ({_quoted(ESCALATED_STATUSES)})
                        THEN 1 ELSE 0 END) AS escalated,
               SUM(CASE WHEN t.channel <> 'cta' AND {sent} THEN 1 ELSE 0 END) AS messages,
               MAX(CASE WHEN t.milestone = '{REQUEST_MILESTONE}' THEN 0
                        WHEN n.status = '{EnrollmentStatus.COMPLETED}'
                          OR COALESCE(n.milestone, '') <> t.milestone THEN 1 ELSE 0 END) AS done,
               MAX(CASE WHEN t.channel = 'cta' THEN 1 ELSE 0 END) AS is_cta,
               MAX(CASE WHEN t.channel = 'sms' THEN 1 ELSE 0 END) AS is_sms
        FROM {src.from_} CROSS JOIN enrollments n
        WHERE {src.where} AND {src.col("t.journey")} IN :journeys AND {src.col("t.as_of")} >= :start
          AND n.id = t.enrollment_id AND n.entered_as_of >= :start AND n.entered_as_of <= :end
        GROUP BY t.enrollment_id, t.journey, n.entered_as_of, t.milestone, t.rung
    ),
    per_milestone AS (
        SELECT journey, entered_on, milestone, MAX(sent) AS sent, MAX(delivered) AS delivered,
               MAX(opened) AS opened, MAX(clicked) AS clicked, MAX(escalated) AS escalated,
               SUM(messages) AS messages, MAX(done) AS done, 0 AS is_cta, 0 AS is_sms
        FROM marks
        GROUP BY enrollment_id, journey, entered_on, milestone
    )
    SELECT journey, entered_on, milestone, rung, COUNT(*) AS entered, SUM(messages) AS messages,
           {", ".join(f"SUM({m}) AS {m}" for m in measures.split(", "))}
    FROM marks
    GROUP BY journey, entered_on, milestone, rung
    UNION ALL
    SELECT journey, entered_on, milestone, '', COUNT(*), SUM(messages),
           {", ".join(f"SUM({m})" for m in measures.split(", "))}
    FROM per_milestone
    GROUP BY journey, entered_on, milestone
    """


def funnel_days(
    connection: Connection, journeys: Sequence[str], scope: Scope, start: date | None, end: date
) -> list[dict[str, Any]]:
    """The `journeys`' funnels per journey, day of entry, milestone and rung (`rung` '': the
    milestone as a whole), for the enrollments that entered from `start` (None: ever) to `end`.

    Each row: journey, entered_on, milestone, rung, channel (of a rung: cta, sms or email; None for a
    milestone) and the counts of FUNNEL_MEASURES and `messages`."""
    if not journeys:
        return []
    dialect = _dialect(connection)
    statement = _bind(_funnel_sql(scope, dialect), scope, start=Date(), end=Date()).bindparams(
        bindparam("journeys", expanding=True)
    )
    params = _params(scope, start=start or EARLIEST, end=end, journeys=list(journeys))
    found = []
    for row in connection.execute(statement, params).mappings():
        values = dict(row)
        is_cta, is_sms = values.pop("is_cta"), values.pop("is_sms")
        values["rung"] = str(values["rung"] or "")
        values["channel"] = None if not values["rung"] else "cta" if is_cta else "sms" if is_sms else "email"
        values["entered_on"] = _as_date(values["entered_on"])
        for name in (*FUNNEL_MEASURES, "messages"):
            values[name] = int(values[name] or 0)
        found.append(values)
    return found


def cohort_days(
    connection: Connection, journeys: Sequence[str], scope: Scope, start: date | None, end: date
) -> list[tuple[str, date, str, int]]:
    """(journey, day of entry, status, enrollments) for the enrollments that entered from `start`
    (None: ever) to `end`."""
    if not journeys:
        return []
    src = _Source(scope, _dialect(connection), "enrollments", "n")
    statement = _bind(
        f"SELECT n.journey, n.entered_as_of, n.status, COUNT(*) AS n FROM {src.from_} WHERE {src.where} "
        "AND n.journey IN :journeys AND n.entered_as_of >= :start AND n.entered_as_of <= :end "
        "GROUP BY n.journey, n.entered_as_of, n.status",
        scope,
        start=Date(),
        end=Date(),
    ).bindparams(bindparam("journeys", expanding=True))
    rows = connection.execute(
        statement, _params(scope, start=start or EARLIEST, end=end, journeys=list(journeys))
    )
    return [(str(j), _as_date(day), str(status), int(n)) for j, day, status, n in rows]


EARLIEST = date(1970, 1, 1)  # "from the beginning" as a bound the indexes can use


def _as_date(value: Any) -> date:
    """A DATE from a text query: SQLite hands back its text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# A rung whose enrollments met it on several channels (a branch that emails and raises a CTA) is
# named by the strongest: what the query's flags say for a single day.
CHANNEL_STRENGTH = {"email": 1, "sms": 2, "cta": 3}


def strongest_channel(*channels: str | None) -> str | None:
    return max((c for c in channels if c), key=lambda c: CHANNEL_STRENGTH.get(c, 0), default=None)


FunnelKey = tuple[str, str, str | None]  # journey, milestone, rung (None: the milestone)


def sum_funnel_days(rows: Iterable[Mapping[str, Any]]) -> dict[FunnelKey, dict[str, Any]]:
    """Per-day funnel rows summed over their days, keyed as `journey_funnel` reads."""
    counted: dict[FunnelKey, dict[str, Any]] = {}
    for row in rows:
        key = (str(row["journey"]), str(row["milestone"]), str(row["rung"]) or None)
        total = counted.setdefault(
            key, {"channel": row["channel"], **dict.fromkeys((*FUNNEL_MEASURES, "messages"), 0)}
        )
        for name in (*FUNNEL_MEASURES, "messages"):
            total[name] += int(row[name] or 0)
        total["channel"] = strongest_channel(total["channel"], row["channel"])
    return counted


def funnels(
    connection: Connection, journeys: Sequence[CompiledJourney], scope: Scope, within: Period
) -> list[JourneyFunnel]:
    """Per journey (in the order given), its cohort's funnel per milestone and rung (module
    docstring), computed from the touches (the rollup keeps everyone's: report_rollup)."""
    if not journeys:
        return []
    ids = [j.id for j in journeys]
    counted = sum_funnel_days(funnel_days(connection, ids, scope, within.start, within.end))
    by_status: dict[str, dict[str, int]] = {}
    for journey_id, _, status, n in cohort_days(
        connection, [j.id for j in journeys], scope, within.start, within.end
    ):
        by_status.setdefault(journey_id, {})
        by_status[journey_id][status] = by_status[journey_id].get(status, 0) + n
    return [journey_funnel(journey, counted, by_status.get(journey.id, {})) for journey in journeys]


SPECIAL_TITLES = {GOAL_MILESTONE: GOAL_TITLE, REQUEST_MILESTONE: REQUEST_TITLE}


def journey_funnel(
    journey: CompiledJourney,
    counted: Mapping[tuple[str, str, str | None], Mapping[str, Any]],
    statuses: Mapping[str, int],
) -> JourneyFunnel:
    """The rows in the order a customer meets them: each milestone, then its ladder's rungs, its
    personal CTA and its branches; then whatever else was recorded (a renamed rung or milestone); the
    customer requests; the goals last. Rungs of the definition that nothing reached yet are listed
    with zeros."""
    rows: list[FunnelRow] = []
    seen: set[tuple[str, str | None]] = set()
    titles = {m.spec.id: m.spec.title or m.spec.id for m in journey.milestones}

    def add(milestone: str, rung: str | None, kind: str, channel: str | None) -> None:
        if (milestone, rung) in seen:
            return
        seen.add((milestone, rung))
        found = counted.get((journey.id, milestone, rung), {})
        rows.append(
            FunnelRow(
                journey=journey.id,
                milestone=milestone,
                milestone_title=titles.get(milestone, SPECIAL_TITLES.get(milestone, milestone)),
                rung=rung,
                kind=kind,
                channel=channel or found.get("channel"),
                **{name: int(found.get(name) or 0) for name in (*FUNNEL_MEASURES, "messages")},
            )
        )

    recorded = sorted(
        (m, r)
        for (j, m, r) in counted
        if j == journey.id and r is not None and m not in (GOAL_MILESTONE, REQUEST_MILESTONE)
    )
    for m in journey.milestones:
        mid = m.spec.id
        add(mid, None, "milestone", None)
        for rung in m.spec.ladder:
            add(mid, rung.id, "rung", rung.channel)
        for milestone, rung_id in recorded:
            if milestone == mid and not rung_id.startswith(BRANCH_PREFIX) and (mid, rung_id) not in seen:
                add(mid, rung_id, "personal" if rung_id == "personal" else "other", None)
        for branch, _ in m.branches:
            add(mid, f"{BRANCH_PREFIX}{branch.id}", "branch", None)
        for milestone, rung_id in recorded:
            if milestone == mid:
                add(mid, rung_id, "branch", None)
    for milestone, _ in recorded:  # milestones the definition no longer has
        add(milestone, None, "milestone", None)
        for other, rung_id in recorded:
            if other == milestone:
                add(milestone, rung_id, "other", None)
    requests = [r.id for r, _ in journey.requests]
    requests += sorted(
        r for (j, m, r) in counted if j == journey.id and m == REQUEST_MILESTONE and r and r not in requests
    )
    if requests:  # a customer's request raises a CTA whatever the milestone: a row of its own
        add(REQUEST_MILESTONE, None, "milestone", None)
        for request in requests:
            add(REQUEST_MILESTONE, request, "request", "cta")
    goals = [g.id for g, _ in journey.goals if g.message is not None]  # a silent goal leaves no touch
    goals += sorted(
        r for (j, m, r) in counted if j == journey.id and m == GOAL_MILESTONE and r and r not in goals
    )
    if goals:
        add(GOAL_MILESTONE, None, "milestone", None)
        for goal in goals:
            add(GOAL_MILESTONE, goal, "goal", None)
    return JourneyFunnel(
        journey=journey.id,
        name=journey.spec.name or journey.id,
        enrolled=sum(statuses.values()),
        completed=statuses.get(EnrollmentStatus.COMPLETED, 0),
        exited=statuses.get(EnrollmentStatus.EXITED, 0),
        active=statuses.get(EnrollmentStatus.ACTIVE, 0),
        rows=tuple(rows),
    )


# --- answer rates -------------------------------------------------------------------------------


def _offer_pairs(offers: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    return sorted({(template, survey) for template, surveys in offers.items() for survey in surveys})


def survey_days(
    connection: Connection,
    journeys: Sequence[str],
    offers: Mapping[str, Iterable[str]],
    scope: Scope,
    start: date | None,
    end: date,
    today: date,
) -> list[tuple[str, date, str, int, int]]:
    """(journey, day of entry, survey, asked, answered) for the enrollments of `journeys` that entered from
    `start` (None: ever) to `end`: *asked* were sent an email offering the survey (`offers`:
    template -> surveys it links to), *answered* of them: their account answered that survey on
    or after the day of the first such email, up to `today`.

    The asks are grouped per enrollment and survey first; each looks its account's answers up
    through the index on events (account_id, type), not the one on (type, value), which would
    read every answer to the survey for each ask (minutes over 100,000 accounts)."""
    pairs = _offer_pairs(offers)
    if not pairs or not journeys:
        return []
    dialect = _dialect(connection)
    values: dict[str, Any] = {}
    rows = []
    for i, (template, survey) in enumerate(pairs):
        values[f"ot{i}"], values[f"os{i}"] = template, survey
        rows.append(f"SELECT :ot{i} AS template, :os{i} AS survey")
    src = _Source(scope, dialect, "touches", "t")
    per_row = " OFFSET 0" if dialect.name == "postgresql" and not scope.everyone else ""  # as _funnel_sql
    sql = f"""
    WITH offers AS ({" UNION ALL ".join(rows)}),
    asks AS (
        SELECT t.enrollment_id, o.survey, t.journey, n.entered_as_of AS entered_on,
               MIN(t.account_id) AS account_id, MIN(t.as_of) AS first_asked
        FROM {src.from_} CROSS JOIN enrollments n CROSS JOIN offers o
        WHERE {src.where} AND {src.col("t.journey")} IN :journeys AND {src.col("t.as_of")} >= :start
          AND n.id = t.enrollment_id AND n.entered_as_of >= :start AND n.entered_as_of <= :end
          AND t.channel = 'email' AND t.status IN ({_quoted(SENT_STATUSES)}) AND t.template IN :templates
          AND o.template = t.template
        GROUP BY t.enrollment_id, o.survey, t.journey, n.entered_as_of
    )
    SELECT a.journey, a.entered_on, a.survey, COUNT(*) AS asked,
           SUM(CASE WHEN EXISTS (
                   SELECT 1 FROM events e
                   WHERE e.account_id = a.account_id AND e.type = 'survey'
                     AND {dialect.unindexed("e.value")} >= a.survey || ':'
                     AND {dialect.unindexed("e.value")} < a.survey || ';'
                     AND e.occurred_at >= {dialect.day_start("a.first_asked")}
                     AND e.occurred_at < :until{per_row}
               ) THEN 1 ELSE 0 END) AS answered
    FROM asks a
    GROUP BY a.journey, a.entered_on, a.survey
    """
    statement = _bind(sql, scope, start=Date(), end=Date(), until=UTCDateTime()).bindparams(
        bindparam("templates", expanding=True), bindparam("journeys", expanding=True)
    )
    params = _params(
        scope,
        start=start or EARLIEST,
        end=end,
        until=Period(today, today).until,
        journeys=list(journeys),
        templates=sorted({template for template, _ in pairs}),
        **values,
    )
    return [
        (str(journey), _as_date(day), str(survey), int(asked), int(answered or 0))
        for journey, day, survey, asked, answered in connection.execute(statement, params)
    ]


def answer_counts(
    connection: Connection, surveys: Iterable[str], scope: Scope, within: Period
) -> dict[str, int]:
    """Survey -> the answers recorded in the range (imports included), for `surveys`."""
    wanted = sorted(set(surveys))
    if not wanted:
        return {}
    dialect = _dialect(connection)
    events = _Source(scope, dialect, "events", "e")
    sql = f"""
    SELECT {dialect.before_colon("e.value")} AS survey, COUNT(*) AS n
    FROM {events.from_}
    WHERE {events.where} AND e.type = 'survey' AND e.occurred_at >= :since AND e.occurred_at < :until
    GROUP BY {dialect.before_colon("e.value")}
    """
    statement = _bind(sql, scope, since=UTCDateTime(), until=UTCDateTime())
    found = connection.execute(statement, _params(scope, since=within.since, until=within.until))
    counts = {str(survey): int(n) for survey, n in found}
    return {survey: counts.get(survey, 0) for survey in wanted}


def rates_of(
    asked: Mapping[str, tuple[int, int]], answers: Mapping[str, int], surveys: Iterable[str]
) -> list[SurveyRate]:
    """SurveyRate per survey (asked/answered from `asked`, answers from `answers`), most asked first."""
    found = [
        SurveyRate(survey, *asked.get(survey, (0, 0)), answers.get(survey, 0))
        for survey in sorted(set(surveys))
    ]
    return sorted(found, key=lambda r: (-r.asked, -r.answers, r.survey))


def answer_rates(
    connection: Connection,
    offers: Mapping[str, Iterable[str]],
    scope: Scope,
    within: Period,
    journeys: Sequence[str],
    today: date,
) -> list[SurveyRate]:
    """Per survey that a template offers, the enrollments that entered in the range and were asked,
    those of them answered, and the answers recorded in the range (module docstring), most asked
    first; computed from the touches (the rollup keeps everyone's: report_rollup)."""
    surveys = {survey for _, survey in _offer_pairs(offers)}
    if not surveys or not journeys:
        return []
    asked: dict[str, tuple[int, int]] = {}
    for _, _, survey, n, answered in survey_days(
        connection, journeys, offers, scope, within.start, within.end, today
    ):
        before = asked.get(survey, (0, 0))
        asked[survey] = (before[0] + n, before[1] + answered)
    return rates_of(asked, answer_counts(connection, surveys, scope, within), surveys)


# --- NPS ----------------------------------------------------------------------------------------


def nps(connection: Connection, scope: Scope, within: Period) -> Nps:
    """Each respondent's latest NPS answer in the range, counted per score."""
    # `value >= 'nps:' AND value < 'nps;'` (';' follows ':') is the prefix as an index range
    # (for a team, the index on (account_id, type, occurred_at) is the one to use).
    events = _Source(scope, _dialect(connection), "events", "e")
    sql = f"""
    WITH latest AS (
        SELECT e.value,
               ROW_NUMBER() OVER (PARTITION BY e.account_id, COALESCE(e.contact_id, '')
                                  ORDER BY e.occurred_at DESC, e.id DESC) AS rn
        FROM {events.from_}
        WHERE {events.where} AND e.type = 'survey'
          AND {events.col("e.value")} >= 'nps:' AND {events.col("e.value")} < 'nps;'
          AND e.occurred_at >= :since AND e.occurred_at < :until
    )
    SELECT value, COUNT(*) AS n FROM latest WHERE rn = 1 GROUP BY value
    """
    statement = _bind(sql, scope, since=UTCDateTime(), until=UTCDateTime())
    counts = dict.fromkeys(range(11), 0)
    for value, n in connection.execute(statement, _params(scope, since=within.since, until=within.until)):
        score = str(value).partition(":")[2]
        if score.isdigit() and int(score) in counts:
            counts[int(score)] += int(n)
    return Nps(counts)


# --- risk recovery ------------------------------------------------------------------------------


def risk_recovery(
    connection: Connection, scope: Scope, within: Period, journey: str = RISK_JOURNEY
) -> RiskRecovery:
    """The risk enrollments that ended in the range, per exit reason."""
    src = _Source(scope, _dialect(connection), "enrollments", "n")
    sql = f"""
    SELECT COALESCE(n.exit_reason, '') AS reason, COUNT(*) AS n
    FROM {src.from_}
    WHERE {src.where} AND n.journey = :journey
      AND {src.col("n.status")} IN ({_quoted(ENDED_ENROLLMENT_STATUSES)})
      AND n.exited_as_of >= :start AND n.exited_as_of <= :end
    GROUP BY COALESCE(n.exit_reason, '')
    """
    statement = _bind(sql, scope, start=Date(), end=Date(), journey=String())
    rows = connection.execute(
        statement, _params(scope, start=within.start, end=within.end, journey=journey)
    ).all()
    ordered = sorted(((str(r) or "unknown", int(n)) for r, n in rows), key=lambda item: (-item[1], item[0]))
    return RiskRecovery(dict(ordered))


# --- CTA workload -------------------------------------------------------------------------------


def cta_workload(connection: Connection, scope: Scope, within: Period, today: date) -> Workload:
    """Per assignee and ISO week of creation (module docstring); newest week first.

    Two scans of the range's CTAs (the counts per outcome, and the median) and one of the history's
    escalations; a week is an integer (`_Dialect.week_index`), turned into its Monday here.
    """
    dialect = _dialect(connection)
    assignee_filter = "1 = 1" if scope.everyone else "c.assignee IN :people"  # ix_ctas_assignee_status
    in_range = f"c.created_as_of >= :start AND c.created_as_of <= :end AND {assignee_filter}"
    is_open = f"c.status IN ({_quoted(OPEN_CTA_STATUSES)})"
    first_action = dialect.seconds_between("c.first_action_at", "c.created_at")
    counts_sql = f"""
    SELECT c.assignee, {dialect.week_index("c.created_as_of")} AS week, c.outcome, COUNT(*) AS opened,
           SUM(CASE WHEN {is_open} THEN 1 ELSE 0 END) AS open_now,
           SUM(CASE WHEN {is_open} AND c.due_date < :today THEN 1 ELSE 0 END) AS overdue_now,
           SUM(CASE WHEN c.status IN ({_quoted(CLOSED_CTA_STATUSES)}) THEN 1 ELSE 0 END) AS closed,
           SUM(CASE WHEN c.first_action_at IS NOT NULL THEN 1 ELSE 0 END) AS acted
    FROM ctas c WHERE {in_range}
    GROUP BY c.assignee, {dialect.week_index("c.created_as_of")}, c.outcome
    """
    # The median per group with window functions (SQLite has no percentile function): the middle
    # row, or the mean of the two middle rows.
    median_sql = f"""
    WITH ranked AS (
        SELECT c.assignee, {dialect.week_index("c.created_as_of")} AS week, {first_action} AS seconds
        FROM ctas c WHERE {in_range} AND c.first_action_at IS NOT NULL
    ),
    numbered AS (
        SELECT assignee, week, seconds,
               ROW_NUMBER() OVER (PARTITION BY assignee, week ORDER BY seconds) AS rn,
               COUNT(*) OVER (PARTITION BY assignee, week) AS n
        FROM ranked
    )
    SELECT assignee, week, AVG(seconds) AS median_s
    FROM numbered WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
    GROUP BY assignee, week
    """
    joined_sql = f"""
    SELECT c.assignee, {dialect.week_index("h.as_of")} AS week, COUNT(*) AS n
    FROM cta_history h JOIN ctas c ON c.id = h.cta_id
    WHERE h.action = '{CtaAction.ESCALATED}' AND h.as_of >= :start AND h.as_of <= :end AND {assignee_filter}
    GROUP BY c.assignee, {dialect.week_index("h.as_of")}
    """
    weeks = whole_weeks(within)
    params = _params(scope, start=weeks.start, end=weeks.end, today=today)

    def run(sql: str, **types: Any) -> list[Any]:
        return list(connection.execute(_bind(sql, scope, start=Date(), end=Date(), **types), params))

    zero = {"opened": 0, "open_now": 0, "overdue_now": 0, "closed": 0, "acted": 0, "joined": 0}
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    outcomes: set[str] = set()
    for row in run(counts_sql, today=Date()):
        group = groups.setdefault((row.assignee, int(row.week)), dict(zero, outcomes={}))
        for name in ("opened", "open_now", "overdue_now", "closed", "acted"):
            group[name] += int(getattr(row, name) or 0)
        if row.outcome is not None:
            group["outcomes"][str(row.outcome)] = int(row.opened)
            outcomes.add(str(row.outcome))
    for assignee, week, median_s in run(median_sql):
        if (assignee, int(week)) in groups and median_s is not None:
            groups[(assignee, int(week))]["median_s"] = float(median_s)
    for assignee, week, n in run(joined_sql):
        groups.setdefault((assignee, int(week)), dict(zero, outcomes={}))["joined"] = int(n)
    names = user_names(connection, {assignee for assignee, _ in groups})
    rows = []
    for (assignee, week), g in groups.items():
        monday = _week_monday(week)
        median = g.get("median_s")
        rows.append(
            WorkloadRow(
                assignee=assignee,
                name=names.get(assignee.lower(), assignee),
                week=iso_week(monday),
                week_start=monday,
                opened=g["opened"],
                open_now=g["open_now"],
                overdue_now=g["overdue_now"],
                closed=g["closed"],
                acted=g["acted"],
                joined=g["joined"],
                median_first_action_hours=None if median is None else round(median / 3600.0, 1),
                outcomes=dict(sorted(g["outcomes"].items())),
            )
        )
    rows.sort(key=lambda r: (-r.week_start.toordinal(), -r.opened, r.assignee))
    return Workload(tuple(rows), tuple(sorted(outcomes)))


def monday(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def whole_weeks(within: Period) -> Period:
    """The range widened to whole weeks, Monday to Sunday: the workload is counted per week of
    creation, and a week is never cut by the range (everyone's rollup keeps whole weeks)."""
    return Period(monday(within.start), monday(within.end) + timedelta(days=6))


EPOCH = date(1970, 1, 1)  # a Thursday: week 0 is the week of Monday 29 December 1969


def _week_monday(week: int) -> date:
    """The Monday of the week numbered by `_Dialect.week_index`."""
    return EPOCH + timedelta(days=7 * week - 3)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def user_names(connection: Connection, emails: Iterable[str]) -> dict[str, str]:
    """Lower-cased email -> the user's name, for the assignees that are users."""
    wanted = sorted({e.lower() for e in emails if "@" in e})
    if not wanted:
        return {}
    rows = connection.execute(select(User.email, User.name).where(User.email.in_(wanted)))
    return {str(email).lower(): str(name) for email, name in rows}


# --- everything, and the CSV tables -------------------------------------------------------------


def template_offers(app: App, journeys: Sequence[CompiledJourney]) -> dict[str, frozenset[str]]:
    """Which surveys each email template the journeys send links to (read from the template source)."""
    templates = sorted(
        {rung.template for j in journeys for m in j.milestones for rung in m.spec.ladder if rung.template}
        | {b.message.template for j in journeys for m in j.milestones for b, _ in m.branches if b.message}
        | {g.message.template for j in journeys for g, _ in j.goals if g.message}
    )
    return _offers(app.renderer, tuple(templates))


_OFFERS_CACHE: dict[tuple[int, tuple[str, ...]], dict[str, frozenset[str]]] = {}


def _offers(renderer: Any, templates: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Parsing the templates takes ~100 ms: once per renderer (a process's templates do not change)."""
    key = (id(renderer), templates)
    if key not in _OFFERS_CACHE:
        found: dict[str, frozenset[str]] = {}
        for template in templates:
            surveys = renderer.offered_surveys(
                [f"{template}.email.html", f"{template}.email.txt", f"{template}.subject.txt"]
            )
            if surveys:
                found[template] = frozenset(surveys)
        _OFFERS_CACHE[key] = found
    return _OFFERS_CACHE[key]


def ordered_journeys(app: App) -> list[CompiledJourney]:
    """The journeys in priority order (config overrides the file), as runs take them."""
    return ordered(app.catalog, app.settings)


SORTER_KIB = 65_536  # SQLite: memory for one report's sorts (GROUP BY, windows), instead of 2 MB


@contextmanager
def sorting_room(connection: Connection) -> Iterator[None]:
    """Room for the reports' sorts and hashes, for their length only.

    SQLite: a larger page cache, which its sorter (every GROUP BY) keeps its runs in rather than
    spilling them to temporary files (twice as fast over 100,000 accounts); the connection's own
    setting is put back after, so it returns to the pool as it was. PostgreSQL, for the
    transaction (`SET LOCAL`): as much work memory, and no JIT compilation, which its planner
    chooses for these queries' estimated cost and which took 3.5 of 3.8 s of a funnel (EXPLAIN
    ANALYZE over 100,000 accounts) to speed up a query that then runs in half a second.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL jit = off")
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{SORTER_KIB}kB'")
        yield
        return
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SORTER_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(before or -2000)}")
