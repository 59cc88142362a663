"""Charts for the workspace pages, drawn by pygal as SVG text to inline in the page.

Why inline SVG: the page stays one response with no image route, no JavaScript and no build step,
and the numbers print with the page. pygal's defaults do not fit a page under the workspace's
Content Security Policy (`script-src 'self'; style-src 'self'`: no inline script, no inline
style), so every chart here is made with, and cleaned of:

- `js=[]`: pygal otherwise references its tooltip script on a CDN (the page must never reach the
  network); its inline `<script>` (the chart's config as JSON, for that script) is removed too;
- its inline `<style>` and `style="..."` attributes, which the CSP would refuse (an unstyled SVG
  fills every line black): the same rules, scoped by a class per kind of chart (`tt-health`,
  `tt-usage`) instead of pygal's random element id, are served as one stylesheet (`stylesheet()`);
- `disable_xml_declaration=True`: an `<?xml ...?>` line is not allowed inside HTML;
- no dots and few x labels: a dot is an SVG group per value, which doubles the rendering time; the
  health bands are painted as three rects rather than three filled series for the same reason
  (a chart renders in about 5-10 ms);
- a `<title>` and a `<desc>` first in the SVG (`role="img"`, `aria-labelledby`), and the numbers as
  rows (`Chart.rows`) that the page shows as a table: a screen reader, a text browser and a person
  who wants the exact number all get them.
"""

from __future__ import annotations

import functools
import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pygal
from pygal.style import Style

WIDTH = 640
HEIGHT = 240
# An x label every this many points (a chart of 90 days shows 7 dates).
DAILY_LABEL_EVERY = 14
WEEKLY_LABEL_EVERY = 2
HEALTH_TICKS = (0, 25, 50, 75, 100)

# Band fills (light) and the line/bar colours (dark enough on white for WCAG's 3:1 for graphics).
GREEN_BAND = "#dcfce7"
YELLOW_BAND = "#fef3c7"
RED_BAND = "#fee2e2"
SCORE_LINE = "#1d4ed8"
USAGE_COLORS = ("#1d4ed8", "#b45309", "#047857")

HEALTH_CLASS = "tt-health"
USAGE_CLASS = "tt-usage"
# Lines thicker than pygal's 1px (its per-series `stroke_style` loses to its own `.reactive` rule).
EXTRA_CSS = {
    HEALTH_CLASS: ".serie-0 .line{stroke-width:2.5}",
    USAGE_CLASS: ".series .line{stroke-width:2.5}",
}
# How the SVG sits in the page: as wide as its container, up to its drawn width.
PAGE_CSS = f"svg.tt-chart{{display:block;width:100%;max-width:{WIDTH}px;height:auto}}"

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>|<script\b[^>]*/>", re.DOTALL)
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.DOTALL)
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="[^"]*"')
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_CHART_ID = re.compile(r'\bid="([^"]+)"')
_PYGAL_TITLE = re.compile(r"</defs><title>.*?</title>", re.DOTALL)
# A y guide: `<path d="M0 <y> h<width>" class="... line" /><text ...><value></text>`.
_Y_GUIDE = re.compile(
    r'<path d="M0(?:\.0+)? ([0-9.]+) h([0-9.]+)" class="[^"]*line" /><text[^>]*>([0-9.]+)</text>'
)
_PLOT_BACKGROUND = re.compile(r'class="plot"><rect [^>]*class="background" />')


@dataclass(frozen=True)
class Series:
    """One line of a chart; `secondary` puts it on the right-hand axis."""

    name: str
    values: Sequence[float]
    secondary: bool = False


@dataclass(frozen=True)
class Chart:
    """One chart: the SVG to inline, and its text alternative (a caption and the numbers)."""

    title: str
    svg: str
    caption: str  # one sentence that says what the chart shows (the SVG's <desc> too)
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # the numbers, one row per point, formatted


def health_chart(
    points: Sequence[tuple[date, float]],
    *,
    green: float,
    yellow: float,
    title: str = "Health, last 90 days",
) -> Chart | None:
    """The health score (0-100) over time on the green / yellow / red bands of the health model
    (green from `green` up, yellow from `yellow`, red below); None without a point."""
    if not points:
        return None
    n = len(points)
    chart = _health_graph(points, title)
    first, last = points[0], points[-1]
    caption = (
        f"Health score from {first[0].isoformat()} ({first[1]:.0f}) to {last[0].isoformat()} "
        f"({last[1]:.0f}), {n} day{'s' if n != 1 else ''}; green from {green:g}, yellow from "
        f"{yellow:g}, red below."
    )
    rows = tuple((d.isoformat(), f"{score:.0f}") for d, score in points)
    svg = _finish(
        chart,
        HEALTH_CLASS,
        title,
        caption,
        bands=((100.0, green, GREEN_BAND), (green, yellow, YELLOW_BAND), (yellow, 0.0, RED_BAND)),
    )
    return Chart(title, svg, caption, ("day", "health"), rows)


def usage_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str = "Usage per week, last 13 weeks",
    label_name: str = "week from",
) -> Chart | None:
    """A line per named series over the labels (weeks): counts on the left axis, and the series
    marked `secondary` (a small number such as active users) on the right one, so that 5 active
    users do not lie flat under 300 key actions. None without a label or a series."""
    if not labels or not series:
        return None
    chart = _usage_graph(title, labels, series)
    # A secondary series is a small per-day number (active users a day): summing it over weeks means
    # nothing, so the caption gives its average over the weeks shown.
    totals = ", ".join(
        f"{one.name} {_number(sum(one.values) / len(one.values))} on average"
        if one.secondary and one.values
        else f"{one.name} {_number(sum(one.values))}"
        for one in series
    )
    caption = f"{title}, from the week of {labels[0]} to the week of {labels[-1]}; in all: {totals}."
    rows = tuple((label, *(_number(one.values[i]) for one in series)) for i, label in enumerate(labels))
    columns = (label_name, *(one.name for one in series))
    svg = _finish(chart, USAGE_CLASS, title, caption)
    return Chart(title, svg, caption, columns, rows)


def _health_graph(points: Sequence[tuple[date, float]], title: str = "Health") -> pygal.Line:
    chart = pygal.Line(
        **(_common(_style(colors=(SCORE_LINE,)), title) | {"show_dots": len(points) == 1}),  # one: a dot
        range=(0, 100),
        y_labels=list(HEALTH_TICKS),
        show_legend=False,
        x_labels_major_every=DAILY_LABEL_EVERY,
    )
    chart.x_labels = [d.isoformat()[5:] for d, _ in points]
    chart.add("health", [round(score, 1) for _, score in points])
    return chart


def _usage_graph(title: str, labels: Sequence[str], series: Sequence[Series]) -> pygal.Line:
    chart = pygal.Line(
        **_common(_style(colors=USAGE_COLORS), title),
        show_legend=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=len(series),
        x_labels_major_every=WEEKLY_LABEL_EVERY,
        include_x_axis=True,
        value_formatter=_number,  # axis labels too: `3.3` rather than `3.3333333`
    )
    chart.x_labels = list(labels)
    for one in series:
        name = f"{one.name} (right axis)" if one.secondary and len(series) > 1 else one.name
        chart.add(name, [round(float(v), 1) for v in one.values], secondary=one.secondary)
    return chart


def _style(colors: Sequence[str]) -> Style:
    return Style(
        background="transparent",
        plot_background="#ffffff",
        foreground="#1f2933",
        foreground_strong="#1f2933",
        foreground_subtle="#cbd2d9",
        colors=tuple(colors),
        opacity="1",
        opacity_hover="1",
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        title_font_size=14,
    )


def _common(style: Style, title: str) -> dict[str, object]:
    """What every chart shares (see the module docstring for why)."""
    return {
        "style": style,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "explicit_size": False,  # scales to its container (viewBox only)
        "js": [],
        "disable_xml_declaration": True,
        "show_dots": False,
        "show_minor_x_labels": False,
        "truncate_label": -1,
        "truncate_legend": -1,
        "min_scale": 3,
        "max_scale": 6,
        "tooltip_fancy_mode": False,
        "margin": 8,
    }


def _render(chart: pygal.graph.graph.Graph) -> tuple[str, str, str]:
    """(SVG without its script and style, pygal's CSS, the chart's element id)."""
    svg = _SCRIPT.sub("", str(chart.render(is_unicode=True)))
    styles = _STYLE.findall(svg)
    svg = _STYLE_ATTRIBUTE.sub("", _STYLE.sub("", svg))
    opening = _SVG_OPEN.search(svg)
    if opening is None:  # pygal always starts with <svg ...>; refuse to inline anything else
        raise ValueError("pygal did not render an <svg> element")
    found = _CHART_ID.search(opening.group(0))
    chart_id = found.group(1) if found else f"chart-{uuid.uuid4().hex}"
    return svg, html.unescape("\n".join(styles)), chart_id  # the SVG's text escapes `>` as `&gt;`


def _finish(
    chart: pygal.graph.graph.Graph,
    kind: str,
    title: str,
    caption: str,
    *,
    bands: Sequence[tuple[float, float, str]] = (),
) -> str:
    """Render without script or style (see the module docstring); mark the root with the kind's
    class (which `stylesheet()` styles); put our title and description first (pygal's own `<title>`
    comes after its `<defs>`, where assistive technology may not look), with `role` and
    `aria-labelledby`; paint the `bands` (from, to, colour) under the plot."""
    svg, _, chart_id = _render(chart)
    if bands:
        svg = _paint_bands(svg, bands)
    svg = _PYGAL_TITLE.sub("</defs>", svg, count=1)
    opening = _SVG_OPEN.search(svg)
    assert opening is not None  # _render checked
    tag = opening.group(0).replace('class="pygal-chart"', f'class="pygal-chart tt-chart {kind}"', 1)
    named = (
        tag[:-1].rstrip("/")
        + f' role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">'
        + f'<title id="{chart_id}-title">{html.escape(title)}</title>'
        + f'<desc id="{chart_id}-desc">{html.escape(caption)}</desc>'
    )
    return svg[: opening.start()] + named + svg[opening.end() :]


@functools.cache
def stylesheet() -> str:
    """The CSS of every chart this module draws: pygal's own rules for each kind of chart (drawn
    once, on a sample), scoped by the kind's class instead of the sample's id, plus ours. Served as
    a file, since the pages' CSP refuses inline styles; the same for every chart of a kind, since a
    kind's colours and sizes do not depend on its data."""
    samples = {
        HEALTH_CLASS: _health_graph([(date(2000, 1, 1), 50.0), (date(2000, 1, 2), 60.0)]),
        USAGE_CLASS: _usage_graph(
            "sample", ["a", "b"], [Series("a", [1, 2]), Series("b", [1, 2]), Series("c", [1, 2], True)]
        ),
    }
    parts = [PAGE_CSS]
    for kind, graph in samples.items():
        _, css, chart_id = _render(graph)
        parts.append(css.replace(f"#{chart_id}", f".{kind}"))
        parts.extend(f".{kind} {rule}}}" for rule in EXTRA_CSS[kind].split("}") if rule.strip())
    return "\n".join(parts) + "\n"


def _paint_bands(svg: str, bands: Sequence[tuple[float, float, str]]) -> str:
    """Coloured horizontal bands (value from, value to, fill) behind the plot, placed where pygal
    drew the y guides of the values (so its padding is respected): a rect each, inserted right after
    the plot's background. Filled constant series would do the same at twice the rendering time.
    Unchanged when the guides are not found (the line and the numbers still tell the story)."""
    guides = {float(value): (float(y), float(width)) for y, width, value in _Y_GUIDE.findall(svg)}
    background = _PLOT_BACKGROUND.search(svg)
    if background is None or 0.0 not in guides or 100.0 not in guides:
        return svg
    y0, width = guides[0.0]
    y100, _ = guides[100.0]

    def y(value: float) -> float:
        return y0 + (y100 - y0) * value / 100.0

    rects = "".join(
        f'<rect x="0" y="{y(high):.2f}" width="{width:.2f}" height="{y(low) - y(high):.2f}" '
        f'fill="{fill}" class="band" />'
        for high, low, fill in bands
        if high > low
    )
    return svg[: background.end()] + rects + svg[background.end() :]


def _number(value: float) -> str:
    """`1,200`, `3.5`: whole numbers without decimals, others with one."""
    rounded = round(float(value), 1)
    return f"{rounded:,.0f}" if rounded.is_integer() else f"{rounded:,.1f}"
