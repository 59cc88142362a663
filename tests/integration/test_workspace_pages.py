"""The CTA page (`/inbox/ctas/<id>`) and the account page (`/accounts/<id>`) through FastAPI's
TestClient, signed in through the real `/login` form, on SQLite and PostgreSQL: who sees what
(own CTA 200, someone else's 403, unknown 404, ops read-only), what the pages say (why it fired, the
charts, contacts, timeline), that their forms work, and that data is escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from techtouch.adapters.db.models import Event
from tests.integration.test_account_view import CSM, MANAGER, OPS, OTHER_CSM, OTHER_MANAGER, Story, seed_story
from tests.integration.workspace_base import client_for, csrf_of, cta_status, sign_in

ACTION_FORM = re.compile(r'<form method="post" action="/inbox/ctas/\d+/(\w+)"')
SELECT_OPTIONS = re.compile(r'<select id="b-outcome" name="outcome" required>(.*?)</select>', re.DOTALL)
OPTION = re.compile(r'<option value="([^"]+)">')


@pytest.fixture
def story(engine: Engine, tmp_path: Path) -> Story:
    """The seeded account, on the team's today (the pages measure "overdue" and the charts from it)."""
    today = datetime.now(UTC).date()  # the test settings' timezone is UTC
    return seed_story(engine, tmp_path, today=today)


def client_as(story: Story, email: str) -> TestClient:
    client = client_for(story.app)
    signed = sign_in(client, email)
    assert signed.status_code == 303, signed.text
    return client


def test_csm_sees_their_cta_with_why_charts_contacts_and_timeline(story: Story) -> None:
    client = client_as(story, CSM)
    page = client.get(f"/inbox/ctas/{story.cta_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Renewal at risk: unsure" in html
    # Why it fired: the condition (escaped), the values it saw, the answer, its contact and comment.
    assert "Why it fired" in html
    assert "survey.renewal in [&#39;unsure&#39;, &#39;not_likely&#39;]" in html
    assert "<code>days_to_renewal</code></th><td>84</td>" in html
    assert "Ada Lovelace" in html and "budget cuts next year" in html
    # Overdue (due yesterday), the account's facts, both charts inline, their stylesheet linked.
    assert '<span class="tag">overdue</span>' in html
    assert "12,000" in html and "Casey Morgan" in html
    assert html.count("<svg") == 2 and 'class="pygal-chart tt-chart tt-health"' in html
    assert '<link rel="stylesheet" href="/charts.css">' in html
    assert "<script" not in html.split("<svg", 1)[1].split("</main>")[0]  # no script in the content
    # Contacts with their consent and suppressions; the timeline.
    assert "Bob Stone" in html and "Sms stop" in html and "email address: Unsubscribed" in html
    assert "Email opened" in html and "Comment on renewal: unsure" in html
    # The actions, each with the CSRF field and `next` = this page.
    assert set(ACTION_FORM.findall(html)) == {"done", "snooze", "assign", "note", "cancel"}  # started already
    assert html.count(f'name="next" value="/inbox/ctas/{story.cta_id}"') == 5
    assert csrf_of(html)
    options = SELECT_OPTIONS.search(html)
    assert options is not None and "renewal_confirmed" in OPTION.findall(options.group(1))


def test_the_page_forms_work(story: Story, engine: Engine) -> None:
    """Done with an outcome and a note, through the page's own form: back to the page, which now
    shows the outcome, the history row and no form (the CTA is closed)."""
    client = client_as(story, CSM)
    html = client.get(f"/inbox/ctas/{story.cta_id}").text
    answer = client.post(
        f"/inbox/ctas/{story.cta_id}/done",
        data={
            "csrf_token": csrf_of(html),
            "next": f"/inbox/ctas/{story.cta_id}",
            "outcome": "renewal_confirmed",
            "note": "signed the quote",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/inbox/ctas/{story.cta_id}"
    assert cta_status(engine, story.cta_id) == ("done", CSM, "renewal_confirmed")
    after = client.get(f"/inbox/ctas/{story.cta_id}").text
    assert "<strong>Renewal confirmed</strong>" in after and "signed the quote" in after
    assert "This CTA is closed" in after and not ACTION_FORM.search(after)


def test_another_csm_gets_403_and_an_unknown_id_404(story: Story) -> None:
    other = client_as(story, OTHER_CSM)
    refused = other.get(f"/inbox/ctas/{story.cta_id}")
    assert refused.status_code == 403
    assert "Renewal at risk" not in refused.text and "Northwind" not in refused.text
    missing = other.get("/inbox/ctas/987654")
    assert missing.status_code == 404 and "no such CTA" in missing.text
    assert other.get(f"/inbox/ctas/{story.other_cta_id}").status_code == 200  # Robin's own


def test_ops_read_only(story: Story) -> None:
    ops = client_as(story, OPS)
    page = ops.get(f"/inbox/ctas/{story.cta_id}")
    assert page.status_code == 200
    assert "Why it fired" in page.text and "<svg" in page.text
    assert "Read-only: ops see every CTA and change none." in page.text
    assert not ACTION_FORM.search(page.text)


def test_closed_cta_has_no_forms(story: Story) -> None:
    page = client_as(story, CSM).get(f"/inbox/ctas/{story.closed_cta_id}")
    assert page.status_code == 200
    assert "This CTA is closed" in page.text and not ACTION_FORM.search(page.text)
    assert "before techtouch recorded why" in page.text  # `why` is {} on this older CTA


def test_signed_out_goes_to_login_and_comes_back(story: Story) -> None:
    client = client_for(story.app)
    answer = client.get(f"/inbox/ctas/{story.cta_id}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=/inbox/ctas/{story.cta_id}"
    assert client.get("/accounts/a1").headers["location"] == "/login?next=/accounts/a1"
    signed = sign_in(client, CSM, next_path=f"/inbox/ctas/{story.cta_id}")
    assert signed.headers["location"] == f"/inbox/ctas/{story.cta_id}"


def test_account_page(story: Story) -> None:
    client = client_as(story, CSM)
    page = client.get("/accounts/a1")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Northwind</h1>" in html and html.count("<svg") == 2
    # Journeys and positions, CTAs (links to the ones Casey may open), the timeline.
    assert "announce" in html and "active, step 2" in html and "(Recovered)" in html
    assert (
        f'href="/inbox/ctas/{story.cta_id}"' in html and f'href="/inbox/ctas/{story.closed_cta_id}"' in html
    )
    assert "Detractor follow-up" in html and f'href="/inbox/ctas/{story.other_cta_id}"' not in html
    assert "private to Robin" not in html
    assert "Timeline" in html and "Milestone reached: configured" in html
    assert not ACTION_FORM.search(html)  # read-only: the actions are on the CTA pages


def test_account_page_access(story: Story) -> None:
    casey = client_as(story, CSM)
    assert casey.get("/accounts/a2").status_code == 403  # Robin's account
    assert casey.get("/accounts/nope").status_code == 404
    assert casey.get("/accounts/" + "x" * 300).status_code == 404
    assert client_as(story, OTHER_CSM).get("/accounts/a1").status_code == 200  # holds a CTA there
    assert client_as(story, MANAGER).get("/accounts/a2").status_code == 200  # the team's
    assert client_as(story, OTHER_MANAGER).get("/accounts/a2").status_code == 403  # another team's
    assert client_as(story, OPS).get("/accounts/a2").status_code == 200


def test_data_is_escaped(story: Story, engine: Engine) -> None:
    """A comment is the customer's text: it is shown, never run."""
    with engine.begin() as c:
        c.execute(
            insert(Event).values(
                key="e-markup",
                account_id="a1",
                contact_id="c1",
                occurred_at=datetime.now(UTC) - timedelta(minutes=5),
                type="survey_comment",
                value="renewal:unsure",
                source="link",
                detail='<script>alert("x")</script><b>bold</b>',
            )
        )
    html = client_as(story, CSM).get("/accounts/a1").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html


def test_charts_stylesheet(story: Story) -> None:
    css = client_for(story.app).get("/charts.css")  # no data in it: no session needed
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    assert ".tt-health .plot > .background" in css.text and ".tt-usage" in css.text
