"""A synthetic long-tail customer base for the demo, simulations and benchmarks.

Everything is drawn with numpy from one seed and anchored at `as_of`, so the same
arguments give byte-identical tables (no wall clock, no hash or dict ordering). Accounts
are generated and written in chunks with one generator per chunk, which keeps memory
bounded for a million accounts and makes each chunk independent of the others.

Rows go to the database as plain tuples through techtouch.adapters.db.bulk.load_rows (COPY on
PostgreSQL, the driver's executemany on SQLite): building ORM objects or SQLAlchemy bind dicts for
~10 M usage rows would cost more than generating them. Dates and datetimes are written as the
strings SQLAlchemy itself stores on SQLite (naive UTC), which PostgreSQL parses as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, inspect, text

from techtouch.adapters.db.bulk import load_rows
from techtouch.adapters.db.engine import analyze
from techtouch.adapters.db.models import Base
from techtouch.domain.shards import shard_key
from techtouch.services.importing import event_key, event_key_from_iso

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Bounds the (accounts x days) usage matrices of one chunk to ~2 M cells.
CHUNK_CELLS = 1_800_000
MAX_CHUNK_ACCOUNTS = 20_000
ACCOUNTS_PER_CSM = 250

BRANDS = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Hooli",
    "Vandelay", "Contoso", "Fabrikam", "Wonka", "Cyberdyne", "Aperture", "Soylent", "Gringotts",
    "Oceanic", "Massive", "Blue Sun", "Monarch", "Sirius", "Polaris", "Summit", "Evergreen",
    "Redwood", "Atlas", "Beacon", "Cobalt", "Juniper", "Lighthouse", "Meridian",
)  # fmt: skip
INDUSTRIES = (
    "Logistics", "Labs", "Health", "Foods", "Systems", "Analytics", "Retail", "Media", "Energy",
    "Robotics", "Studios", "Capital", "Travel", "Builders", "Farms", "Software", "Insurance",
    "Legal", "Dental", "Fitness", "Hotels", "Motors", "Textiles", "Consulting",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ben", "Carla", "Chen", "Dana", "David", "Elena", "Emma", "Farah",
    "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jada", "James", "Kai", "Kenji", "Laura",
    "Leo", "Lina", "Marco", "Maya", "Nadia", "Noah", "Olga", "Omar", "Priya", "Quinn", "Rosa",
    "Sam", "Sofia", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Castillo", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Khan", "Larsen", "Moreau", "Nakamura", "Okafor", "Patel", "Quiroga", "Rossi", "Schmidt",
    "Tanaka", "Ueda", "Varga", "Walker", "Xu", "Young", "Zimmer", "Novak", "Silva", "Murphy",
    "Lopez", "Kowalski", "Berg",
)  # fmt: skip
# Weighted IANA zones; None is an account without a known zone.
TIMEZONES: tuple[tuple[str | None, float], ...] = (
    ("America/New_York", 0.22),
    ("America/Chicago", 0.13),
    ("America/Denver", 0.05),
    ("America/Los_Angeles", 0.15),
    ("America/Toronto", 0.04),
    ("America/Sao_Paulo", 0.02),
    ("Europe/London", 0.10),
    ("Europe/Paris", 0.06),
    ("Europe/Berlin", 0.07),
    ("Europe/Amsterdam", 0.03),
    ("Asia/Tokyo", 0.04),
    ("Asia/Singapore", 0.02),
    ("Australia/Sydney", 0.03),
    (None, 0.04),
)
# US area codes whose 555-0100..0199 block phonenumbers accepts. That block is reserved for
# fiction, so a demo SMS through a real provider can never reach a real person.
AREA_CODES = (
    201, 202, 203, 206, 212, 213, 214, 215, 216, 224, 248, 253, 267, 281, 303, 305, 310, 312, 313,
    314, 323, 347, 404, 408, 415, 425, 469, 503, 512, 602, 612, 617, 646, 650, 702, 713, 718, 720,
    773, 801, 818, 858, 904, 917, 919, 972, 989,
)  # fmt: skip
OTHER_ROLES = ("champion", "executive", "user")
OTHER_ROLE_WEIGHTS = (0.3, 0.15, 0.55)
WEEKDAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.92, 0.3, 0.22])  # Monday .. Sunday
NPS_WEIGHTS = np.array([2, 1, 1, 2, 2, 4, 6, 14, 20, 24, 24], dtype=float)
CSAT_WEIGHTS = np.array([4, 6, 15, 40, 35], dtype=float)
RENEWAL_ANSWERS = ("likely", "unsure", "not_likely")

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "id", "name", "segment", "arr", "start_date", "renewal_date", "csm_email", "timezone",
        "paused_until", "is_advocate", "updated_at", "shard_key",
    ),
    "contacts": (
        "id", "account_id", "name", "email", "phone", "role", "email_consent", "sms_consent",
        "timezone", "updated_at",
    ),
    "usage_daily": ("account_id", "date", "active_users", "logins", "key_actions"),
    "events": ("key", "account_id", "contact_id", "occurred_at", "type", "value", "source"),
    "suppressions": ("contact_id", "channel", "reason", "since"),
}  # fmt: skip
STAGES = tuple(COLUMNS)
__all__ = ["SeedRefused", "SeedSummary", "event_key", "seed"]


@dataclass(frozen=True)
class SeedSummary:
    """Rows written per table and the wall time it took (the only thing not deterministic)."""

    accounts: int
    contacts: int
    usage_rows: int
    events: int
    seconds: float
    suppressions: int = 0


class SeedRefused(Exception):
    """The database already holds accounts and `replace` was not asked for."""


def seed(
    engine: Engine,
    *,
    accounts: int,
    seed: int = 0,
    days: int = 90,
    as_of: date,
    high_touch_arr: float = 100_000,
    replace: bool = False,
    progress: Progress | None = None,
) -> SeedSummary:
    """Write a synthetic customer base of `accounts` accounts with `days` days of usage before `as_of`.

    Each chunk of accounts is one transaction; a failure leaves the chunks before it, and a
    re-run needs `replace=True`. `progress(stage, n)` gets the rows just written to a table.
    """
    if accounts < 0 or days < 0:
        raise ValueError("accounts and days must not be negative")
    started = time.perf_counter()
    _prepare(engine, replace=replace)
    plan = _Plan.make(accounts=accounts, seed=seed, days=days, as_of=as_of, high_touch_arr=high_touch_arr)
    totals = dict.fromkeys(STAGES, 0)
    for index, first in enumerate(range(0, accounts, plan.chunk)):
        size = min(plan.chunk, accounts - first)
        tables = _generate_chunk(plan, index, first, size, contact_offset=totals["contacts"])
        with engine.begin() as connection:
            for stage in STAGES:
                rows = tables[stage]
                table = Base.metadata.tables[stage]
                written = load_rows(connection, table, COLUMNS[stage], zip(*rows, strict=True))
                totals[stage] += written
                if progress is not None:
                    progress(stage, written)
        log.debug("seeded accounts %d-%d", first + 1, first + size)
    # Without statistics of what was just loaded the planner takes millions of events for a few
    # thousand and picks the wrong index.
    analyze(engine, STAGES)
    return SeedSummary(
        accounts=totals["accounts"],
        contacts=totals["contacts"],
        usage_rows=totals["usage_daily"],
        events=totals["events"],
        seconds=time.perf_counter() - started,
        suppressions=totals["suppressions"],
    )


def _prepare(engine: Engine, *, replace: bool) -> None:
    """Refuse a populated database, or empty every table when replacing (children first)."""
    with engine.begin() as connection:
        existing = set(inspect(connection).get_table_names())
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
        populated = connection.execute(text("SELECT 1 FROM accounts LIMIT 1")).first() is not None
        if populated and not replace:
            raise SeedRefused("the database already holds accounts; pass replace=True to start over")
        if not replace:
            return
        if connection.dialect.name == "postgresql":
            # TRUNCATE is instant and restarts the id sequences, so a replaced base is identical too.
            connection.execute(text(f"TRUNCATE TABLE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


@dataclass(frozen=True)
class _Plan:
    """What every chunk shares: sizes, id widths, the CSM pool and the calendar."""

    seed: int
    days: int
    as_of: date
    high_touch_arr: float
    chunk: int
    account_width: int
    contact_width: int
    csms: tuple[str, ...]

    @classmethod
    def make(cls, *, accounts: int, seed: int, days: int, as_of: date, high_touch_arr: float) -> _Plan:
        n_csms = max(1, round(accounts / ACCOUNTS_PER_CSM))
        width = max(2, len(str(n_csms)))
        return cls(
            seed=seed,
            days=days,
            as_of=as_of,
            high_touch_arr=high_touch_arr,
            chunk=max(1_000, min(MAX_CHUNK_ACCOUNTS, CHUNK_CELLS // max(days, 1))),
            account_width=max(6, len(str(accounts))),
            contact_width=max(7, len(str(5 * accounts))),
            csms=tuple(f"csm{i:0{width}d}@vendor.example" for i in range(1, n_csms + 1)),
        )


def _day_strings(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.object_]:
    return np.datetime_as_string(days, unit="D").astype(object)


def _nullable(values: npt.NDArray[Any], mask: BoolArray) -> list[Any]:
    out = values.astype(object)
    out[~mask] = None
    listed: list[Any] = out.tolist()
    return listed


def _next_anniversary(start: npt.NDArray[np.datetime64], as_of: np.datetime64) -> npt.NDArray[np.datetime64]:
    """The first anniversary of each start date strictly after as_of (Feb 29 falls back to Feb 28)."""
    year = start.astype("M8[Y]")
    month = start.astype("M8[M]")
    month_of_year = (month - year.astype("M8[M]")).astype(np.int64)
    day_of_month = (start - month.astype("M8[D]")).astype(np.int64)

    def anniversary(years: npt.NDArray[np.datetime64]) -> npt.NDArray[np.datetime64]:
        first = years.astype("M8[M]") + month_of_year
        length = ((first + 1).astype("M8[D]") - first.astype("M8[D]")).astype(np.int64)
        day: npt.NDArray[np.datetime64] = first.astype("M8[D]") + np.minimum(day_of_month, length - 1)
        return day

    offset = np.maximum((as_of.astype("M8[Y]") - year).astype(np.int64), 1)
    candidate = anniversary(year + offset)
    later: npt.NDArray[np.datetime64] = np.where(candidate > as_of, candidate, anniversary(year + offset + 1))
    return later


def _generate_chunk(
    plan: _Plan, index: int, first: int, n: int, *, contact_offset: int
) -> dict[str, list[list[Any]]]:
    """Column lists for every table, for accounts first+1 .. first+n."""
    rng = np.random.default_rng([plan.seed, index])
    as_of = np.datetime64(plan.as_of, "D")
    updated_at = f"{plan.as_of.isoformat()} 00:00:00.000000"

    # --- accounts -------------------------------------------------------------------------
    numbers = np.arange(first + 1, first + n + 1)
    ids = np.array([f"A{i:0{plan.account_width}d}" for i in numbers.tolist()], dtype=object)
    brand = rng.integers(0, len(BRANDS), n)
    industry = rng.integers(0, len(INDUSTRIES), n)
    names = [
        f"{BRANDS[b]} {INDUSTRIES[i]} {k}" for b, i, k in zip(brand, industry, numbers.tolist(), strict=True)
    ]
    slugs = [name.lower().replace(" ", "-") for name in names]
    arr = np.round(rng.lognormal(np.log(6_000), 1.5, n), -1).clip(100)
    high_touch = arr >= plan.high_touch_arr

    kind = rng.random(n)
    days_ago = np.where(
        kind < 0.01,
        -rng.integers(1, 31, n),  # signed, starting soon
        np.where(
            kind < 0.04,
            rng.integers(1, 31, n),  # onboarding
            31 + np.floor((3 * 365 - 31) * rng.random(n) ** 1.3).astype(np.int64),
        ),
    )
    start = as_of - days_ago.astype("m8[D]")
    renewal = _next_anniversary(start, as_of)

    csm_index = rng.integers(0, len(plan.csms), n)
    has_csm = high_touch | (rng.random(n) >= 0.10)
    csm = _nullable(np.array(plan.csms, dtype=object)[csm_index], has_csm)
    zone_names = np.array([z for z, _ in TIMEZONES], dtype=object)
    zone_weights = np.array([w for _, w in TIMEZONES])
    zones = zone_names[rng.choice(len(TIMEZONES), n, p=zone_weights / zone_weights.sum())]
    paused = rng.random(n) < 0.01
    paused_until = as_of + rng.integers(1, 31, n).astype("m8[D]")

    accounts = [
        ids.tolist(),
        names,
        np.where(high_touch, "high_touch", "tech_touch").astype(object).tolist(),
        arr.tolist(),
        _day_strings(start).tolist(),
        _day_strings(renewal).tolist(),
        csm,
        zones.tolist(),
        _nullable(_day_strings(paused_until), paused),
        [0] * n,
        [updated_at] * n,
        [shard_key(account_id) for account_id in ids.tolist()],
    ]

    # --- contacts -------------------------------------------------------------------------
    share = np.clip(0.15 + 0.15 * np.log10(arr / 2_000), 0.05, 0.9)
    per_account = 1 + rng.binomial(4, share)
    m = int(per_account.sum())
    owner = np.repeat(np.arange(n), per_account)
    position = np.arange(m) - np.repeat(np.cumsum(per_account) - per_account, per_account)
    contact_ids = np.array(
        [f"C{i:0{plan.contact_width}d}" for i in range(contact_offset + 1, contact_offset + m + 1)],
        dtype=object,
    )
    # A stride coprime to the list length gives the contacts of one account distinct first names.
    first_name = (rng.integers(0, len(FIRST_NAMES), n)[owner] + 7 * position) % len(FIRST_NAMES)
    last_name = rng.integers(0, len(LAST_NAMES), m)
    roles = np.array(OTHER_ROLES, dtype=object)[rng.choice(3, m, p=OTHER_ROLE_WEIGHTS)]
    roles[position == 0] = "admin"
    has_phone = rng.random(m) < 0.6
    area = np.array(AREA_CODES)[rng.integers(0, len(AREA_CODES), m)]
    line = rng.integers(0, 100, m)
    email_consent = rng.random(m) < 0.97
    sms_consent = has_phone & (rng.random(m) < 0.5)
    own_zone = rng.random(m) < 0.08
    contact_zone = np.where(own_zone, zone_names[rng.integers(0, len(TIMEZONES) - 1, m)], zones[owner])
    contact_names: list[str] = []
    emails: list[str] = []
    for f, last, acc in zip(first_name.tolist(), last_name.tolist(), owner.tolist(), strict=True):
        contact_names.append(f"{FIRST_NAMES[f]} {LAST_NAMES[last]}")
        emails.append(f"{FIRST_NAMES[f].lower()}.{LAST_NAMES[last].lower()}@{slugs[acc]}.example.com")

    # Unsubscribes come from contacts without email consent, STOPs from phones without SMS consent.
    unsubscribed = ~email_consent & (rng.random(m) < 0.3)
    stopped = has_phone & ~sms_consent & (rng.random(m) < 0.05)

    contacts = [
        contact_ids.tolist(),
        ids[owner].tolist(),
        contact_names,
        emails,
        [f"+1{a}55501{x:02d}" if p else None for a, x, p in zip(area, line, has_phone, strict=True)],
        roles.tolist(),
        email_consent.astype(int).tolist(),
        sms_consent.astype(int).tolist(),
        contact_zone.tolist(),
        [updated_at] * m,
    ]

    # --- usage ----------------------------------------------------------------------------
    usage, pattern = _usage(rng, plan, n, arr, start, ids)

    # --- events ---------------------------------------------------------------------------
    events, suppressions = _events(
        rng,
        plan,
        ids=ids,
        start=start,
        renewal=renewal,
        pattern=pattern,
        contact_ids=contact_ids,
        owner=owner,
        per_account=per_account,
        unsubscribed=unsubscribed,
        stopped=stopped,
    )
    return {
        "accounts": accounts,
        "contacts": contacts,
        "usage_daily": usage,
        "events": events,
        "suppressions": suppressions,
    }


NORMAL, DROP, DARK = 0, 1, 2


def _usage(
    rng: np.random.Generator,
    plan: _Plan,
    n: int,
    arr: FloatArray,
    start: npt.NDArray[np.datetime64],
    ids: npt.NDArray[np.object_],
) -> tuple[list[list[Any]], IntArray]:
    """Daily usage as (accounts x days) matrices: ramp, weekly rhythm, dips, drops, silence."""
    d = plan.days
    as_of = np.datetime64(plan.as_of, "D")
    dates = as_of - np.arange(d, 0, -1).astype("m8[D]")
    t = np.arange(d)
    start_index = (start - dates[0]).astype(np.int64) if d else np.zeros(n, dtype=np.int64)

    kind = rng.random(n)
    pattern = np.where(kind < 0.08, DROP, np.where(kind < 0.11, DARK, NORMAL)).astype(np.int64)
    seats = np.maximum(1, np.round((arr / 1_200) ** 0.75)).astype(np.int64)
    engagement = rng.beta(5, 3, n)
    ramp_days = rng.integers(10, 35, n)
    slope = rng.normal(0, 0.1, n)
    logins_per_user = rng.uniform(1.0, 2.5, n)
    actions_per_user = rng.gamma(2.0, 3.0, n)
    has_dip = rng.random(n) < 0.12
    dip_start = rng.integers(0, max(d, 1), n)
    dip_length = rng.integers(5, 15, n)
    dip_factor = rng.uniform(0.4, 0.7, n)
    drop_at = d - 30 + rng.integers(0, 10, n)
    drop_factor = rng.uniform(0.05, 0.45, n)
    fade_factor = rng.uniform(0.2, 0.7, n)

    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    month_day = (dates.astype("M8[D]") - dates.astype("M8[M]")).astype(np.int64) + 1
    month = (dates.astype("M8[M]") - dates.astype("M8[Y]").astype("M8[M]")).astype(np.int64) + 1
    holidays = ((month == 12) & (month_day >= 22)) | ((month == 1) & (month_day <= 2))
    calendar = WEEKDAY_FACTOR[weekday] * np.where(holidays, 0.55, 1.0)

    since_start = t[None, :] - start_index[:, None]
    rate = engagement[:, None] * calendar[None, :]
    rate = rate * np.clip((since_start + 1) / ramp_days[:, None], 0.05, 1.0)
    rate *= np.exp(slope[:, None] * (t[None, :] / max(d, 1) - 0.5) * 2)
    in_dip = (
        has_dip[:, None]
        & (t[None, :] >= dip_start[:, None])
        & (t[None, :] < (dip_start + dip_length)[:, None])
    )
    rate = np.where(in_dip, rate * dip_factor[:, None], rate)
    dropped = (pattern == DROP)[:, None] & (t[None, :] >= drop_at[:, None])
    rate = np.where(dropped, rate * drop_factor[:, None], rate)
    dark = (pattern == DARK)[:, None]
    rate = np.where(dark & (t[None, :] >= d - 30), rate * fade_factor[:, None], rate)
    rate = np.where(dark & (t[None, :] >= d - 14), 0.0, rate)
    del in_dip, dropped

    active = rng.binomial(np.broadcast_to(seats[:, None], rate.shape), np.clip(rate, 0.0, 1.0))
    logins = rng.poisson(active * logins_per_user[:, None])
    actions = rng.poisson(active * actions_per_user[:, None])
    del rate

    rows, cols = np.nonzero(since_start >= 0)
    day_names = _day_strings(dates)
    usage = [
        ids[rows].tolist(),
        day_names[cols].tolist(),
        active[rows, cols].tolist(),
        logins[rows, cols].tolist(),
        actions[rows, cols].tolist(),
    ]
    return usage, pattern


def _events(
    rng: np.random.Generator,
    plan: _Plan,
    *,
    ids: npt.NDArray[np.object_],
    start: npt.NDArray[np.datetime64],
    renewal: npt.NDArray[np.datetime64],
    pattern: IntArray,
    contact_ids: npt.NDArray[np.object_],
    owner: IntArray,
    per_account: IntArray,
    unsubscribed: BoolArray,
    stopped: BoolArray,
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Milestones, survey answers, signatures, email engagement and opt-outs, all before as_of."""
    n, m = len(ids), len(contact_ids)
    as_of = int(np.datetime64(plan.as_of, "D").astype(np.int64))
    start_day = start.astype(np.int64)
    renewal_day = renewal.astype(np.int64)
    first_contact = np.cumsum(per_account) - per_account  # the admin
    accounts_index = np.arange(n)

    kinds: list[tuple[IntArray, IntArray, IntArray, str, npt.NDArray[np.object_]]] = []

    def add(
        acc: IntArray, contact: IntArray, day: IntArray, type_: str, value: Sequence[Any] | str | None
    ) -> IntArray:
        """Keep the events that fall between the account's start and as_of; return their seconds."""
        keep = (day >= start_day[acc]) & (day < as_of)
        values = np.empty(len(acc), dtype=object)
        values[:] = value if isinstance(value, str) or value is None else list(value)
        seconds = day * 86_400 + rng.integers(13 * 3_600, 22 * 3_600, len(acc))
        kinds.append((acc[keep], contact[keep], seconds[keep], type_, values[keep]))
        return np.where(keep, seconds, -1)

    def random_contact(acc: IntArray) -> IntArray:
        return first_contact[acc] + np.floor(rng.random(len(acc)) * per_account[acc]).astype(np.int64)

    none = np.full(n, -1)
    configured = rng.random(n) < 0.93
    configured_day = start_day + rng.integers(1, 15, n)
    add(
        accounts_index[configured],
        first_contact[configured],
        configured_day[configured],
        "milestone",
        "configured",
    )
    trained = rng.random(n) < 0.75
    trained_day = (start_day + rng.integers(2, 21, n))[trained]
    add(accounts_index[trained], random_contact(accounts_index[trained]), trained_day, "milestone", "trained")
    live = configured & (rng.random(n) < 0.88)
    live_day = np.where(live, configured_day + rng.integers(7, 15, n), as_of + 1)
    add(accounts_index[live], none[live], live_day[live], "milestone", "live")

    nps = (rng.random(n) < 0.25) & live
    nps_day = as_of - rng.integers(1, 181, n)
    nps = nps & (nps_day > live_day)
    scores = rng.choice(11, n, p=NPS_WEIGHTS / NPS_WEIGHTS.sum())
    add(
        accounts_index[nps],
        random_contact(accounts_index[nps]),
        nps_day[nps],
        "survey",
        [f"nps:{s}" for s in scores[nps].tolist()],
    )
    csat = rng.random(n) < 0.2
    csat_scores = 1 + rng.choice(5, n, p=CSAT_WEIGHTS / CSAT_WEIGHTS.sum())
    add(
        accounts_index[csat],
        random_contact(accounts_index[csat]),
        (as_of - rng.integers(1, 121, n))[csat],
        "survey",
        [f"csat:{s}" for s in csat_scores[csat].tolist()],
    )

    # Renewal answers arrive once the renewal window (120 days before renewal) has opened.
    window_open = renewal_day - 120
    answered = (window_open < as_of) & (rng.random(n) < 0.45)
    answer_day = window_open + np.floor(rng.random(n) * np.maximum(as_of - window_open, 1)).astype(np.int64)
    troubled = pattern != NORMAL
    u = rng.random(n)
    answer = np.where(
        troubled,
        np.where(u < 0.25, 0, np.where(u < 0.6, 1, 2)),
        np.where(u < 0.6, 0, np.where(u < 0.85, 1, 2)),
    )
    add(
        accounts_index[answered],
        first_contact[answered],
        answer_day[answered],
        "survey",
        [f"renewal:{RENEWAL_ANSWERS[a]}" for a in answer[answered].tolist()],
    )
    signed = answered & (answer == 0) & (renewal_day - as_of <= 60) & (rng.random(n) < 0.5)
    signed_day = answer_day + rng.integers(1, 21, n)
    add(accounts_index[signed], first_contact[signed], signed_day[signed], "renewal_signed", None)

    opens = rng.poisson(0.8, n)
    opened_acc = np.repeat(accounts_index, opens)
    opened_contact = random_contact(opened_acc)
    opened_seconds = add(
        opened_acc, opened_contact, as_of - rng.integers(1, 31, len(opened_acc)), "email_opened", None
    )
    clicked = (opened_seconds >= 0) & (rng.random(len(opened_acc)) < 0.3)
    click_seconds = opened_seconds[clicked] + rng.integers(10, 900, int(clicked.sum()))
    kinds.append(
        (
            opened_acc[clicked],
            opened_contact[clicked],
            click_seconds,
            "email_clicked",
            np.full(int(clicked.sum()), None, dtype=object),
        )
    )

    contacts_index = np.arange(m)
    opt_out_day = as_of - rng.integers(1, 366, m)
    unsub_seconds = add(
        owner[unsubscribed], contacts_index[unsubscribed], opt_out_day[unsubscribed], "unsubscribed", None
    )
    stop_seconds = add(owner[stopped], contacts_index[stopped], opt_out_day[stopped], "sms_stop", None)

    acc = np.concatenate([k[0] for k in kinds]).astype(np.int64)
    contact = np.concatenate([k[1] for k in kinds]).astype(np.int64)
    seconds = np.concatenate([k[2] for k in kinds]).astype(np.int64)
    types = np.concatenate([np.full(len(k[0]), k[3], dtype=object) for k in kinds])
    values = np.concatenate([k[4] for k in kinds])
    order = np.lexsort((np.arange(len(acc)), seconds, acc))  # by account, then time; stable
    acc, contact, seconds, types, values = (
        acc[order],
        contact[order],
        seconds[order],
        types[order],
        values[order],
    )

    iso = np.datetime_as_string(seconds.astype("M8[s]"), unit="s").astype(object)
    account_ids = ids[acc]
    contact_list = _nullable(contact_ids[np.maximum(contact, 0)], contact >= 0)
    keys: list[str] = []
    stored: list[str] = []
    seen: set[str] = set()
    keep: list[int] = []
    for i, (a, c, when, type_, value) in enumerate(
        zip(account_ids.tolist(), contact_list, iso.tolist(), types.tolist(), values.tolist(), strict=True)
    ):
        # The importer's own event key, so re-importing seeded events changes nothing.
        key = event_key_from_iso(a, c, f"{when}+00:00", type_, value)
        if key in seen:  # the same contact doing the same thing in the same second
            continue
        seen.add(key)
        keep.append(i)
        keys.append(key)
        stored.append(f"{when[:10]} {when[11:]}.000000")
    picked = np.array(keep, dtype=np.int64)
    events = [
        keys,
        account_ids[picked].tolist(),
        [contact_list[i] for i in keep],
        stored,
        types[picked].tolist(),
        values[picked].tolist(),
        ["seed"] * len(keep),
    ]

    def since(seconds_: IntArray) -> list[str]:
        text_ = np.datetime_as_string(seconds_.astype("M8[s]"), unit="s").astype(object)
        return [f"{w[:10]} {w[11:]}.000000" for w in text_.tolist()]

    unsub_ok = unsub_seconds >= 0
    stop_ok = stop_seconds >= 0
    suppressions = [
        contact_ids[unsubscribed][unsub_ok].tolist() + contact_ids[stopped][stop_ok].tolist(),
        ["email"] * int(unsub_ok.sum()) + ["sms"] * int(stop_ok.sum()),
        ["unsubscribed"] * int(unsub_ok.sum()) + ["sms_stop"] * int(stop_ok.sum()),
        since(unsub_seconds[unsub_ok]) + since(stop_seconds[stop_ok]),
    ]
    return events, suppressions
