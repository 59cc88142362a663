"""The last rung gets time to work (issue 13, point 3), on SQLite and PostgreSQL.

A milestone whose ladder ran out keeps its branches armed for `respond_within` days (default 14)
after its last rung: the journey may move on to its next milestone, but it does not finish while a
window is open, and an answer inside the window fires that milestone's branches; a later one is
ignored. D0 is a Monday; the advocacy NPS ladder mails on day 0 and reminds on day 4 (no CTA rung).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from techtouch.adapters.db.models import Cta, Enrollment, Touch
from techtouch.domain.catalog import load_catalog
from tests.integration.journey_base import Base, account, contact, settings_for

D0 = date(2027, 1, 4)  # a Monday
REMINDER = 4  # advocacy's nps/email2 goes out on day 4: the ladder has run out


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    return Base(engine, settings_for(engine, tmp_path / "outbox"))


def live_account(base: Base, account_id: str = "a1") -> None:
    """A healthy account live for 120 days: advocacy enrolls it on D0."""
    base.add([account(account_id)], [contact(f"c{account_id}", account_id)])
    base.event(account_id, "milestone", "live", D0 - timedelta(days=120))


def answer(base: Base, day: int, survey: str, value: str, account_id: str = "a1") -> None:
    """An answer the run of `day` sees (it arrived the evening before)."""
    base.event(account_id, "survey", f"{survey}:{value}", D0 + timedelta(days=day - 1))


def ladder(engine: Engine, account_id: str = "a1") -> list[tuple[int, str, str, str]]:
    with Session(engine) as c:
        touches = c.execute(select(Touch).where(Touch.account_id == account_id).order_by(Touch.id)).scalars()
        return [((t.as_of - D0).days, t.milestone, t.rung, t.channel) for t in touches]


def enrollment(engine: Engine, account_id: str = "a1") -> Enrollment:
    with Session(engine) as c:
        return (
            c.execute(
                select(Enrollment)
                .where(Enrollment.account_id == account_id)
                .order_by(Enrollment.cycle.desc())
            )
            .scalars()
            .first()
        )  # type: ignore[return-value]


def run(base: Base, first: int, last: int, *journeys: str) -> dict[int, tuple[str, str | None]]:
    """Run days first..last; the enrollment's (status, exit_reason) after each."""
    seen = {}
    for day in range(first, last + 1):
        base.run(D0 + timedelta(days=day), *journeys)
        e = enrollment(base.engine)
        seen[day] = (e.status, e.exit_reason)
    return seen


def test_a_detractor_answering_a_week_after_the_reminder_gets_the_follow_up(base: Base) -> None:
    live_account(base)
    run(base, 0, REMINDER + 6, "advocacy")
    answer(base, REMINDER + 7, "nps", "3")  # a week after the reminder
    run(base, REMINDER + 7, REMINDER + 8, "advocacy")
    assert ladder(base.engine) == [
        (0, "nps", "email", "email"),
        (REMINDER, "nps", "email2", "email"),
        (REMINDER + 7, "nps", "branch_detractor", "cta"),
    ]
    with Session(base.engine) as c:
        cta = c.execute(select(Cta)).scalar_one()
    assert (cta.reason, cta.priority, cta.status) == ("advocacy_detractor", "high", "open")
    e = enrollment(base.engine)
    assert (e.status, e.exit_reason, e.exited_as_of) == (
        "completed",
        "nps_branch",
        D0 + timedelta(days=REMINDER + 7),
    )


def test_the_journey_does_not_finish_while_a_window_is_open(base: Base) -> None:
    live_account(base)
    seen = run(base, 0, REMINDER + 16, "advocacy")
    # The reminder day moves on to the next milestone (the advocate ask is skipped: no promoter),
    # but the journey stays active for the 14 days of the NPS window, and finishes on its last day.
    assert all(seen[d] == ("active", None) for d in range(0, REMINDER + 14)), seen
    assert seen[REMINDER + 14] == ("completed", "finished")
    e = enrollment(base.engine)
    assert e.exited_as_of == D0 + timedelta(days=REMINDER + 14)
    assert ladder(base.engine) == [(0, "nps", "email", "email"), (REMINDER, "nps", "email2", "email")]


def test_an_answer_on_the_windows_last_day_still_counts_and_one_after_it_is_ignored(base: Base) -> None:
    live_account(base, "a1")
    live_account(base, "a2")
    run(base, 0, REMINDER + 13, "advocacy")
    answer(base, REMINDER + 14, "nps", "2", "a1")  # the window's last day
    answer(base, REMINDER + 15, "nps", "2", "a2")  # the day after
    run(base, REMINDER + 14, REMINDER + 17, "advocacy")
    assert ladder(base.engine, "a1")[-1] == (REMINDER + 14, "nps", "branch_detractor", "cta")
    assert [t[2] for t in ladder(base.engine, "a2")] == ["email", "email2"]
    a2 = enrollment(base.engine, "a2")
    assert (a2.status, a2.exit_reason, a2.exited_as_of) == (
        "completed",
        "finished",
        D0 + timedelta(days=REMINDER + 14),
    )
    with Session(base.engine) as c:
        assert [x.account_id for x in c.execute(select(Cta)).scalars()] == ["a1"]


PULSE = """\
id: pulse
name: Pulse
priority: 50
recipients: [admin]
enter_when: "milestone.live"
milestones:
  - id: nps
    done_when: "survey.nps is answered"
    respond_within: 3d
    ladder:
      - {id: email, channel: email, template: advocacy/nps, sender: csm}
      - {id: email2, channel: email, template: advocacy/nps_reminder, sender: success, after: 4d}
    branches:
      - id: detractor
        when: "survey.nps <= 6"
        cta: {title: "Detractor: follow up", reason: pulse_detractor, priority: high}
  - id: ask
    after: 1d
    done_when: "survey.advocate is answered"
    ladder:
      - {id: email, channel: email, template: advocacy/advocate_ask, sender: vp_cs}
    branches:
      - id: agreed
        when: "survey.advocate == 'yes'"
        message: {template: advocacy/thanks_gift, sender: vp_cs}
"""


@pytest.fixture
def pulse(base: Base, tmp_path: Path) -> Base:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "pulse.yaml").write_text(PULSE)
    base.catalog = load_catalog([folder])
    return base


def test_the_journey_moves_on_and_a_late_answer_fires_the_earlier_milestones_branch(pulse: Base) -> None:
    live_account(pulse)
    run(pulse, 0, 6)  # nps: day 0 and 4; ask: day 5 (its window runs to day 19)
    answer(pulse, 7, "nps", "4")  # day 7: the nps window's last day, the journey is at `ask`
    seen = run(pulse, 7, 9)
    assert ladder(pulse.engine) == [
        (0, "nps", "email", "email"),
        (4, "nps", "email2", "email"),
        (5, "ask", "email", "email"),
        (7, "nps", "branch_detractor", "cta"),
    ]
    assert seen[9] == ("active", None)  # `ask`'s own window is still open


def test_an_answer_after_its_window_is_ignored_while_the_journey_waits_on_another(pulse: Base) -> None:
    live_account(pulse)
    run(pulse, 0, 7)
    answer(pulse, 8, "nps", "1")  # the nps window closed on day 7
    seen = run(pulse, 8, 11)
    assert seen[11] == ("active", None)  # waiting on `ask`'s window (day 5 + 14)
    answer(pulse, 12, "advocate", "yes")  # inside `ask`'s window: its branch fires, then it finishes
    seen |= run(pulse, 12, 13)
    assert ladder(pulse.engine) == [
        (0, "nps", "email", "email"),
        (4, "nps", "email2", "email"),
        (5, "ask", "email", "email"),
        (12, "ask", "branch_agreed", "email"),
    ]
    assert seen[12] == ("completed", "finished")
    with Session(pulse.engine) as c:
        assert c.execute(select(Cta)).scalars().all() == []
