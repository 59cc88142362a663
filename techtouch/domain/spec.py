"""Journey files: pydantic models with stable ids, loaded with errors that name file:line:column."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from techtouch.domain.yamlsource import Document, Loc, LocatedError, load_document, parse_document

SLUG = r"^[a-z][a-z0-9_]*$"
Slug = Annotated[str, Field(pattern=SLUG, max_length=40)]
Role = Literal["admin", "champion", "executive", "user"]
Priority = Literal["low", "medium", "high"]
_DURATION = re.compile(r"^\s*(\d+)\s*([dw]?)\s*$")


def _days(value: Any) -> Any:
    """`3d`, `2w` or a bare number of days."""
    if isinstance(value, bool):
        raise ValueError("a duration like 3d or 2w")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    raise ValueError(f"a duration like 3d or 2w, got {value!r}")


Days = Annotated[int, BeforeValidator(_days), Field(ge=0, le=3650)]
RESPOND_WITHIN_DEFAULT = 14
RESPOND_WITHIN_MAX = 365


def _response_days(value: Any) -> Any:
    """`respond_within`: a duration of 0 to RESPOND_WITHIN_MAX days, with one message for every bad value."""
    problem = (
        f"a response window like 14d or 2w, from 0 to {RESPOND_WITHIN_MAX} days "
        f"(0: the journey may finish the day the last rung goes out), got {value!r}"
    )
    try:
        days = _days(value)
    except ValueError:
        raise ValueError(problem) from None
    if not isinstance(days, int) or not 0 <= days <= RESPOND_WITHIN_MAX:
        raise ValueError(problem)
    return days


ResponseDays = Annotated[int, BeforeValidator(_response_days)]
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


def _param(value: Any) -> Any:
    """`-30%` in a params block means -0.30, as it does in conditions."""
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            return float(match.group(1)) / 100
    return value


Param = Annotated[float | int | str | bool, BeforeValidator(_param)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    """A message outside a ladder (a branch reply, a goal's thank-you)."""

    channel: Literal["email", "sms"] = "email"
    template: str = Field(min_length=1)
    sender: str | None = None


Outcome = Annotated[str, Field(pattern=SLUG, max_length=64)]


def _outcomes_unique(outcomes: list[str] | None) -> list[str] | None:
    if outcomes is not None:
        duplicates = sorted({o for o in outcomes if outcomes.count(o) > 1})
        if duplicates:
            raise ValueError(f"outcomes must be unique: {', '.join(duplicates)}")
        if "resolved_by_customer" in outcomes:
            raise ValueError(
                "'resolved_by_customer' is set by a run when the cause goes away; do not list it"
            )
    return outcomes


class CtaSpec(_Strict):
    title: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=200)
    priority: Priority = "medium"
    due_in: Days | None = None
    template: str | None = None
    outcomes: list[Outcome] | None = Field(
        None, min_length=1, description="what a CSM may close it with (default: by reason, see README)"
    )

    _unique = field_validator("outcomes")(classmethod(lambda cls, v: _outcomes_unique(v)))


class Rung(_Strict):
    """One step of an escalation ladder; due `after` the previous rung (or the milestone's start)."""

    id: Slug
    channel: Literal["email", "sms", "cta"]
    after: Days = 0
    template: str | None = None
    sender: str | None = None
    title: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=200)
    priority: Priority = "medium"
    due_in: Days | None = None
    outcomes: list[Outcome] | None = Field(None, min_length=1)

    _unique = field_validator("outcomes")(classmethod(lambda cls, v: _outcomes_unique(v)))

    @model_validator(mode="after")
    def _fields_for_channel(self) -> Rung:
        if self.channel in ("email", "sms") and not self.template:
            raise ValueError(f"a {self.channel} rung needs a template")
        if self.channel == "email" and not self.sender:
            raise ValueError("an email rung needs a sender")
        if self.channel == "cta" and not self.title:
            raise ValueError("a cta rung needs a title")
        return self


class Branch(_Strict):
    """What to do on a survey answer once the milestone is done: a CTA, a message, or exit."""

    id: Slug
    when: str
    cta: CtaSpec | None = None
    message: Message | None = None
    then: Literal["continue", "exit"] = "continue"
    mark_advocate: bool = Field(False, description="record the account as an advocate")


class Request(_Strict):
    """A customer asking for a person (a one-click answer such as "Yes, let's talk"): a CTA for the
    CSM whenever the answer arrives while the account is or was in this journey, whatever the
    milestone, once per answer; a person closes it (a run never auto-closes a promise)."""

    id: Slug
    when: str
    cta: CtaSpec


class WaitFor(_Strict):
    """`wait_for: {cta: <reason>}`: the milestone waits on the CTA of that reason raised in this
    enrollment. Done when it is closed (done or cancelled); skipped when none was raised; its
    ladder says what happens while it stays open (a `cta` rung with the same reason escalates it)."""

    cta: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z][a-z0-9_]*$")]


# Words that end a milestone's *done* title ("Renewal likelihood answered"): a CSM's CTA names
# what to ask for, not the outcome, so they are dropped when a title stands in for `ask`.
_OUTCOME_WORDS = frozenset(
    [
        "accepted",
        "agreed",
        "answered",
        "attended",
        "booked",
        "clicked",
        "completed",
        "configured",
        "delivered",
        "done",
        "finished",
        "given",
        "held",
        "launched",
        "met",
        "opened",
        "reached",
        "received",
        "recovered",
        "renewed",
        "replied",
        "returned",
        "reviewed",
        "scheduled",
        "seen",
        "sent",
        "signed",
        "started",
        "submitted",
        "taken",
        "viewed",
        "won",
    ]
)


def _outcome_stripped(title: str) -> str:
    """`Welcome email opened and clicked` → `Welcome email`: trailing outcome words (and their `and`) off."""
    words = title.split()
    while words and words[-1].lower() in _OUTCOME_WORDS | {"and", "or", "&"}:
        words.pop()
    return " ".join(words)


def _sentence_case(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym (`NPS`, `QBR`)."""
    first = text.split(" ", 1)[0]
    return text if len(first) > 1 and first[:2].isupper() else text[:1].lower() + text[1:]


class Milestone(_Strict):
    id: Slug
    title: str | None = None
    ask: str | None = Field(
        None,
        min_length=1,
        max_length=120,
        description="what a CSM reaching out personally asks for (high-touch CTA titles), "
        "e.g. 'renewal likelihood question'; derived from `title` or `id` when absent",
    )
    after: Days = 0
    start_when: str | None = None
    skip_when: str | None = None
    done_when: str | None = None
    wait_for: WaitFor | None = None
    ladder: list[Rung] = Field(min_length=1)
    branches: list[Branch] = []
    respond_within: ResponseDays = Field(
        RESPOND_WITHIN_DEFAULT,
        description="days after the last rung during which an answer (done_when) still fires the "
        "branches of a milestone whose ladder ran out; the journey does not finish before",
    )

    @field_validator("respond_within")
    @classmethod
    def _window_needs_branches(cls, value: int, info: ValidationInfo) -> int:
        """Only a value written in the file gets here (defaults are not validated)."""
        known = "done_when" in info.data and "branches" in info.data  # else they failed already
        waits = info.data.get("done_when") is not None or info.data.get("wait_for") is not None
        if known and (not waits or not info.data["branches"]):
            raise ValueError(
                "only a milestone with done_when and branches waits for an answer: "
                "remove respond_within, or add the branches it keeps armed"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_be_done(self) -> Milestone:
        if self.wait_for is not None and (self.done_when is not None or self.skip_when is not None):
            raise ValueError(
                "wait_for decides done_when (the CTA is closed) and skip_when (no such CTA): "
                "remove them, or drop wait_for and write both conditions"
            )
        return self

    @model_validator(mode="after")
    def _ladder_shape(self) -> Milestone:
        ids = [r.id for r in self.ladder]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rung ids must be unique within a milestone: {', '.join(duplicates)}")
        emails = [r for r in self.ladder if r.channel == "email"]
        for first, second in pairwise(emails):
            if first.sender == second.sender:
                raise ValueError(
                    f"rung {second.id!r} repeats sender {second.sender!r} of rung {first.id!r}: "
                    "an escalating email must come from a different person"
                )
        branch_ids = [b.id for b in self.branches]
        if len(set(branch_ids)) != len(branch_ids):
            raise ValueError("branch ids must be unique within a milestone")
        return self

    @property
    def personal_cta_title(self) -> str:
        """The CTA title when a CSM delivers this milestone personally (high-touch accounts).

        `ask` when given; else the title without its outcome words (`Adoption report sent` →
        `adoption report`); else the id (`first_call` → `first call`).
        """
        ask = (self.ask or "").strip() or _outcome_stripped(self.title or "") or self.id.replace("_", " ")
        return f"Reach out personally: {_sentence_case(ask)}"


class Goal(_Strict):
    """A condition that ends the journey, optionally with a last message (e.g. a thank-you)."""

    id: Slug
    when: str
    message: Message | None = None


class Audience(_Strict):
    segments: list[Literal["tech_touch", "high_touch"]] = ["tech_touch", "high_touch"]


class Reentry(_Strict):
    """`after_days: null` means an account enters this journey once."""

    after_days: Days | None = None


class Journey(_Strict):
    id: Slug
    name: str
    description: str = ""
    priority: int = Field(100, description="lower runs first and wins a contact on a capped day")
    audience: Audience = Audience()
    recipients: list[Role] = Field(["admin"], min_length=1)
    enter_when: str
    reentry: Reentry = Reentry()
    max_days: Days | None = Field(None, description="enrollments end after this many days")
    params: dict[Slug, Param] = {}
    goals: list[Goal] = []
    milestones: list[Milestone] = Field(min_length=1)
    requests: list[Request] = Field(
        [], description="customer answers that ask for a person: each raises a CTA (see Request)"
    )
    informational_answers: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_*-]+)?$")]] = (
        Field(
            [],
            description="survey answers its templates offer that ask nobody to act (`survey:answer`, "
            "`survey:*` or `survey`): `techtouch check` requires every other offered answer to be read",
        )
    )
    definitions: Any = Field(None, description="free space for YAML anchors")

    @field_validator("milestones")
    @classmethod
    def _unique_milestones(cls, milestones: list[Milestone]) -> list[Milestone]:
        ids = [m.id for m in milestones]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"milestone ids must be unique: {', '.join(duplicates)}")
        return milestones

    @model_validator(mode="after")
    def _unique_ids(self) -> Journey:
        ids = [m.id for m in self.milestones] + [g.id for g in self.goals]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"milestone and goal ids must be unique: {', '.join(duplicates)}")
        requests = [r.id for r in self.requests]
        duplicates = sorted({i for i in requests if requests.count(i) > 1})
        if duplicates:
            raise ValueError(f"request ids must be unique: {', '.join(duplicates)}")
        return self

    def milestone(self, milestone_id: str) -> Milestone:
        return next(m for m in self.milestones if m.id == milestone_id)


def validate_document(document: Document) -> Journey:
    """Build a Journey or raise the first located error (pydantic's loc mapped to YAML marks)."""
    if not isinstance(document.data, dict):
        raise JourneyErrors(
            [document.error((), "a journey file is a mapping with id, enter_when and milestones")]
        )
    try:
        return Journey.model_validate(document.data)
    except ValidationError as exc:
        raise located(document, exc) from None


class JourneyErrors(Exception):
    """Every problem found in a set of journey files."""

    def __init__(self, errors: list[LocatedError]):
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


def located(document: Document, exc: ValidationError) -> JourneyErrors:
    errors = []
    for error in exc.errors():
        loc: Loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        field = ".".join(str(p) for p in loc) or "journey"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        errors.append(document.error(loc, f"{field}: {message}"))
    return JourneyErrors(errors)


def load_journey(path: Path) -> tuple[Journey, Document]:
    document = load_document(path)
    return validate_document(document), document


def parse_journey(text: str, path: str = "<journey>") -> tuple[Journey, Document]:
    document = parse_document(text, path)
    return validate_document(document), document
