"""Templates render in Jinja's immutable sandbox: no way to Python internals, settings or secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from techtouch.adapters.render.renderer import Renderer, TemplateProblem, sample_context

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace }}",
    "{{ lipsum.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ account.__class__ }}",
    "{{ survey_url.__globals__ }}",
    "{{ account.update({'name': 'x'}) }}",
    "{{ range.__self__ }}",
]


def write_sms(root: Path, body: str) -> Renderer:
    (root / "t").mkdir(parents=True, exist_ok=True)
    (root / "t" / "m.sms.txt").write_text("Hi\n" + body + "\nReply STOP to opt out")
    return Renderer(root)


@pytest.mark.parametrize("body", ESCAPES)
def test_a_template_cannot_reach_python_internals_and_check_names_its_file_and_line(
    tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TECHTOUCH_SECRET_KEY", "s3cr3t-never-in-a-message")
    renderer = write_sms(tmp_path, body)

    with pytest.raises(TemplateProblem) as raised:
        renderer.sms("t/m", sample_context())
    assert raised.value.line == 2
    assert raised.value.template.endswith("t/m.sms.txt")
    assert "s3cr3t" not in str(raised.value)

    problems = renderer.check("t/m", "sms", sample_context())
    assert problems and problems[0].split(": ")[0].endswith("t/m.sms.txt:2"), problems


def test_the_context_cannot_be_changed_by_a_template(tmp_path: Path) -> None:
    renderer = write_sms(tmp_path, "{{ account.pop('name') }}{{ account.name }}")
    context = sample_context()
    with pytest.raises(TemplateProblem):
        renderer.sms("t/m", context)
    assert context["account"]["name"] == "Northwind Traders"


def test_what_templates_legitimately_use_still_works(tmp_path: Path) -> None:
    renderer = write_sms(
        tmp_path,
        "{% for n in range(3) %}{{ n }}{% endfor %} {{ account.arr|money }} {{ contact.first_name }}",
    )
    assert renderer.sms("t/m", sample_context()).splitlines()[1] == "012 $9,000 Sam"


def test_an_error_that_could_quote_customer_data_keeps_only_its_type(tmp_path: Path) -> None:
    renderer = write_sms(tmp_path, "{{ contact.name|money }}")
    with pytest.raises(TemplateProblem) as raised:
        renderer.sms("t/m", sample_context(contact={"name": "Sam Okafor"}))
    assert "Okafor" not in str(raised.value)
    assert "ValueError" in str(raised.value) and raised.value.line == 2


def test_every_shipped_template_renders_in_the_sandbox() -> None:
    root = Path(__file__).resolve().parents[2] / "templates"
    renderer = Renderer(root)
    shipped = {p.relative_to(root).as_posix().split(".")[0] for p in root.rglob("*.sms.txt")}
    for template in sorted(shipped):
        assert renderer.check(template, "sms", sample_context()) == [], template
