"""The charts of `/reports`, drawn with pygal as self-contained SVG.

Why this shape:

- No script, no network: pygal references its tooltip JavaScript on a CDN by default (`js`) and
  always embeds an inline config `<script>`; `js=[]` drops the first and an XML filter removes the
  second, so a chart is pure SVG (the workspace's CSP allows no inline script anyway).
- Accessible: every chart has a title and a text alternative (`description`: what is drawn and its
  numbers), put in the SVG as `<title>`/`<desc>` with `role="img"`, and used by the page as the
  `alt` of the image; the page also prints the numbers as a table under each chart.
- Embeddable under a strict CSP: the workspace allows `img-src 'self' data:` but no inline style,
  and pygal styles its SVG with a `<style>` element, so the page shows a chart as an `<img>` with
  a `data:` URI (`Chart.data_uri`): an SVG image keeps its own styles and never runs a script.

Plain data in (labels, numbers), a `Chart` out: the services compute, this module only draws.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.style import Style

SVG_NS = "{http://www.w3.org/2000/svg}"
DESCRIPTION_MAX = 900  # characters of the text alternative; the table under the chart has the rest
TOP_ASSIGNEES = 10  # the workload chart stacks this many people, the rest as "everyone else"
OTHERS = "everyone else"

# Colours distinguishable with the common colour-vision deficiencies (Okabe-Ito), dark text.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#52606d",
    opacity=".9",
    opacity_hover="1",
    colors=(*PALETTE, "#882255", "#332288", "#999999"),  # the 11th: "everyone else"
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    title_font_size=18,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=11,
)
NPS_COLORS = {"detractors": "#D55E00", "passives": "#E69F00", "promoters": "#009E73"}


@dataclass(frozen=True)
class Chart:
    """One chart: its title, its text alternative and the SVG document."""

    title: str
    description: str
    svg: str

    @property
    def data_uri(self) -> str:
        """The SVG as a `data:` URI for an `<img src>` (see the module docstring)."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode("utf-8")).decode("ascii")


def _accessible(title: str, description: str) -> Any:
    """An XML filter: no <script> anywhere; role="img", a <title> and a <desc> first in the root."""

    def apply(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                if str(child.tag).removeprefix(SVG_NS) == "script":
                    parent.remove(child)
        root.set("role", "img")
        chart_id = root.get("id") or "chart"
        root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
        title_node = root.makeelement("title", {"id": f"{chart_id}-title"})
        title_node.text = title
        desc_node = root.makeelement("desc", {"id": f"{chart_id}-desc"})
        desc_node.text = description
        root.insert(0, desc_node)
        root.insert(0, title_node)
        return root

    return apply


def _number(value: float | None, percent: bool) -> str:
    if value is None:
        return "n/a"
    if percent:
        return f"{value:.0%}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def describe(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    kind: str = "Bar chart",
    percent: bool = False,
) -> str:
    """A text alternative: the kind of chart, then each series' values by label (cut at
    DESCRIPTION_MAX characters, saying so: the table under the chart has every number)."""
    if not labels or not series:
        return f"{kind}: {title}. No data in this range."
    parts = [
        f"{name}: "
        + ", ".join(f"{label} {_number(v, percent)}" for label, v in zip(labels, values, strict=False))
        for name, values in series
    ]
    text = f"{kind}: {title}. " + "; ".join(parts) + "."
    if len(text) > DESCRIPTION_MAX:
        text = text[: DESCRIPTION_MAX - 40].rsplit(" ", 1)[0] + " … (every number is in the table)."
    return text


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    stacked: bool = False,
    horizontal: bool = False,
    percent: bool = False,
    colors: Sequence[str] | None = None,
    description: str | None = None,
    height: int = 420,
) -> Chart:
    """Bars per label, one colour per series (grouped, or `stacked`); `percent` for 0..1 values."""
    kind = "Stacked bar chart" if stacked else "Horizontal bar chart" if horizontal else "Bar chart"
    text = description or describe(title, labels, series, kind=kind, percent=percent)
    chart_class: Any = {
        (False, False): pygal.Bar,
        (True, False): pygal.StackedBar,
        (False, True): pygal.HorizontalBar,
        (True, True): pygal.HorizontalStackedBar,
    }[(stacked, horizontal)]
    style = STYLE if colors is None else Style(**{**_style_values(), "colors": tuple(colors)})
    chart = chart_class(
        title=title,
        style=style,
        js=[],
        disable_xml_declaration=True,
        width=880,
        height=height,
        legend_at_bottom=True,
        legend_at_bottom_columns=min(max(len(series), 1), 4),
        x_label_rotation=0 if horizontal or not _crowded(labels) else 30,
        truncate_label=40,
        truncate_legend=40,
        print_values=False,
        show_minor_x_labels=True,
        include_x_axis=True,
        range=(0, 1) if percent else None,
        value_formatter=(lambda v: _number(v, True)) if percent else (lambda v: _number(v, False)),
        no_data_text="No data in this range",
    )
    chart.add_xml_filter(_accessible(title, text))
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, [None if v is None else float(v) for v in values])
    return Chart(title=title, description=text, svg=chart.render(is_unicode=True))


def _crowded(labels: Sequence[str]) -> bool:
    """Whether the x labels, written flat, would run into each other (~7 px a character on ~780 px)."""
    longest = max((len(x) for x in labels), default=0)
    return longest > 10 or len(labels) * (longest + 2) * 7 > 780


def _style_values() -> dict[str, Any]:
    return {
        key: getattr(STYLE, key)
        for key in (
            "background",
            "plot_background",
            "foreground",
            "foreground_strong",
            "foreground_subtle",
            "opacity",
            "opacity_hover",
            "font_family",
            "title_font_size",
            "label_font_size",
            "major_label_font_size",
            "legend_font_size",
            "value_font_size",
        )
    }


# --- the report charts ----------------------------------------------------------------------------


def funnel_chart(journey: str, steps: Sequence[str], measures: Mapping[str, Sequence[int]]) -> Chart:
    """A journey's funnel: per milestone (x), a bar per measure (entered, sent … escalated)."""
    return bar_chart(f"{journey}: funnel per milestone", steps, list(measures.items()))


def nps_chart(counts: Mapping[int, int], score: float | None) -> Chart:
    """Responses per score 0-10, coloured by group (detractors 0-6, passives 7-8, promoters 9-10)."""
    labels = [str(s) for s in range(11)]
    groups = {"detractors": range(0, 7), "passives": range(7, 9), "promoters": range(9, 11)}
    series = [
        (name, [counts.get(s, 0) if s in scores else None for s in range(11)])
        for name, scores in groups.items()
    ]
    shown = "no responses" if score is None else f"NPS {score:+.1f}"
    title = f"NPS distribution ({shown})"
    total = sum(counts.values())
    text = (
        f"Bar chart: {title}. Responses per score: "
        + ", ".join(f"{s}: {counts.get(s, 0)}" for s in range(11))
        + f". {total} responses; "
        + ", ".join(f"{name} {sum(counts.get(s, 0) for s in scores)}" for name, scores in groups.items())
        + "."
    )
    return bar_chart(title, labels, series, stacked=True, colors=list(NPS_COLORS.values()), description=text)


def workload_chart(weeks: Sequence[str], opened: Mapping[str, Mapping[str, int]]) -> Chart:
    """CTAs opened per ISO week (x), stacked per person (`opened`: person -> week -> count); the
    TOP_ASSIGNEES busiest people get their own colour, everyone else shares one."""
    totals = sorted(opened, key=lambda who: (-sum(opened[who].values()), who))
    top, rest = totals[:TOP_ASSIGNEES], totals[TOP_ASSIGNEES:]
    series: list[tuple[str, Sequence[float | None]]] = [
        (who, [opened[who].get(w, 0) for w in weeks]) for who in top
    ]
    if rest:
        series.append(
            (f"{OTHERS} ({len(rest)})", [sum(opened[who].get(w, 0) for who in rest) for w in weeks])
        )
    week_totals = [sum(opened[who].get(w, 0) for who in totals) for w in weeks]
    text = (
        "Stacked bar chart: CTAs opened per week and person. Per week: "
        + ", ".join(f"{w} {n}" for w, n in zip(weeks, week_totals, strict=True))
        + (
            f". Busiest: {', '.join(f'{who} {sum(opened[who].values())}' for who in top[:5])}."
            if top
            else "."
        )
    )
    if not weeks:
        text = "Stacked bar chart: CTAs opened per week and person. No CTAs in this range."
    return bar_chart("CTAs opened per week, per person", weeks, series, stacked=True, description=text)


def answer_rates_chart(surveys: Sequence[str], rates: Sequence[float | None]) -> Chart:
    """Share of the asked accounts that answered, per survey (horizontal bars, 0-100 %)."""
    return bar_chart(
        "Answer rate per survey",
        surveys,
        [("answered / asked", rates)],
        horizontal=True,
        percent=True,
        height=max(260, 60 + 34 * len(surveys)),
    )


__all__ = [
    "Chart",
    "answer_rates_chart",
    "bar_chart",
    "describe",
    "funnel_chart",
    "nps_chart",
    "workload_chart",
]
