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


# Links in mail already sent must keep their exact bytes: the faster signing (a MAC set up once per
# key, payloads written by hand) is checked against the plain construction it replaces.
AWKWARD = [
    "",
    "con_9",
    'a"b\\c',
    "line\nbreak\ttab\r\x00\x01\x1f\x7f",
    "Zoë €",
    "\U0001f600",
    "\u2028\u2029",
    "<&'>",
]


def reference_token(secret: bytes, kind: str, payload: dict[str, str]) -> str:
    """The token format as the module docstring states it, with json.dumps and hmac.new."""
    import hashlib
    import hmac

    data = json.dumps({**payload, "kind": kind}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body = base64.urlsafe_b64encode(data.encode("utf-8")).rstrip(b"=")
    key = hmac.new(secret, b"techtouch-link:" + kind.encode(), hashlib.sha256).digest()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode("ascii")


@pytest.mark.parametrize("secret", [SECRET, b"k", b"x" * 64, b"y" * 65, bytes(range(256))])
def test_tokens_are_byte_for_byte_the_documented_format(secret: bytes) -> None:
    signer = LinkSigner(URL + "/", secret)
    for value in AWKWARD:
        survey = {"account": value, "contact": "c" + value, "survey": value + "s", "answer": value}
        expected = reference_token(secret, "survey", survey)
        assert sign(secret, "survey", survey) == expected
        assert survey_url(URL, secret, value, "c" + value, value + "s", value) == f"{URL}/s/{expected}"
        assert signer.survey(value, "c" + value, value + "s", value) == f"{URL}/s/{expected}"
        unsubscribe = reference_token(secret, "unsubscribe", {"contact": value, "channel": "sms"})
        assert (
            signer.unsubscribe(value, "sms")
            == unsubscribe_url(URL, secret, value, "sms")
            == f"{URL}/u/{unsubscribe}"
        )
        preferences = reference_token(secret, "preferences", {"contact": value})
        assert signer.preferences(value) == preferences_url(URL, secret, value) == f"{URL}/p/{preferences}"
        free = {value or "k": value, "z" + value: "v", "kind": "ignored"}  # "kind" is always the kind's
        assert sign(secret, "preferences", free) == reference_token(secret, "preferences", free)
    assert signer.survey("a", "c", "nps", 7) == survey_url(URL, secret, "a", "c", "nps", "7")


def test_the_fast_signer_refuses_what_sign_refuses() -> None:
    signer = LinkSigner(URL, SECRET)
    for bad in (1, None, b"con_9"):
        with pytest.raises(TypeError):
            signer.survey(bad, "c", "nps", 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            signer.unsubscribe(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            signer.preferences(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"k", b"x" * 32, b"x" * 64, b"y" * 65, bytes(range(200))])
def test_the_mac_set_up_once_is_hmac_sha256(key: bytes) -> None:
    import hashlib
    import hmac

    from techtouch.adapters.render.links import _Mac

    mac = _Mac(key)
    for message in (b"", b"body", bytes(range(256)) * 3):
        assert mac(message) == hmac.new(key, message, hashlib.sha256).digest()
