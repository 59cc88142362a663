"""Signed links: round trips, and every kind of tampering is refused."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest

from techtouch.adapters.render.links import (
    BadToken,
    LinkSigner,
    preferences_url,
    sign,
    survey_url,
    unsubscribe_url,
    verify,
)

SECRET = b"unit-test-secret-0123456789abcdef"
URL = "https://cs.example.com"


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def test_round_trip():
    payload = {"contact": "con_1", "answer": "likely", "name": "Zoë"}
    token = sign(SECRET, "survey", payload)
    assert verify(SECRET, token, "survey") == payload | {"kind": "survey"}
    assert sign(SECRET, "survey", dict(reversed(payload.items()))) == token  # deterministic, order irrelevant


def test_tokens_are_url_safe():
    token = sign(SECRET, "preferences", {"contact": "con/1+2?x=y&z", "emoji": "\u2603"})
    assert token.count(".") == 1
    assert all(c.isalnum() or c in "-_." for c in token)


def test_a_tampered_payload_is_refused():
    token = sign(SECRET, "survey", {"answer": "not_likely"})
    body, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"kind": "survey", "answer": "likely"}).encode())
    with pytest.raises(BadToken):
        verify(SECRET, forged.decode().rstrip("=") + "." + signature, "survey")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    with pytest.raises(BadToken):
        verify(SECRET, f"{flipped}.{signature}", "survey")


def test_a_tampered_signature_is_refused():
    body, signature = sign(SECRET, "preferences", {"contact": "con_1"}).split(".")
    for bad in (signature[:-1] + ("A" if signature[-1] != "A" else "B"), signature[:-2], "", signature + "A"):
        with pytest.raises(BadToken):
            verify(SECRET, f"{body}.{bad}", "preferences")


def test_another_secret_is_refused():
    token = sign(SECRET, "preferences", {"contact": "con_1"})
    with pytest.raises(BadToken):
        verify(b"another-secret", token, "preferences")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "....", "\u00e9.\u00e9", "bm90IGpzb24.xyz"])
def test_malformed_tokens_are_refused(token: str):
    with pytest.raises(BadToken):
        verify(SECRET, token, "survey")


def test_a_signed_payload_that_is_not_a_string_map_is_refused():
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(b'{"answer": 5}').decode().rstrip("=")
    mac = hmac.new(SECRET, body.encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    with pytest.raises(BadToken, match="payload"):
        verify(SECRET, f"{body}.{signature}", "survey")


def test_bad_token_is_a_value_error():
    assert issubclass(BadToken, ValueError)


def test_secrets_must_be_non_empty_bytes():
    with pytest.raises(ValueError):
        sign(b"", "survey", {"a": "b"})
    with pytest.raises(TypeError):
        sign("text", "survey", {"a": "b"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(SECRET, "survey", {"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unknown link kind"):
        sign(SECRET, "login", {"a": "b"})


def test_unsubscribe_url():
    url = unsubscribe_url(URL + "/", SECRET, "con_9", "sms")
    assert url.startswith("https://cs.example.com/u/")
    assert verify(SECRET, token_of(url), "unsubscribe") == {
        "kind": "unsubscribe",
        "contact": "con_9",
        "channel": "sms",
    }
    assert unsubscribe_url(URL, SECRET, "con_9") != url
    assert (
        verify(SECRET, token_of(unsubscribe_url(URL, SECRET, "con_9")), "unsubscribe")["channel"] == "email"
    )


def test_preferences_url():
    url = preferences_url(URL, SECRET, "con_9")
    assert url.startswith("https://cs.example.com/p/")
    assert verify(SECRET, token_of(url), kind="preferences") == {"kind": "preferences", "contact": "con_9"}


def test_survey_url():
    url = survey_url(URL, SECRET, "acc_1", "con_9", "renewal", "unsure")
    assert url.startswith("https://cs.example.com/s/")
    assert verify(SECRET, token_of(url), kind="survey") == {
        "kind": "survey",
        "account": "acc_1",
        "contact": "con_9",
        "survey": "renewal",
        "answer": "unsure",
    }
    with pytest.raises(BadToken):  # signed for surveys: not a valid unsubscribe token at all
        verify(SECRET, token_of(url), kind="unsubscribe")


def test_link_signer_hides_the_secret_and_makes_template_callables():
    signer = LinkSigner(URL, SECRET)
    assert SECRET.decode() not in repr(signer) and "hidden" in repr(signer)
    assert "old" not in repr(LinkSigner(URL, SECRET, [b"old-key"]))
    answer = signer.survey_url_for("acc_1", "con_9")
    assert answer("nps", 10) == survey_url(URL, SECRET, "acc_1", "con_9", "nps", "10")
    assert signer.verify(token_of(answer("nps", 10)), "survey")["answer"] == "10"
    assert signer.unsubscribe("con_9") == unsubscribe_url(URL, SECRET, "con_9")
    assert signer.preferences("con_9") == preferences_url(URL, SECRET, "con_9")
