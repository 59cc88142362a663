"""techtouch.adapters.charts: pygal SVG that can be inlined under the workspace's CSP (no script, no
external reference, no inline style), named for assistive technology, carrying its data points, and
styled by one stylesheet. (Their speed is measured, not asserted: see the README.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from techtouch.adapters import charts
from techtouch.adapters.charts import Series

SVG = "{http://www.w3.org/2000/svg}"
DAY = date(2026, 8, 1)
POINTS = [(DAY + timedelta(days=k), 40.0 + (k % 50)) for k in range(90)]
WEEKS = [(DAY + timedelta(days=7 * k)).isoformat() for k in range(13)]
USAGE = [
    Series("key actions", [200 + 10 * k for k in range(13)]),
    Series("logins", [60 + 3 * k for k in range(13)]),
    Series("active users a day", [4.5 + k % 3 for k in range(13)], secondary=True),
]


def health() -> charts.Chart:
    chart = charts.health_chart(POINTS, green=70, yellow=45)
    assert chart is not None
    return chart


def usage() -> charts.Chart:
    chart = charts.usage_chart(WEEKS, USAGE)
    assert chart is not None
    return chart


def assert_inlinable(svg: str) -> ET.Element:
    """Well-formed SVG with nothing the CSP refuses or the network would be asked for."""
    assert svg.startswith("<svg ") and "<?xml" not in svg
    assert "<script" not in svg  # neither pygal's CDN script (js=[]) nor its inline config
    assert "<style" not in svg and ' style="' not in svg  # the rules are in stylesheet()
    assert not re.search(r'(?:href|src)="(?:https?:)?//', svg)  # nothing external at all
    assert "googleapis" not in svg
    return ET.fromstring(svg)


def test_health_chart_is_inlinable_and_named() -> None:
    chart = health()
    root = assert_inlinable(chart.svg)
    assert root.get("role") == "img"
    assert "tt-health" in (root.get("class") or "").split()
    title, desc = root[0], root[1]
    assert title.tag == f"{SVG}title" and title.text == "Health, last 90 days"
    assert desc.tag == f"{SVG}desc" and desc.text == chart.caption
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert len(root.findall(f"{SVG}title")) == 1  # pygal's own title is replaced, not doubled


def test_health_chart_carries_every_point_and_the_bands() -> None:
    chart = health()
    assert chart.columns == ("day", "health")
    assert chart.rows == tuple((d.isoformat(), f"{score:.0f}") for d, score in POINTS)
    assert "from 2026-08-01 (40) to 2026-10-29 (79), 90 days" in chart.caption
    root = ET.fromstring(chart.svg)
    lines = [
        p
        for p in root.iter(f"{SVG}path")
        if "line" in (p.get("class") or "").split() and "reactive" in (p.get("class") or "")
    ]
    assert len(lines) == 1
    assert len(re.findall(r"[0-9.]+ [0-9.]+", lines[0].get("d") or "")) == len(POINTS)  # one vertex a day
    bands = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "band"]
    assert [b.get("fill") for b in bands] == [charts.GREEN_BAND, charts.YELLOW_BAND, charts.RED_BAND]
    heights = [float(b.get("height") or 0) for b in bands]
    # 100-70, 70-45, 45-0: the bands' heights are in proportion to those ranges.
    assert abs(heights[0] / heights[2] - 30 / 45) < 0.01 and abs(heights[1] / heights[2] - 25 / 45) < 0.01


def test_usage_chart_is_inlinable_and_carries_the_numbers() -> None:
    chart = usage()
    root = assert_inlinable(chart.svg)
    assert "tt-usage" in (root.get("class") or "").split()
    assert chart.columns == ("week from", "key actions", "logins", "active users a day")
    assert chart.rows[0] == ("2026-08-01", "200", "60", "4.5") and chart.rows[-1][0] == WEEKS[-1]
    assert "key actions 3,380" in chart.caption  # 200 + 210 + ... + 320
    lines = [
        p
        for p in root.iter(f"{SVG}path")
        if "reactive" in (p.get("class") or "") and "line" in (p.get("class") or "")
    ]
    assert len(lines) == 3
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert "active users a day (right axis)" in texts and "2026-08-01" in texts


def test_no_data_no_chart() -> None:
    assert charts.health_chart([], green=70, yellow=45) is None
    assert charts.usage_chart([], USAGE) is None
    single = charts.health_chart(POINTS[:1], green=70, yellow=45)
    assert single is not None and single.rows == (("2026-08-01", "40"),)
    assert_inlinable(single.svg)


def test_text_is_escaped() -> None:
    chart = charts.usage_chart(["w1"], [Series("a", [1])], title='Usage <b>&</b> "x"')
    assert chart is not None
    root = assert_inlinable(chart.svg)
    assert root[0].text == 'Usage <b>&</b> "x"'  # escaped in the SVG, read back as text
    assert "<b>" not in chart.svg


def test_stylesheet_scopes_pygal_rules_by_kind() -> None:
    css = charts.stylesheet()
    assert ".tt-health .plot > .background" in css and ".tt-usage .plot > .background" in css
    assert "&gt;" not in css and "#chart-" not in css  # unescaped, and no random id left
    assert ".tt-health .serie-0 .line{stroke-width:2.5}" in css
    assert "svg.tt-chart{" in css
