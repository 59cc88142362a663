"""`techtouch check`: the same loading code as a run, plus every template rendered on sample data."""

from __future__ import annotations

from pathlib import Path

from techtouch.adapters.render.renderer import Renderer, sample_context
from techtouch.domain.catalog import CompiledJourney, journey_files, load_catalog
from techtouch.domain.spec import JourneyErrors
from techtouch.settings import Settings


def referenced_templates(journey: CompiledJourney) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """(template, channel, YAML location) for every message the journey can send."""
    found: list[tuple[str, str, tuple[str | int, ...]]] = []
    for gi, goal in enumerate(journey.spec.goals):
        if goal.message:
            found.append((goal.message.template, goal.message.channel, ("goals", gi, "message", "template")))
    for mi, m in enumerate(journey.milestones):
        for ri, rung in enumerate(m.spec.ladder):
            if rung.channel in ("email", "sms") and rung.template:
                found.append((rung.template, rung.channel, ("milestones", mi, "ladder", ri, "template")))
        for bi, (branch, _) in enumerate(m.branches):
            if branch.message:
                found.append(
                    (
                        branch.message.template,
                        branch.message.channel,
                        ("milestones", mi, "branches", bi, "message", "template"),
                    )
                )
    return found


def check_journeys(settings: Settings, paths: list[Path]) -> tuple[list[str], dict[str, CompiledJourney]]:
    """Problems as `file:line:col: message` lines (empty when all is well) and the catalog."""
    from techtouch.domain.spec import load_journey

    try:
        catalog = load_catalog(paths)
    except JourneyErrors as exc:
        return [str(e) for e in exc.errors], {}
    renderer = Renderer(settings.templates_dir)
    problems: list[str] = []
    senders = set(settings.senders) | {"csm"}
    for journey in catalog.values():
        _, document = load_journey(Path(journey.path))
        for template, channel, loc in referenced_templates(journey):
            for problem in renderer.check(template, channel, sample_context()):  # type: ignore[arg-type]
                problems.append(f"{document.error(loc, '')}".rstrip(": ") + f": {problem}")
        for mi, m in enumerate(journey.milestones):
            for ri, rung in enumerate(m.spec.ladder):
                if rung.sender and rung.sender not in senders:
                    loc = ("milestones", mi, "ladder", ri, "sender")
                    known = ", ".join(sorted(senders))
                    problems.append(
                        str(document.error(loc, f"sender: unknown sender {rung.sender!r}; known: {known}"))
                    )
    return problems, catalog


__all__ = ["check_journeys", "journey_files", "referenced_templates"]
