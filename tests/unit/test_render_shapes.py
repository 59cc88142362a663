"""Inlining once per template shape gives the HTML of the plain path (render, then inline) exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from techtouch.adapters.render.renderer import Renderer, sample_context

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
EMAILS = sorted(
    str(path.relative_to(TEMPLATES))[: -len(".email.html")]
    for path in TEMPLATES.rglob("*.email.html")
    if not path.name.startswith("_") and path.parent.name != "digest"
)
TRICKY: list[dict[str, Any]] = [
    {},
    {"contact": {"name": 'O\'Brien & <Co> "x"\xa0é', "first_name": "O'B&<>\"\xa0"}},
    {"account": {"name": "A&B <i>x</i> 'q' \"d\" &amp; \u2212"}, "contact": {"first_name": ""}},
    {"sender": {"name": "Zoë & Co", "email": "a&b@x.example\"'<>", "title": ""}},
    {"contact": {"first_name": "line\r\nbreak\x00"}},  # the parser rewrites these: the plain path
]


def plain(renderer: Renderer, template: str, context: dict[str, Any]) -> str:
    return renderer._inliner.inline(renderer._render(f"{template}.email.html", dict(context)))


@pytest.mark.parametrize("template", EMAILS)
def test_every_email_renders_as_the_plain_path_does(template: str):
    renderer = Renderer(TEMPLATES)
    for overrides in TRICKY * 2:  # the second time through, every shape is known
        context = sample_context(**overrides)
        assert renderer._html(template, dict(context)) == plain(renderer, template, context)
    assert any(shape is not None for shape in renderer._shapes.values())


def test_a_value_that_could_change_what_the_stylesheet_matches_takes_the_plain_path(tmp_path: Path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "x.email.html").write_text(
        "<html><head><style>.red { color: red; } p { margin: 0; }</style></head>"
        '<body><p class="{{ contact.role }}">{{ contact.name }}</p></body></html>',
        encoding="utf-8",
    )
    renderer = Renderer(tmp_path)
    for role in ("red", "blue", "red"):
        context = sample_context(contact={"role": role})
        html = renderer._html("j/x", dict(context))
        assert html == plain(renderer, "j/x", context)
        assert ("color: red" in html) == (role == "red")
    assert list(renderer._shapes.values()) == [None]
