"""Journey files compiled for running: every condition parsed once, every error located."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from techtouch.domain.conditions import Condition, ConditionError, Vocabulary, compile_condition
from techtouch.domain.spec import Branch, Goal, Journey, JourneyErrors, Milestone, Request, load_journey
from techtouch.domain.statuses import CLOSED_CTA_STATUSES, CtaStatus
from techtouch.domain.vocabulary import ACCOUNT_NAMES, ENROLLMENT_NAMES, FAMILIES, RECORDS
from techtouch.domain.yamlsource import Document, Loc, LocatedError


@dataclass(frozen=True)
class CompiledMilestone:
    spec: Milestone
    start_when: Condition | None
    skip_when: Condition | None
    done_when: Condition | None
    branches: tuple[tuple[Branch, Condition], ...]

    @property
    def cta_index(self) -> int | None:
        """The ladder's CTA rung: where an unreachable contact's ladder jumps to."""
        found = [i for i, rung in enumerate(self.spec.ladder) if rung.channel == "cta"]
        return found[-1] if found else None

    @property
    def response_window(self) -> int | None:
        """Days its branches stay armed after its ladder ran out (`respond_within`); None when
        there is nothing to arm (no done_when or no branch)."""
        if self.done_when is None or not self.branches:
            return None
        return self.spec.respond_within


@dataclass(frozen=True)
class CompiledJourney:
    spec: Journey
    path: str
    enter_when: Condition
    goals: tuple[tuple[Goal, Condition], ...]
    milestones: tuple[CompiledMilestone, ...]
    entry_columns: tuple[str, ...] = field(default=())
    requests: tuple[tuple[Request, Condition], ...] = field(default=())

    @property
    def id(self) -> str:
        return self.spec.id

    def conditions(self) -> list[Condition]:
        found = [self.enter_when, *(c for _, c in self.goals), *(c for _, c in self.requests)]
        for m in self.milestones:
            found += [c for c in (m.start_when, m.skip_when, m.done_when) if c is not None]
            found += [c for _, c in m.branches]
        return found

    def cta_reasons(self) -> set[str]:
        """The reasons whose CTA state (`cta.<reason>.<field>`) its conditions read."""
        return {
            column.split(".")[1]
            for c in self.conditions()
            for column in c.columns
            if column.startswith("cta.")
        }


def _quoted(values: tuple[CtaStatus, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def wait_conditions(reason: str) -> tuple[str, str]:
    """(done_when, skip_when) of a milestone that waits on the CTA of `reason` (spec.WaitFor)."""
    done = f"cta.{reason}.status in [{_quoted(CLOSED_CTA_STATUSES)}]"
    skip = f"not (cta.{reason}.status in [{_quoted(tuple(CtaStatus))}])"
    return done, skip


def vocabulary(journey: Journey) -> Vocabulary:
    return Vocabulary(
        names={**ACCOUNT_NAMES, **ENROLLMENT_NAMES},  # type: ignore[dict-item]
        families=FAMILIES,  # type: ignore[arg-type]
        records=RECORDS,  # type: ignore[arg-type]
        constants={f"params.{k}": v for k, v in journey.params.items()},
    )


def compile_journey(journey: Journey, document: Document) -> CompiledJourney:
    vocab = vocabulary(journey)
    errors: list[LocatedError] = []

    def cond(source: str | None, loc: Loc) -> Condition | None:
        if source is None:
            return None
        try:
            return compile_condition(source, vocab)
        except ConditionError as exc:
            field_name = ".".join(str(p) for p in loc)
            errors.append(document.error(loc, f"{field_name}: {exc.message}", offset=exc.column - 1))
            return None

    enter_when = cond(journey.enter_when, ("enter_when",))
    goals = []
    for gi, goal in enumerate(journey.goals):
        compiled = cond(goal.when, ("goals", gi, "when"))
        if compiled is not None:
            goals.append((goal, compiled))
    milestones = []
    for mi, milestone in enumerate(journey.milestones):
        base: Loc = ("milestones", mi)
        branches = []
        for bi, branch in enumerate(milestone.branches):
            compiled = cond(branch.when, (*base, "branches", bi, "when"))
            if compiled is not None:
                branches.append((branch, compiled))
        done_when, skip_when = milestone.done_when, milestone.skip_when
        done_loc, skip_loc = (*base, "done_when"), (*base, "skip_when")
        if milestone.wait_for is not None:
            done_when, skip_when = wait_conditions(milestone.wait_for.cta)
            done_loc = skip_loc = (*base, "wait_for", "cta")
        milestones.append(
            CompiledMilestone(
                spec=milestone,
                start_when=cond(milestone.start_when, (*base, "start_when")),
                skip_when=cond(skip_when, skip_loc),
                done_when=cond(done_when, done_loc),
                branches=tuple(branches),
            )
        )
    requests = []
    for ri, request in enumerate(journey.requests):
        compiled = cond(request.when, ("requests", ri, "when"))
        if compiled is not None:
            requests.append((request, compiled))
    if errors or enter_when is None:
        raise JourneyErrors(errors)
    conditions = [enter_when, *(c for _, c in goals), *(c for _, c in requests)]
    for m in milestones:
        conditions += [c for c in (m.start_when, m.skip_when, m.done_when) if c is not None]
        conditions += [c for _, c in m.branches]
    entry_columns = sorted(
        {col.removeprefix("entry.") for c in conditions for col in c.columns if col.startswith("entry.")}
    )
    return CompiledJourney(
        spec=journey,
        path=document.path,
        enter_when=enter_when,
        goals=tuple(goals),
        milestones=tuple(milestones),
        entry_columns=tuple(entry_columns),
        requests=tuple(requests),
    )


def journey_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def load_catalog(paths: Iterable[Path]) -> dict[str, CompiledJourney]:
    """Every journey in `paths` (files or directories), or JourneyErrors listing every problem."""
    catalog: dict[str, CompiledJourney] = {}
    errors: list[LocatedError] = []
    for path in journey_files(paths):
        try:
            journey, document = load_journey(path)
            compiled = compile_journey(journey, document)
        except LocatedError as exc:
            errors.append(exc)
            continue
        except JourneyErrors as exc:
            errors += exc.errors
            continue
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(LocatedError(str(path), 1, 1, f"cannot read: {exc}"))
            continue
        if compiled.id in catalog:
            errors.append(
                document.error(
                    ("id",), f"id: journey {compiled.id!r} is also defined in {catalog[compiled.id].path}"
                )
            )
            continue
        catalog[compiled.id] = compiled
    if errors:
        raise JourneyErrors(errors)
    return dict(sorted(catalog.items(), key=lambda item: (item[1].spec.priority, item[0])))
