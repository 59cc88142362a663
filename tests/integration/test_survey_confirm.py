"""Survey links are safe from mail scanners: opening one shows the question with the clicked answer
selected and one confirm button; only the POST records (both backends, the real app and journeys)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from techtouch import bootstrap
from techtouch.adapters.db.models import Cta, Event, Suppression
from techtouch.adapters.render.links import LinkSigner
from techtouch.entrypoints.web import create_app
from tests.integration.journey_base import Base, account, contact, settings_for

PUBLIC_URL = "https://cs.example.com"
SECRET = "survey-confirm-test-secret-0123456789"
TODAY = date.today()


@pytest.fixture
def base(engine: Engine, tmp_path: Path) -> Base:
    settings = settings_for(engine, tmp_path / "outbox", public_url=PUBLIC_URL, secret_key=SECRET)
    base = Base(engine, settings)
    base.add([account("a1")], [contact("c1", "a1")], as_of=TODAY)
    base.event("a1", "milestone", "live", TODAY - timedelta(days=120))
    return base


@pytest.fixture
def client(base: Base) -> Iterator[TestClient]:
    app = create_app(bootstrap.build(base.settings, engine=base.engine))
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(PUBLIC_URL, SECRET.encode())


def path_of(url: str) -> str:
    return urlsplit(url).path


def counts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as c:
        return {
            "events": c.scalar(select(func.count()).select_from(Event)),
            "answers": sorted(c.scalars(select(Event.value).where(Event.type == "survey"))),
            "ctas": sorted(c.scalars(select(Cta.reason))),
            "suppressions": c.scalar(select(func.count()).select_from(Suppression)),
        }


def test_opening_all_eleven_nps_links_records_nothing_and_raises_no_cta(
    base: Base, client: TestClient, signer: LinkSigner
) -> None:
    base.run(TODAY, "advocacy")  # the NPS email goes out
    before = counts(base.engine)
    assert before["answers"] == [] and before["ctas"] == []

    for score in range(11):  # a mail scanner opens every link of the message
        page = client.get(path_of(signer.survey("a1", "c1", "nps", score)))
        assert page.status_code == 200, page.text
        checked = re.findall(r'value="(\d+)" required checked', page.text)
        assert checked == [str(score)]  # the clicked answer is selected, nothing else
        assert page.text.count('type="submit"') == 1 and 'name="comment"' in page.text
    assert counts(base.engine) == before  # no answer, no event, nothing else
    base.run(TODAY + timedelta(days=1), "advocacy")
    assert counts(base.engine)["ctas"] == []  # no false "Detractor" CTA

    # A person confirms a 3: recorded once, and the detractor CTA follows at the next run.
    path = path_of(signer.survey("a1", "c1", "nps", 3))
    confirmed = client.post(path, data={"answer": "3", "comment": ""})
    assert confirmed.status_code == 200 and "Thank you" in confirmed.text
    assert counts(base.engine)["answers"] == ["nps:3"]
    again = client.post(path, data={"answer": "3"})  # a double submit records nothing more
    assert again.status_code == 200
    assert counts(base.engine)["answers"] == ["nps:3"]
    base.run(TODAY + timedelta(days=2), "advocacy")
    assert counts(base.engine)["ctas"] == ["advocacy_detractor"]


def test_the_confirm_page_can_change_the_answer_within_the_survey_s_answers(
    base: Base, client: TestClient, signer: LinkSigner
) -> None:
    path = path_of(signer.survey("a1", "c1", "nps", 2))
    changed = client.post(path, data={"answer": "9", "comment": "  Clicked too fast.  "})
    assert changed.status_code == 200
    with base.engine.connect() as c:
        rows = c.execute(
            select(Event.type, Event.value, Event.detail, Event.contact_id).order_by(Event.type)
        ).all()
    answers = [tuple(r) for r in rows if r.type in ("survey", "survey_comment")]
    assert answers == [
        ("survey", "nps:9", None, "c1"),
        ("survey_comment", "nps:9", "Clicked too fast.", "c1"),
    ]
    # A later confirmation of another answer is a new answer (the latest counts), as before.
    assert client.post(path, data={"answer": "2"}).status_code == 200
    assert counts(base.engine)["answers"] == ["nps:2", "nps:9"]


@pytest.mark.parametrize(
    ("survey", "clicked", "posted"),
    [
        ("nps", "9", "11"),  # off the scale
        ("nps", "9", "likely"),  # another survey's answer
        ("renewal", "likely", "certainly"),
        ("csat", "4", "0"),
        ("checkin", "not_really", "yes"),  # a free survey takes only the answer its link names
        ("nps", "9", None),  # no answer at all (an empty POST)
    ],
)
def test_a_post_must_carry_one_of_the_survey_s_answers(
    base: Base, client: TestClient, signer: LinkSigner, survey: str, clicked: str, posted: str | None
) -> None:
    before = counts(base.engine)
    data = {} if posted is None else {"answer": posted}
    response = client.post(path_of(signer.survey("a1", "c1", survey, clicked)), data=data)
    assert response.status_code == 400, response.text
    assert counts(base.engine) == before


def test_a_free_survey_confirms_the_answer_its_link_names(
    base: Base, client: TestClient, signer: LinkSigner
) -> None:
    path = path_of(signer.survey("a1", "c1", "checkin", "not_really"))
    page = client.get(path)
    assert page.status_code == 200 and "not really" in page.text
    assert client.post(path, data={"answer": "not_really"}).status_code == 200
    assert counts(base.engine)["answers"] == ["checkin:not_really"]


def test_the_post_verifies_the_token_again(base: Base, client: TestClient, signer: LinkSigner) -> None:
    before = counts(base.engine)
    survey = path_of(signer.survey("a1", "c1", "nps", 0)).rsplit("/", 1)[1]
    unsubscribe = path_of(signer.unsubscribe("c1")).rsplit("/", 1)[1]
    other = LinkSigner(PUBLIC_URL, b"another-deployment-secret")
    for token in (
        survey[:-2] + ("AA" if not survey.endswith("AA") else "BB"),
        unsubscribe,  # an unsubscribe link is not a survey link
        path_of(other.survey("a1", "c1", "nps", 0)).rsplit("/", 1)[1],
    ):
        response = client.post(f"/s/{token}", data={"answer": "0"})
        assert response.status_code == 400 and "not valid" in response.text
    gone = client.post(path_of(signer.survey("gone", "c1", "nps", 0)), data={"answer": "0"})
    assert gone.status_code == 404
    assert client.get(path_of(signer.survey("gone", "c1", "nps", 0))).status_code == 404
    assert counts(base.engine) == before


def test_the_confirm_page_works_without_javascript_and_is_labelled(
    client: TestClient, signer: LinkSigner
) -> None:
    page = client.get(path_of(signer.survey("a1", "c1", "renewal", "unsure"))).text
    assert "<script" not in page.lower()
    assert "<fieldset>" in page and "<legend>How likely are you to renew?</legend>" in page
    radios = re.findall(r'<input type="radio" id="([\w-]+)" name="answer" value="(\w+)"', page)
    assert [value for _, value in radios] == ["likely", "unsure", "not_likely"]
    for input_id, _ in radios:
        assert f'<label for="{input_id}">' in page
    assert '<label for="comment">' in page and '<textarea id="comment" name="comment"' in page
    assert '<form method="post">' in page  # posts back to the link itself
