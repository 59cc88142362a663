"""decide(): a pure, vectorized function of (state frame, journey, day) → new positions and actions.

Loops run over the journey's milestones and rungs (a handful), never over accounts: each
step is a boolean mask over the whole frame. Days are integer ordinals inside, so that
waits are plain additions.

Rules (DESIGN.md §3, issue "Journey engine"):
- one action (touch, branch or goal message) per enrollment per run; a rerun of the same
  day changes nothing (`last_touch_as_of`);
- a rung goes out only if its milestone is still not done when the rung is due;
- paused accounts are frozen: no touch, no escalation; the ladder resumes where it was;
- high-touch accounts get a CTA for the CSM instead of automated email/SMS;
- SMS needs a reachable phone, else the rung is skipped; a contact no channel reaches
  sends the ladder straight to its CTA;
- a milestone whose ladder ran out (done_when still false) keeps its branches armed for its
  `respond_within` days after its last rung: the journey moves on to its next milestone, but
  does not finish while such a window is open, and an answer inside the window fires that
  milestone's branches (once). Windows are derived from the touches (`last_rung@<milestone>`,
  `branched@<milestone>` columns of the frame: adapters.db.state.load_engagement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from techtouch.domain.catalog import CompiledJourney, CompiledMilestone
from techtouch.domain.conditions import Condition
from techtouch.domain.spec import CtaSpec, Message, Rung
from techtouch.domain.statuses import ENDED_ENROLLMENT_STATUSES, EnrollmentPhase, EnrollmentStatus
from techtouch.domain.vocabulary import CTA_FIELDS

ACTION_COLUMNS = [
    "account_id",
    "cycle",
    "milestone",
    "rung",
    "kind",
    "channel",
    "template",
    "sender",
    "title",
    "reason",
    "priority",
    "due_in",
    "flag",
    "why",
    "outcomes",
]
NONE = -1  # "no date" as an ordinal
BRANCH_PREFIX = "branch_"  # a branch's touches are rung `branch_<id>`: everything else is the ladder's
GOAL_MILESTONE = "goal"  # the milestone of a goal's touches
REQUEST_MILESTONE = "request"  # the milestone of a customer request's CTA touch (rung: the request id)
NOT_ENROLLED = "none"  # the status of an account never enrolled in the journey (never written)
ACTIVE = EnrollmentStatus.ACTIVE


@dataclass
class Decision:
    """Positions to write (`enrollments`, one row per changed enrollment) and `actions` to take."""

    journey: str
    as_of: date
    first_milestone: str
    enrollments: pd.DataFrame
    actions: pd.DataFrame
    counts: dict[str, int]
    # Per milestone with a done_when: the accounts (index) for which it holds at the end of the
    # run. A run closes the ladder CTAs of a milestone that got done (services.cta_sync).
    done_now: dict[str, pd.Index] = field(default_factory=dict)


def _ordinal(series: pd.Series) -> np.ndarray:
    """Dates (or None) → int ordinals (NONE for missing)."""
    out = np.full(len(series), NONE, dtype=np.int64)
    values = pd.to_datetime(series, errors="coerce")
    mask = values.notna().to_numpy()
    if mask.any():
        out[mask] = (values[mask].to_numpy().astype("datetime64[D]").astype(np.int64)) + _EPOCH
    return out


_EPOCH = date(1970, 1, 1).toordinal()


class _Run:
    """Mutable working state of one decide() call; every attribute is a column over all rows."""

    def __init__(self, frame: pd.DataFrame, journey: CompiledJourney, as_of: date):
        self.frame = frame
        self.journey = journey
        self.day = as_of.toordinal()
        self.index = frame.index
        n = len(frame)
        milestone_ids = [m.spec.id for m in journey.milestones]
        status = frame["e_status"].fillna(NOT_ENROLLED).to_numpy(dtype=object)
        self.status = status.copy()
        self.cycle = frame["e_cycle"].fillna(0).to_numpy(dtype=np.int64).copy()
        position = (
            pd.Categorical(frame["e_milestone"], categories=milestone_ids).codes.astype(np.int64).copy()
        )
        self.milestone = position
        self.phase = frame["e_phase"].fillna(EnrollmentPhase.PENDING).to_numpy(dtype=object).copy()
        self.step = frame["e_step"].fillna(0).to_numpy(dtype=np.int64).copy()
        self.next_due = _ordinal(frame["e_next_due"])
        self.since = _ordinal(frame["e_milestone_since"])
        self.entered = _ordinal(frame["e_entered_as_of"])
        self.exited = _ordinal(frame["e_exited_as_of"])
        self.last_touch = _ordinal(frame["e_last_touch_as_of"])
        self.exit_reason = frame["e_exit_reason"].to_numpy(dtype=object).copy()
        self.entry = frame["e_entry"].to_numpy(dtype=object).copy()
        self.is_new = np.zeros(n, dtype=bool)
        self.changed = np.zeros(n, dtype=bool)
        self.acted = np.zeros(n, dtype=bool)
        self.actions: list[pd.DataFrame] = []
        self.skipped: dict[str, int] = {"paused": 0, "sms_unreachable": 0, "unreachable": 0}
        self.high_touch = (frame["segment"] == "high_touch").to_numpy()
        self.email_ok = frame["n_email_ok"].fillna(0).to_numpy() > 0
        self.sms_ok = frame["n_sms_ok"].fillna(0).to_numpy() > 0
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._views: dict[int, pd.DataFrame] = {}
        self.cta_reasons = sorted(journey.cta_reasons())
        self.raised: dict[str, np.ndarray] = {}  # reason → rows this run raised a CTA of it for
        # Response windows (module docstring): per milestone that arms its branches, the day its
        # ladder last took a rung and whether a branch fired, both kept current as this run acts.
        self.index_of = {m.spec.id: mi for mi, m in enumerate(journey.milestones)}
        self.windows = [(mi, m) for mi, m in enumerate(journey.milestones) if m.response_window is not None]
        self.last_rung: dict[int, np.ndarray] = {}
        self.branched: dict[int, np.ndarray] = {}
        for mi, m in self.windows:
            last = frame.get(f"last_rung@{m.spec.id}")
            fired = frame.get(f"branched@{m.spec.id}")
            self.last_rung[mi] = _ordinal(last) if last is not None else np.full(n, NONE, dtype=np.int64)
            self.branched[mi] = (
                fired.fillna(False).to_numpy(dtype=bool).copy()
                if fired is not None
                else np.zeros(n, dtype=bool)
            )

    # -- conditions ------------------------------------------------------------------------

    def view(self, milestone_index: int) -> pd.DataFrame:
        """The frame with the enrollment-relative names (opened, days_in_milestone, cta.* …) filled in."""
        if milestone_index not in self._views:
            self._views[milestone_index] = self.frame.assign(
                days_in_journey=np.where(self.entered == NONE, np.nan, self.day - self.entered),
                days_in_milestone=np.where(self.since == NONE, np.nan, self.day - self.since),
                **self._engagement(milestone_index),
                **self._entry_columns(),
                **self._cta_columns(),
            )
        return self._views[milestone_index]

    def eval(self, condition: Any, milestone_index: int) -> np.ndarray:
        key = (id(condition), milestone_index)
        if key not in self._cache:
            self._cache[key] = condition.evaluate(self.view(milestone_index)).to_numpy(dtype=bool)
        return self._cache[key]

    def _cta_columns(self) -> dict[str, Any]:
        """`cta.<reason>.<field>` as this enrollment sees it: a CTA raised before the enrollment
        entered belongs to an earlier cycle (missing); one raised by this very run is open."""
        columns: dict[str, Any] = {}
        n = len(self.index)
        for reason in self.cta_reasons:
            created = self.frame.get(f"cta_created.{reason}")
            born = _ordinal(created) if created is not None else np.full(n, NONE, dtype=np.int64)
            stale = (self.entered != NONE) & (born != NONE) & (born < self.entered)
            raised = self.raised.get(reason, np.zeros(n, dtype=bool))
            for name in CTA_FIELDS:
                column = f"cta.{reason}.{name}"
                source = self.frame.get(column)
                if name == "days_open":
                    values: np.ndarray = (
                        source.to_numpy(dtype=float).copy() if source is not None else np.full(n, np.nan)
                    )
                    values[stale] = np.nan
                    values[raised] = 0.0
                else:
                    values = (
                        source.to_numpy(dtype=object).copy()
                        if source is not None
                        else np.full(n, None, dtype=object)
                    )
                    values[stale] = None
                    values[raised] = {"status": "open"}.get(name)
                columns[column] = values
        return columns

    def why(
        self, mask: np.ndarray, condition: Condition | None, milestone_index: int, **extra: Any
    ) -> list[Any]:
        """Per row of `mask`: the condition's text and the values of the names it read, now."""
        count = int(mask.sum())
        if condition is None:
            return [dict(extra) for _ in range(count)]
        values = condition.explain_rows(self.view(milestone_index), mask)
        return [{"condition": condition.source, "values": v, **extra} for v in values]

    def _engagement(self, milestone_index: int) -> dict[str, Any]:
        if milestone_index < 0:
            return {"opened": False, "clicked": False}
        m = self.journey.milestones[milestone_index].spec.id
        return {
            "opened": self.frame.get(f"opened@{m}", False),
            "clicked": self.frame.get(f"clicked@{m}", False),
        }

    def _entry_columns(self) -> dict[str, Any]:
        return {
            f"entry.{name}": [e.get(name) if isinstance(e, dict) else np.nan for e in self.entry]
            for name in self.journey.entry_columns
        }

    def invalidate(self) -> None:
        self._cache.clear()
        self._views.clear()

    # -- transitions -----------------------------------------------------------------------

    def add_action(self, mask: np.ndarray, **values: Any) -> None:
        if not mask.any():
            return
        rows = pd.DataFrame({"account_id": self.index[mask], "cycle": self.cycle[mask]})
        for column in ACTION_COLUMNS[2:]:
            value = values.get(column)
            rows[column] = pd.Series(value, dtype=object) if isinstance(value, list) else value
        self.actions.append(rows)
        reason = values.get("reason")
        if values.get("channel") == "cta" and reason in self.cta_reasons:
            self.raised[reason] = self.raised.get(reason, np.zeros(len(self.index), dtype=bool)) | mask
            self.invalidate()
        mi = self.index_of.get(values.get("milestone", ""), NONE)
        if mi in self.last_rung:  # what the touches will say tomorrow (load_engagement)
            if str(values.get("rung", "")).startswith(BRANCH_PREFIX):
                self.branched[mi] |= mask
            else:
                self.last_rung[mi][mask] = self.day

    # -- response windows ------------------------------------------------------------------

    def armed(self, mi: int) -> np.ndarray:
        """Rows whose milestone `mi` ran out of ladder and may still fire its branches today."""
        last = self.last_rung.get(mi)
        window = self.journey.milestones[mi].response_window
        if last is None or window is None:
            return np.zeros(len(self.index), dtype=bool)
        armed: np.ndarray = (last != NONE) & ~self.branched[mi] & (self.day <= last + window)
        return armed

    def waiting(self) -> np.ndarray:
        """Rows with a window still open after today: unanswered, and its last day not reached."""
        open_ = np.zeros(len(self.index), dtype=bool)
        for mi, m in self.windows:
            window = m.response_window or 0
            last = self.last_rung[mi]
            pending = (last != NONE) & ~self.branched[mi] & (self.day < last + window)
            if pending.any() and m.done_when is not None:
                pending &= ~self.eval(m.done_when, mi)
            open_ |= pending
        return open_

    def advance(self, mask: np.ndarray, milestone_index: int) -> None:
        """Move to the next milestone (pending its wait), or finish the journey after the last,
        unless a response window is open: then the position stays, to be tried again tomorrow."""
        if not mask.any():
            return
        milestones = self.journey.milestones
        if milestone_index + 1 < len(milestones):
            self.changed |= mask
            self.milestone[mask] = milestone_index + 1
            self.phase[mask] = EnrollmentPhase.PENDING
            self.step[mask] = 0
            self.next_due[mask] = self.day + milestones[milestone_index + 1].spec.after
            self.since[mask] = self.day
        else:
            self.finish(mask & ~self.waiting(), EnrollmentStatus.COMPLETED, "finished")

    def finish(self, mask: np.ndarray, status: EnrollmentStatus, reason: str) -> None:
        self.status[mask] = status
        self.exit_reason[mask] = reason
        self.exited[mask] = self.day
        self.changed |= mask

    def fire_rung(self, mask: np.ndarray, m: CompiledMilestone, index: int) -> None:
        """Take rung `index` for `mask`; set the next rung's due day from today."""
        if not mask.any():
            return
        ladder = m.spec.ladder
        rung = ladder[index]
        if rung.channel == "cta":
            self._cta_rung(mask, m, rung)
            self._after_rung(mask, m, index)
            return
        first_message = next(i for i, r in enumerate(ladder) if r.channel != "cta")
        high = mask & self.high_touch
        # High-touch: the CSM delivers the milestone personally, once; later message rungs are silent.
        self._personal_cta(high & (index == first_message), m)
        reachable = self.email_ok | self.sms_ok
        channel_ok = self.email_ok if rung.channel == "email" else self.sms_ok
        tech = mask & ~self.high_touch
        send = tech & channel_ok
        self.add_action(
            send,
            milestone=m.spec.id,
            rung=rung.id,
            kind="rung",
            channel=rung.channel,
            template=rung.template,
            sender=rung.sender,
        )
        self.acted |= send
        nobody = tech & ~reachable
        cta_index = m.cta_index
        if cta_index is not None and cta_index > index:
            self._cta_rung(nobody, m, ladder[cta_index], unreachable=True)
            self._after_rung(nobody, m, cta_index)
        else:
            self._after_rung(nobody, m, len(ladder) - 1)
        self.skipped["unreachable"] += int(nobody.sum())
        skip = tech & reachable & ~channel_ok
        self.add_action(
            skip,
            milestone=m.spec.id,
            rung=rung.id,
            kind="skip",
            channel=rung.channel,
            template=rung.template,
            sender=rung.sender,
        )
        self.skipped["sms_unreachable" if rung.channel == "sms" else "unreachable"] += int(skip.sum())
        self._after_rung(mask & ~nobody, m, index)

    def _after_rung(self, mask: np.ndarray, m: CompiledMilestone, index: int) -> None:
        ladder = m.spec.ladder
        self.step[mask] = index + 1
        self.next_due[mask] = self.day + (ladder[index + 1].after if index + 1 < len(ladder) else 0)
        self.changed |= mask

    def _cta_rung(
        self, mask: np.ndarray, m: CompiledMilestone, rung: Rung, *, unreachable: bool = False
    ) -> None:
        extra: dict[str, Any] = {"unreachable": True} if unreachable else {}
        why = self.why(mask, m.done_when, self.index_of[m.spec.id], **extra)
        self.cta(mask, rung, m.spec.id, rung.id, kind="rung", why=why)

    def _personal_cta(self, mask: np.ndarray, m: CompiledMilestone, rung_id: str = "personal") -> None:
        if not mask.any():
            return
        why = self.why(mask, m.done_when, self.index_of[m.spec.id], high_touch=True)
        self.add_action(
            mask,
            milestone=m.spec.id,
            rung=rung_id,
            kind="rung",
            channel="cta",
            title=m.spec.personal_cta_title,
            reason=f"{self.journey.id}.{m.spec.id}",
            priority="medium",
            why=why,
        )
        self.acted |= mask

    def message(
        self,
        mask: np.ndarray,
        message: Message,
        milestone: str,
        rung: str,
        kind: str,
        condition: Condition | None = None,
        milestone_index: int = NONE,
    ) -> None:
        """A one-off message (branch reply, goal thank-you); high-touch gets a CTA instead."""
        high = mask & self.high_touch
        if high.any():
            self.add_action(
                high,
                milestone=milestone,
                rung=rung,
                kind=kind,
                channel="cta",
                title=f"Personal follow-up: {rung.replace('_', ' ')}",
                reason=f"{self.journey.id}.{milestone}.{rung}",
                priority="medium",
                why=self.why(high, condition, milestone_index, high_touch=True, template=message.template),
            )
        tech = mask & ~self.high_touch
        ok = self.email_ok if message.channel == "email" else self.sms_ok
        self.add_action(
            tech & ok,
            milestone=milestone,
            rung=rung,
            kind=kind,
            channel=message.channel,
            template=message.template,
            sender=message.sender,
        )
        self.add_action(
            tech & ~ok,
            milestone=milestone,
            rung=rung,
            kind="skip",
            channel=message.channel,
            template=message.template,
            sender=message.sender,
        )
        self.acted |= mask

    def cta(
        self,
        mask: np.ndarray,
        spec: CtaSpec | Rung,
        milestone: str,
        rung: str,
        kind: str = "branch",
        *,
        why: list[Any],
        acts: bool = True,
    ) -> None:
        """A CTA from a ladder's last rung, a branch or a request; all carry title, reason,
        priority, due_in and outcomes. `acts`: it counts as the enrollment's action of the day
        (a request does not: it answers the customer, it does not message them)."""
        if not mask.any():
            return
        count = int(mask.sum())
        self.add_action(
            mask,
            milestone=milestone,
            rung=rung,
            kind=kind,
            channel="cta",
            title=spec.title,
            reason=spec.reason or f"{self.journey.id}.{milestone}.{rung}",
            priority=spec.priority,
            due_in=spec.due_in,
            template=getattr(spec, "template", None),
            why=why,
            outcomes=[list(spec.outcomes) if spec.outcomes else None] * count,
        )
        if acts:
            self.acted |= mask


def decide(frame: pd.DataFrame, journey: CompiledJourney, as_of: date) -> Decision:
    """New positions and actions for every account of `frame` (see module docstring)."""
    run = _Run(frame, journey, as_of)
    spec = journey.spec
    day = run.day

    # 1. Entry: audience, condition, and re-entry after an earlier enrollment ended.
    in_audience = frame["segment"].isin(spec.audience.segments).to_numpy()
    never = run.status == NOT_ENROLLED
    ended = np.isin(run.status, list(ENDED_ENROLLMENT_STATUSES))
    after = spec.reentry.after_days
    may_reenter = ended & (run.exited != NONE) & (after is not None) & (run.exited + (after or 0) <= day)
    enter = in_audience & (never | may_reenter) & run.eval(journey.enter_when, -1)
    if enter.any():
        run.is_new |= enter
        run.changed |= enter
        run.status[enter] = ACTIVE
        run.cycle[enter] += 1
        run.milestone[enter] = 0
        run.phase[enter] = EnrollmentPhase.PENDING
        run.step[enter] = 0
        run.next_due[enter] = day + journey.milestones[0].spec.after
        run.since[enter] = day
        run.entered[enter] = day
        run.exited[enter] = NONE
        run.last_touch[enter] = NONE
        run.exit_reason[enter] = None
        captured = frame.loc[enter, list(journey.entry_columns)] if journey.entry_columns else None
        entries = (
            captured.astype(float).round(6).to_dict("records")
            if captured is not None
            else [{}] * int(enter.sum())
        )
        for position, values in zip(np.flatnonzero(enter), entries, strict=True):
            run.entry[position] = {k: v for k, v in values.items() if v == v}  # drop NaN
        run.invalidate()

    active = run.status == ACTIVE
    paused = frame["paused"].to_numpy(dtype=bool)
    run.skipped["paused"] = int((active & paused).sum())
    frozen = ~active | paused | (run.last_touch >= day)

    # 2. Goals end the journey (first matching goal wins), optionally with a last message.
    for goal, condition in journey.goals:
        hit = (run.status == ACTIVE) & ~frozen & run.eval(condition, -1)
        if goal.message is not None:
            run.message(hit, goal.message, GOAL_MILESTONE, goal.id, "goal", condition, -1)
        run.finish(hit, EnrollmentStatus.COMPLETED, goal.id)
        frozen |= hit

    # 3. Enrollments older than max_days end without a message.
    if spec.max_days is not None:
        late = (run.status == ACTIVE) & ~frozen & (run.entered != NONE) & (day - run.entered >= spec.max_days)
        run.finish(late, EnrollmentStatus.EXITED, "timeout")
        frozen |= late

    # 4. Answers inside a response window: a milestone behind the current one whose ladder ran
    #    out fires its branches when done_when now holds (one action per run, like any other).
    for mi, m in run.windows:
        behind = (run.status == ACTIVE) & ~frozen & ~run.acted & (run.milestone > mi) & run.armed(mi)
        if behind.any() and m.done_when is not None:
            _fire_branches(run, behind & run.eval(m.done_when, mi), m, mi, late=True)

    # 5. Walk milestones until nothing moves: each pass handles every milestone, vectorized.
    for _ in range(3 * len(journey.milestones) + 3):
        before = (run.milestone.copy(), run.phase.copy(), run.step.copy(), run.status.copy())
        for mi, m in enumerate(journey.milestones):
            here = (run.status == ACTIVE) & ~frozen & (run.milestone == mi)
            if not here.any():
                continue
            pending = here & (run.phase == EnrollmentPhase.PENDING) & (run.next_due <= day)
            if m.skip_when is not None:
                skip = pending & run.eval(m.skip_when, mi)
                run.advance(skip, mi)
                pending &= ~skip
            start = pending & (run.eval(m.start_when, mi) if m.start_when is not None else True)
            run.phase[start] = EnrollmentPhase.ACTIVE
            run.step[start] = 0
            run.next_due[start] = day + m.spec.ladder[0].after
            run.changed |= start

            on = here & (run.phase == EnrollmentPhase.ACTIVE) & (run.milestone == mi) & (run.status == ACTIVE)
            done = on & run.eval(m.done_when, mi) if m.done_when is not None else np.zeros_like(on)
            # A ladder that ran out (the last milestone, held by an open window) is done only
            # inside its own window: a later answer is ignored.
            done &= (run.step < len(m.spec.ladder)) | run.armed(mi)
            if m.branches:
                done &= ~run.acted  # branches act; one action per run, the rest waits for tomorrow
                done &= ~_fire_branches(run, done, m, mi)
            run.advance(done, mi)
            exhausted = on & ~done & (run.step >= len(m.spec.ladder)) & (run.status == ACTIVE)
            run.advance(exhausted, mi)
            due = on & ~done & ~exhausted & ~run.acted & (run.next_due <= day) & (run.status == ACTIVE)
            step_now = run.step.copy()  # firing a rung moves `step`; one rung per row per run
            for ri in range(len(m.spec.ladder)):
                run.fire_rung(due & (step_now == ri), m, ri)
        after_pass = (run.milestone, run.phase, run.step, run.status)
        if all(np.array_equal(a, b) for a, b in zip(before, after_pass, strict=True)):
            break

    # 6. Customer requests: an answer asking for a person raises a CTA, whatever the position,
    #    once per request and enrollment, for an answer given since the enrollment entered.
    _requests(run)

    run.last_touch[run.acted] = day
    done_now = {
        m.spec.id: frame.index[run.eval(m.done_when, mi)]
        for mi, m in enumerate(journey.milestones)
        if m.done_when is not None
    }
    return Decision(
        journey=journey.id,
        as_of=as_of,
        first_milestone=journey.milestones[0].spec.id,
        enrollments=_positions(run),
        actions=_actions(run),
        counts={"entered": int(enter.sum()), "active": int((run.status == ACTIVE).sum()), **run.skipped},
        done_now=done_now,
    )


def _requests(run: _Run) -> None:
    """Fire each request whose condition holds on an answer given since the enrollment entered
    (`survey_at.<name>`, the day of the latest answer), unless this enrollment already raised it
    (`requested@<id>`, from the touches)."""
    enrolled = (run.status != NOT_ENROLLED) & (run.entered != NONE)
    for request, condition in run.journey.requests:
        surveys = [c.removeprefix("survey.") for c in condition.columns if c.startswith("survey.")]
        answered_at = np.full(len(run.index), NONE, dtype=np.int64)
        for survey in surveys:
            column = run.frame.get(f"survey_at.{survey}")
            if column is not None:
                answered_at = np.maximum(answered_at, _ordinal(column))
        since_entry = answered_at >= run.entered if surveys else np.ones(len(run.index), dtype=bool)
        done_before = run.frame.get(f"requested@{request.id}")
        fresh = (
            ~done_before.fillna(False).to_numpy(dtype=bool)
            if done_before is not None
            else np.ones(len(run.index), dtype=bool)
        )
        hit = enrolled & since_entry & fresh & run.eval(condition, -1)
        if hit.any():
            why = run.why(hit, condition, -1, request=request.id)
            run.cta(hit, request.cta, REQUEST_MILESTONE, request.id, kind="request", why=why, acts=False)


def _fire_branches(
    run: _Run, done: np.ndarray, m: CompiledMilestone, mi: int, *, late: bool = False
) -> np.ndarray:
    """Fire every branch of `m` whose condition holds for `done` rows; returns the rows that exit.

    `late`: an answer inside a response window. A branch with nothing to send then takes no
    action (it leaves no touch, so it would take the day's action again every day of the window).
    """
    exits = np.zeros_like(done)
    for branch, condition in m.branches:
        hit = done & run.eval(condition, mi)
        if branch.cta is not None:
            why = run.why(hit, condition, mi, branch=branch.id)
            run.cta(hit, branch.cta, m.spec.id, f"{BRANCH_PREFIX}{branch.id}", why=why)
        if branch.message is not None:
            run.message(
                hit, branch.message, m.spec.id, f"{BRANCH_PREFIX}{branch.id}", "branch", condition, mi
            )
        if not (branch.cta or branch.message or late):
            run.acted |= hit
        if branch.then == "exit":
            exits |= hit & ~exits
    run.finish(exits, EnrollmentStatus.COMPLETED, f"{m.spec.id}_branch")
    return exits


def _to_date(values: np.ndarray) -> list[date | None]:
    return [None if v == NONE else date.fromordinal(int(v)) for v in values]


def _positions(run: _Run) -> pd.DataFrame:
    mask = run.changed | run.acted
    ids = [m.spec.id for m in run.journey.milestones]
    milestone = [ids[i] if i >= 0 else None for i in run.milestone[mask]]
    return pd.DataFrame(
        {
            "account_id": run.index[mask],
            "enrollment_id": run.frame["e_id"].to_numpy()[mask],
            "is_new": run.is_new[mask],
            "cycle": run.cycle[mask],
            "status": run.status[mask],
            "milestone": milestone,
            "phase": run.phase[mask],
            "step": run.step[mask],
            "next_due": _to_date(run.next_due[mask]),
            "milestone_since": _to_date(run.since[mask]),
            "entered_as_of": _to_date(run.entered[mask]),
            "exited_as_of": _to_date(run.exited[mask]),
            "exit_reason": run.exit_reason[mask],
            "last_touch_as_of": _to_date(run.last_touch[mask]),
            "entry": [e if isinstance(e, dict) else {} for e in run.entry[mask]],
        }
    )


def _actions(run: _Run) -> pd.DataFrame:
    if not run.actions:
        return pd.DataFrame(columns=ACTION_COLUMNS)
    return pd.concat(run.actions, ignore_index=True)[ACTION_COLUMNS]
