"""Rendering: every journey template renders strictly, HTML is escaped and inlined, SMS fit."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from techtouch.adapters.render.renderer import (
    SMS_MAX,
    RenderedEmail,
    Renderer,
    TemplateProblem,
    gift_code,
    longdate,
    money,
    percent,
    sample_context,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
JOURNEYS = ROOT / "config" / "journeys"


def referenced_templates() -> set[tuple[str, str]]:
    """(template, channel) for every rung, branch message and goal message in config/journeys."""
    found: set[tuple[str, str]] = set()

    def message(spec: dict | None) -> None:
        if spec and spec.get("template"):
            found.add((spec["template"], spec.get("channel", "email")))

    for path in sorted(JOURNEYS.glob("*.yaml")):
        journey = yaml.safe_load(path.read_text())
        for goal in journey.get("goals", []):
            message(goal.get("message"))
        for milestone in journey["milestones"]:
            for rung in milestone["ladder"]:
                if rung["channel"] in ("email", "sms"):
                    found.add((rung["template"], rung["channel"]))
            for branch in milestone.get("branches", []):
                message(branch.get("message"))
    return found


REFERENCED = sorted(referenced_templates())


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def test_the_journeys_reference_templates_on_both_channels():
    channels = {channel for _, channel in REFERENCED}
    assert channels == {"email", "sms"}
    assert len(REFERENCED) >= 20


@pytest.mark.parametrize(("template", "channel"), REFERENCED, ids=[f"{t}.{c}" for t, c in REFERENCED])
def test_every_referenced_template_renders_with_the_sample(renderer: Renderer, template: str, channel: str):
    context = sample_context()
    assert all(path.is_file() for path in renderer.files_for(template, channel))  # type: ignore[arg-type]
    assert renderer.check(template, channel, context) == []  # type: ignore[arg-type]
    if channel == "email":
        email = renderer.email(template, context)
        assert 0 < len(email.subject) <= 150 and "\n" not in email.subject
        assert context["links"]["unsubscribe"] in email.html
        assert context["links"]["unsubscribe"] in email.text
        assert "Sam" in email.text and "Dana Reyes" in email.html  # contact and sender
        assert "<style" not in email.html and 'style="' in email.html
    else:
        body = renderer.sms(template, context)
        assert len(body) <= SMS_MAX
        assert "Reply STOP to opt out" in body


@pytest.mark.parametrize(("template", "channel"), REFERENCED, ids=[f"{t}.{c}" for t, c in REFERENCED])
def test_templates_render_without_a_csm_or_renewal_date(renderer: Renderer, template: str, channel: str):
    context = sample_context(
        account={"csm_name": None, "csm_email": None, "renewal_date": None, "days_to_renewal": None},
    )
    context["account"]["usage_change_30d"] = None
    assert renderer.check(template, channel, context) == []  # type: ignore[arg-type]
    if channel == "email":
        assert "None" not in renderer.email(template, context).text


def test_survey_emails_carry_one_click_answers(renderer: Renderer):
    def links(template: str) -> str:
        return renderer.email(template, sample_context()).html

    renewal = links("renewal/announce")
    for answer in ("likely", "unsure", "not_likely"):
        assert f'href="https://example.invalid/s/renewal/{answer}"' in renewal
    nps = links("advocacy/nps")
    assert all(f'https://example.invalid/s/nps/{n}"' in nps for n in range(11))
    csat = links("onboarding/csat")
    assert all(f'https://example.invalid/s/csat/{n}"' in csat for n in range(1, 6))
    assert "https://example.invalid/s/csat/0" not in csat
    advocate = links("advocacy/advocate_ask")
    assert "/s/advocate/yes" in advocate and "/s/advocate/no" in advocate


def test_the_risk_report_shows_the_accounts_own_numbers(renderer: Renderer):
    context = sample_context(account={"usage_change_30d": -0.37, "logins_14d": 11, "active_users_7d": 4.6})
    email = renderer.email("risk/report", context)
    assert "down 37%" in email.text
    assert "\u221237%" in email.html
    assert "Sign-ins in the last 14 days: 11" in email.text
    assert "typical day last week: 5" in email.text
    assert "Dana Reyes, your Customer Success Manager" in email.text
    no_csm = renderer.email("risk/report", sample_context(account={"csm_name": None, "csm_email": None}))
    assert "someone from our Customer Success team" in no_csm.text


def test_the_gift_code_comes_from_the_touch_key(renderer: Renderer):
    email = renderer.email("advocacy/thanks_gift", sample_context(touch_key="7:ask:agreed"))
    assert gift_code("7:ask:agreed") in email.html
    assert gift_code("7:ask:agreed") in email.text


def test_html_is_autoescaped_and_text_is_not(renderer: Renderer):
    context = sample_context(contact={"first_name": "<script>alert(1)</script>", "name": "Tom & Jerry"})
    email = renderer.email("onboarding/welcome", context)
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Tom &amp; Jerry" in email.html
    assert "<script>alert(1)</script>" in email.text  # plain text is not HTML
    assert "<script>alert(1)</script>" in email.subject


def test_css_is_inlined(renderer: Renderer):
    html = renderer.email("renewal/announce", sample_context()).html
    assert "<style" not in html
    assert '<a class="choice" href="https://example.invalid/s/renewal/likely" style="' in html
    assert "border: 1px solid #1d4ed8" in html


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A small template tree: a layout and one good email."""
    root = tmp_path / "templates"
    write(root, "_layout.email.html", "<html><body>\n{% block body %}{% endblock %}\n</body></html>\n")
    write(root, "j/good.subject.txt", "Hello {{ contact.first_name }}\n")
    write(
        root, "j/good.email.html", '{% extends "_layout.email.html" %}{% block body %}<p>hi</p>{% endblock %}'
    )
    write(root, "j/good.email.txt", "hi\n")
    return root


def test_an_undefined_variable_names_file_and_line(scratch: Path):
    write(scratch, "j/typo.subject.txt", "Renewal\n")
    write(scratch, "j/typo.email.txt", "ok\n")
    write(
        scratch,
        "j/typo.email.html",
        '{% extends "_layout.email.html" %}\n{% block body %}\n<p>Hi</p>\n'
        "<p>{{ account.nam }}</p>\n{% endblock %}\n",
    )
    renderer = Renderer(scratch)
    with pytest.raises(TemplateProblem) as caught:
        renderer.email("j/typo", sample_context())
    problem = caught.value
    assert problem.template.endswith("templates/j/typo.email.html")
    assert problem.line == 4
    assert problem.message == "'account' has no attribute 'nam'"
    assert str(problem).endswith("templates/j/typo.email.html:4: 'account' has no attribute 'nam'")
    assert renderer.check("j/typo", "email", sample_context()) == [str(problem)]


def test_problems_name_paths_as_the_user_gave_them(scratch: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(scratch.parent)
    write(scratch, "renewal/announce.sms.txt", "Hi\n{{ account.nam }} Reply STOP to opt out\n")
    with pytest.raises(TemplateProblem) as caught:
        Renderer(Path("templates")).sms("renewal/announce", sample_context())
    assert str(caught.value) == "templates/renewal/announce.sms.txt:2: 'account' has no attribute 'nam'"


def test_an_unknown_top_level_name_is_an_error_not_empty_text(scratch: Path):
    write(scratch, "j/x.sms.txt", "Hi {{ contact.first_name }}\n{{ coupon }} Reply STOP to opt out\n")
    with pytest.raises(TemplateProblem, match=r"j/x\.sms\.txt:2: 'coupon' is undefined"):
        Renderer(scratch).sms("j/x", sample_context())


def test_an_error_in_the_layout_names_the_layout(scratch: Path):
    write(
        scratch,
        "_layout.email.html",
        "<html>\n<body>{% block body %}{% endblock %}\n{{ sender.titel }}</body>\n",
    )
    with pytest.raises(TemplateProblem) as caught:
        Renderer(scratch).email("j/good", sample_context())
    assert caught.value.template.endswith("templates/_layout.email.html")
    assert caught.value.line == 3
    assert "'sender' has no attribute 'titel'" in caught.value.message


def test_check_reports_syntax_errors_and_missing_files(scratch: Path):
    write(scratch, "j/broken.subject.txt", "Hi\n")
    write(scratch, "j/broken.email.txt", "line one\n{% if contact.name %}\nunclosed\n")
    renderer = Renderer(scratch)
    problems = renderer.check("j/broken", "email", sample_context())
    assert len(problems) == 1 and problems[0].endswith("templates/j/broken.email.html: missing template file")
    write(scratch, "j/broken.email.html", "<p>ok</p>")
    (problem,) = renderer.check("j/broken", "email", sample_context())
    assert "templates/j/broken.email.txt:" in problem and "endif" in problem
    assert renderer.check("j/good", "email", sample_context()) == []
    assert renderer.check("j/good", "sms", sample_context())[0].endswith(
        "j/good.sms.txt: missing template file"
    )


def test_files_for(scratch: Path):
    renderer = Renderer(scratch)
    assert [p.name for p in renderer.files_for("j/good", "email")] == [
        "good.subject.txt",
        "good.email.html",
        "good.email.txt",
    ]
    assert renderer.files_for("j/good", "sms") == [scratch / "j/good.sms.txt"]
    with pytest.raises(ValueError):
        renderer.files_for("../etc/passwd", "sms")
    with pytest.raises(ValueError):
        renderer.files_for("j/good", "cta")  # type: ignore[arg-type]


def test_subject_must_be_one_short_line(scratch: Path):
    renderer = Renderer(scratch)
    write(scratch, "j/good.subject.txt", "{{ 'x' * 151 }}")
    with pytest.raises(TemplateProblem, match="151 characters, more than 150"):
        renderer.email("j/good", sample_context())
    write(scratch, "j/good.subject.txt", "Hello\n{{ contact.first_name }}\n")
    with pytest.raises(TemplateProblem, match="one line"):
        Renderer(scratch).email("j/good", sample_context())
    newline_in_data = sample_context(contact={"first_name": "Sam\nBcc: x@example.com"})
    write(scratch, "j/good.subject.txt", "Hello {{ contact.first_name }}\n")
    with pytest.raises(TemplateProblem, match="one line"):
        Renderer(scratch).email("j/good", newline_in_data)


def test_email_parts(scratch: Path):
    email = Renderer(scratch).email("j/good", sample_context())
    assert email == RenderedEmail(subject="Hello Sam", html=email.html, text="hi\n")
    assert "<p>hi</p>" in email.html


def test_check_flags_long_sms_and_characters_outside_gsm7(scratch: Path):
    write(scratch, "j/long.sms.txt", "{{ 'x' * 170 }} Reply STOP to opt out")
    write(scratch, "j/fancy.sms.txt", "It\u2019s ready \u2014 Reply STOP to opt out")
    write(scratch, "j/nostop.sms.txt", "Hi {{ contact.first_name }}")
    renderer = Renderer(scratch)
    assert "more than one SMS (160)" in renderer.check("j/long", "sms", sample_context())[0]
    assert "GSM-7" in renderer.check("j/fancy", "sms", sample_context())[0]
    assert "opt out" in renderer.check("j/nostop", "sms", sample_context())[0]


def test_each_renderer_has_its_own_environment(scratch: Path):
    first, second = Renderer(scratch), Renderer(TEMPLATES)
    assert first.environment is not second.environment
    assert first.environment.undefined.__name__ == "StrictUndefined"


def test_percent():
    assert percent(-0.42) == "\u221242%"
    assert percent(0.15) == "15%"
    assert percent(0.15, signed=True) == "+15%"
    assert percent(0.0, signed=True) == "0%"
    assert percent(-0.004) == "0%"
    assert percent(-0.125) == "\u221213%"
    assert percent(None) == "n/a"


def test_money():
    assert money(9000.0) == "$9,000"
    assert money(1234567.5) == "$1,234,568"
    assert money(0) == "$0"
    assert money(-250) == "\u2212$250"
    assert money(None) == "n/a"


def test_longdate():
    assert longdate(date(2027, 3, 3)) == "March 3, 2027"
    assert longdate(datetime(2026, 12, 25, 9, 30)) == "December 25, 2026"
    assert longdate(None) == "n/a"


def test_gift_code():
    code = gift_code("42:ask:agreed")
    assert len(code) == 10 and code == code.upper() and all(c in "0123456789ABCDEF" for c in code)
    assert code == gift_code("42:ask:agreed") != gift_code("43:ask:agreed")


def test_sample_context_shape_and_overrides():
    context = sample_context(contact={"name": "Ada"}, touch_key="k")
    assert set(context) == {
        "account",
        "contact",
        "sender",
        "journey",
        "milestone",
        "touch_key",
        "links",
        "survey_url",
    }
    assert context["contact"] == {"id": "con_000456", "name": "Ada", "first_name": "Sam", "role": "admin"}
    assert context["touch_key"] == "k"
    assert context["survey_url"]("nps", 9) == "https://example.invalid/s/nps/9"
    assert set(context["account"]) == {
        "id",
        "name",
        "segment",
        "arr",
        "renewal_date",
        "days_to_renewal",
        "usage_change_30d",
        "key_actions_30d",
        "logins_14d",
        "active_users_7d",
        "health",
        "health_color",
        "csm_name",
        "csm_email",
    }
    assert sample_context()["contact"]["name"] == "Sam Okafor"  # overrides do not leak
