"""The charts of `/reports` (techtouch.adapters.report_charts) and its CSV cells: self-contained SVG
(no script, nothing fetched from the network), a title and a text alternative with the numbers,
the data drawn; formula-looking cells neutralized, numbers left alone."""

from __future__ import annotations

import base64
import csv
import io
import re
import xml.etree.ElementTree as ET

from techtouch.adapters import report_charts
from techtouch.entrypoints.web.reports_page import csv_text, neutralize

SVG = "{http://www.w3.org/2000/svg}"


def parsed(chart: report_charts.Chart) -> ET.Element:
    return ET.fromstring(chart.svg)


def assert_self_contained(chart: report_charts.Chart) -> None:
    root = parsed(chart)
    assert root.tag == f"{SVG}svg"
    assert not chart.svg.startswith("<?xml")
    assert root.find(f".//{SVG}script") is None and "<script" not in chart.svg
    # Nothing loaded from elsewhere: no http(s) reference in an attribute (the namespace aside).
    refs = [v for el in root.iter() for k, v in el.attrib.items() if k != "xmlns" and "http" in v]
    assert refs == []
    assert "cdn" not in chart.svg.lower() and "kozea.github.io" not in chart.svg
    # Accessible: role, and a <title> and <desc> first, which aria-labelledby names.
    assert root.get("role") == "img"
    title, desc = root[0], root[1]
    assert (title.tag, desc.tag) == (f"{SVG}title", f"{SVG}desc")
    assert title.text == chart.title and desc.text == chart.description
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    # The data URI the page uses is the same document.
    prefix = "data:image/svg+xml;base64,"
    assert chart.data_uri.startswith(prefix)
    assert base64.b64decode(chart.data_uri[len(prefix) :]).decode("utf-8") == chart.svg


def bar_values(chart: report_charts.Chart) -> list[str]:
    """The values pygal writes on each bar (its `<desc class="value">`), in drawing order."""
    return [el.text or "" for el in parsed(chart).iter(f"{SVG}desc") if el.get("class") == "value"]


def test_a_funnel_chart_draws_each_measure_per_milestone() -> None:
    chart = report_charts.funnel_chart(
        "Renewal", ["announce", "reminder"], {"entered": [120, 80], "sent": [110, 75], "escalated": [9, 0]}
    )
    assert_self_contained(chart)
    assert chart.title == "Renewal: funnel per milestone"
    assert chart.description == (
        "Bar chart: Renewal: funnel per milestone. entered: announce 120, reminder 80; "
        "sent: announce 110, reminder 75; escalated: announce 9, reminder 0."
    )
    assert bar_values(chart) == ["120", "80", "110", "75", "9", "0"]
    labels = [el.text for el in parsed(chart).iter(f"{SVG}text")]
    assert {"announce", "reminder", "entered", "sent", "escalated"} <= set(labels)


def test_the_nps_chart_colours_groups_and_says_the_score() -> None:
    counts = {score: score + 1 for score in range(11)}  # 1..11 responses
    chart = report_charts.nps_chart(counts, score=-12.5)
    assert_self_contained(chart)
    assert chart.title == "NPS distribution (NPS -12.5)"
    assert "0: 1, 1: 2" in chart.description and "10: 11" in chart.description
    assert "66 responses; detractors 28, passives 17, promoters 21." in chart.description
    # Stacked: a group draws a zero-height bar where a score is another group's.
    assert sorted((v for v in bar_values(chart) if v != "0"), key=int) == [str(n) for n in range(1, 12)]
    css = re.findall(r"\.color-(\d)[^{]*\{[^}]*?fill:\s*(#[0-9A-Fa-f]{6})", chart.svg)
    assert set(report_charts.NPS_COLORS.values()) <= {color for _, color in css}
    assert (
        report_charts.nps_chart(dict.fromkeys(range(11), 0), None).title == "NPS distribution (no responses)"
    )


def test_the_workload_chart_stacks_the_busiest_and_groups_the_rest() -> None:
    weeks = ["2026-W41", "2026-W42"]
    opened = {f"csm{i:02d}": {"2026-W41": i, "2026-W42": 1} for i in range(1, 14)}  # 13 people
    chart = report_charts.workload_chart(weeks, opened)
    assert_self_contained(chart)
    legend = [
        el.text for el in parsed(chart).iter(f"{SVG}text") if el.text and el.text.startswith(("csm", "every"))
    ]
    assert "everyone else (3)" in legend and "csm13" in legend and "csm01" not in legend
    assert "Per week: 2026-W41 91, 2026-W42 13." in chart.description
    assert "Busiest: csm13 14, csm12 13" in chart.description
    empty = report_charts.workload_chart([], {})
    assert empty.description.endswith("No CTAs in this range.") and "No data in this range" in empty.svg


def test_answer_rates_are_percentages_and_a_missing_rate_is_said() -> None:
    chart = report_charts.answer_rates_chart(["nps", "renewal"], [0.5, None])
    assert_self_contained(chart)
    assert chart.description == (
        "Horizontal bar chart: Answer rate per survey. answered / asked: nps 50%, renewal n/a."
    )
    assert "50%" in bar_values(chart)


def test_a_long_description_is_cut_and_says_where_the_rest_is() -> None:
    labels = [f"milestone_{i}" for i in range(60)]
    chart = report_charts.bar_chart("Many", labels, [("entered", list(range(60))), ("sent", list(range(60)))])
    assert len(chart.description) <= report_charts.DESCRIPTION_MAX
    assert chart.description.endswith("(every number is in the table).")


def test_csv_cells_a_spreadsheet_would_run_get_an_apostrophe() -> None:
    for risky in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralize(risky) == "'" + risky
    assert neutralize("plain") == "plain" and neutralize("a=b") == "a=b"
    assert neutralize(-3) == -3 and neutralize(-0.5) == -0.5 and neutralize(None) == ""
    text = csv_text(["name", "n"], [['=HYPERLINK("x")', -2], ["ok, quoted", 3]])
    assert text.endswith("\r\n")
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "n"],
        ['\'=HYPERLINK("x")', "-2"],
        ["ok, quoted", "3"],
    ]
