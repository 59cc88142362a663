"""Link keys: a rotating key list (the first signs, every one verifies) and tokens namespaced by kind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from techtouch.adapters.render.links import KINDS, BadToken, LinkSigner, sign, verify
from techtouch.settings import Settings

URL = "https://cs.example.com"
OLD = b"link-key-of-last-year-0123456789abcdef"
NEW = b"link-key-of-this-year-0123456789abcdef"


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def test_a_link_signed_with_the_old_key_verifies_after_a_rotation_while_the_old_key_is_kept() -> None:
    sent_last_year = token_of(LinkSigner(URL, OLD).unsubscribe("con_1"))
    rotated = LinkSigner(URL, NEW, previous=[OLD])
    assert rotated.verify(sent_last_year, "unsubscribe") == {
        "kind": "unsubscribe",
        "contact": "con_1",
        "channel": "email",
    }
    # The first key signs: new links are the new key's, and verify without the old one.
    fresh = token_of(rotated.unsubscribe("con_1"))
    assert fresh != sent_last_year
    assert LinkSigner(URL, NEW).verify(fresh, "unsubscribe")["contact"] == "con_1"
    with pytest.raises(BadToken):
        LinkSigner(URL, OLD).verify(fresh, "unsubscribe")


def test_removing_the_old_key_revokes_its_links() -> None:
    sent_last_year = token_of(LinkSigner(URL, OLD).survey("acc_1", "con_1", "nps", 9))
    with pytest.raises(BadToken, match="signature"):
        LinkSigner(URL, NEW).verify(sent_last_year, "survey")
    with pytest.raises(BadToken, match="signature"):
        verify([NEW, b"some-other-key"], sent_last_year, "survey")
    assert verify([NEW, b"some-other-key", OLD], sent_last_year, "survey")["answer"] == "9"


def test_a_key_list_needs_at_least_one_good_key() -> None:
    token = sign(NEW, "preferences", {"contact": "con_1"})
    with pytest.raises(ValueError):
        verify([], token, "preferences")
    with pytest.raises(ValueError):
        verify([NEW, b""], token, "preferences")
    with pytest.raises(ValueError):
        LinkSigner(URL, NEW, previous=[b""])


@pytest.mark.parametrize(("signed", "checked"), list(itertools.permutations(KINDS, 2)))
def test_a_token_of_one_kind_never_verifies_as_another(signed: str, checked: str) -> None:
    payload = {"account": "acc_1", "contact": "con_1", "survey": "nps", "answer": "0", "channel": "email"}
    token = sign(NEW, signed, payload)
    assert verify(NEW, token, signed)["kind"] == signed
    with pytest.raises(BadToken, match="signature"):  # refused by the MAC, not only by the payload
        verify([NEW, OLD], token, checked)


def test_the_mac_key_is_derived_per_kind() -> None:
    """The same body under the plain secret, or another kind's key, is refused: a payload claiming
    `kind: survey` is only a survey link if it was signed as one."""
    body = base64.urlsafe_b64encode(json.dumps({"kind": "survey", "answer": "0"}).encode()).decode()
    body = body.rstrip("=")
    for key in (
        hmac.new(NEW, b"techtouch-link:unsubscribe", hashlib.sha256).digest(),
        hmac.new(NEW, b"techtouch-link:preferences", hashlib.sha256).digest(),
        b"another-secret",
    ):
        mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
        forged = f"{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
        with pytest.raises(BadToken):
            verify(NEW, forged, "survey")


def test_links_in_mail_sent_before_kinds_were_namespaced_still_work_for_their_own_kind() -> None:
    """Tokens of the earlier format (MAC under the secret itself, kind only in the payload)."""
    data = json.dumps({"channel": "email", "contact": "con_1", "kind": "unsubscribe"}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")
    mac = hmac.new(OLD, body.encode(), hashlib.sha256).digest()
    legacy = f"{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert LinkSigner(URL, NEW, previous=[OLD]).verify(legacy, "unsubscribe")["contact"] == "con_1"
    for other in ("survey", "preferences"):
        with pytest.raises(BadToken):
            verify([NEW, OLD], legacy, other)


def test_verify_always_names_the_kind() -> None:
    token = sign(NEW, "survey", {"answer": "9"})
    with pytest.raises(TypeError):
        verify(NEW, token)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown link kind"):
        verify(NEW, token, "login")


def test_previous_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHTOUCH_SECRET_KEY", NEW.decode())
    monkeypatch.setenv("TECHTOUCH_PREVIOUS_SECRET_KEYS", f" {OLD.decode()} , second-old-key ,")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.previous_secret_keys] == [OLD.decode(), "second-old-key"]
    assert OLD.decode() not in repr(settings) and "second-old-key" not in str(settings.model_dump())

    monkeypatch.setenv("TECHTOUCH_PREVIOUS_SECRET_KEYS", json.dumps(["a,key,with,commas"]))
    assert [k.get_secret_value() for k in Settings().previous_secret_keys] == ["a,key,with,commas"]

    monkeypatch.delenv("TECHTOUCH_PREVIOUS_SECRET_KEYS")
    assert Settings().previous_secret_keys == []
    with pytest.raises(ValidationError, match="must not be empty"):
        Settings(previous_secret_keys=["  "])
