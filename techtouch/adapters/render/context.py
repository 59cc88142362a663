"""The render context of one message: exactly the names templates may use (templates/README)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pandas as pd

from techtouch.adapters.render import links
from techtouch.domain.catalog import CompiledJourney
from techtouch.settings import Settings


def _text(value: Any) -> str | None:
    """Pandas hands missing text over as NaN; templates and senders need None."""
    return value if isinstance(value, str) and value else None


def csm_name(email: str | None) -> str | None:
    """`jane.doe@vendor.example` → `Jane Doe` (the CSM directory is out of scope)."""
    email = _text(email)
    if email is None:
        return None
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or None


def _number(value: Any, cast: Callable[[Any], Any] = float) -> Any:
    return None if value is None or pd.isna(value) else cast(value)


def account_context(row: pd.Series, account_id: str) -> dict[str, Any]:
    renewal = row.get("renewal_date")
    return {
        "id": account_id,
        "name": row["name"],
        "segment": row["segment"],
        "arr": float(row["arr"]),
        "renewal_date": None if renewal is None or pd.isna(renewal) else pd.Timestamp(renewal).date(),
        "days_to_renewal": _number(row.get("days_to_renewal"), int),
        "usage_change_30d": _number(row.get("usage_change_30d")),
        "key_actions_30d": int(row.get("key_actions_30d") or 0),
        "logins_14d": int(row.get("logins_14d") or 0),
        "active_users_7d": float(row.get("active_users_7d") or 0.0),
        "health": _number(row.get("health")),
        "health_color": _text(row.get("health_color")),
        "csm_name": csm_name(row.get("csm_email")),
        "csm_email": _text(row.get("csm_email")),
    }


def sender_context(settings: Settings, key: str | None, csm_email: str | None) -> dict[str, str]:
    if key == "csm" and csm_email:
        return {
            "key": "csm",
            "name": csm_name(csm_email) or csm_email,
            "email": csm_email,
            "title": "Customer Success Manager",
        }
    sender = settings.senders.get(key or "success") or settings.senders["success"]
    return {"key": key or "success", "name": sender.name, "email": sender.email, "title": sender.title}


def context_builder(
    settings: Settings, accounts: pd.DataFrame, catalog: dict[str, CompiledJourney], secret: bytes
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function from a pending touch row (with contact columns) to its template context.

    Built once per account and per contact: an account's context and a contact's signed links are
    made the first time a message needs them, and a survey link once per answer (the HTML and the
    text part of a message print the same ones). Signing is deterministic, so the links are the same.
    """
    public = settings.public_url.rstrip("/")
    cache: dict[str, dict[str, Any]] = {}  # contacts of one account share it; .loc per message is slow
    contact_links: dict[str, dict[str, str]] = {}
    survey_links: dict[tuple[str, str, str, str], str] = {}
    milestone_titles: dict[tuple[str, str], str | None] = {}

    def account_for(account_id: str) -> dict[str, Any]:
        if account_id not in cache:
            # The accounts are indexed by their unique id: a label selects one row, never a frame.
            cache[account_id] = account_context(cast(pd.Series, accounts.loc[account_id]), account_id)
        return cache[account_id]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        account_id = row["account_id"]
        account = account_for(account_id)
        journey = catalog.get(row["journey"])
        if (row["journey"], row["milestone"]) not in milestone_titles:
            found = [m.spec for m in journey.milestones if m.spec.id == row["milestone"]] if journey else []
            milestone_titles[row["journey"], row["milestone"]] = found[0].title if found else None
        milestone_title = milestone_titles[row["journey"], row["milestone"]]
        contact_id = row["contact_id"]
        name = row.get("contact_name") or ""
        if contact_id not in contact_links:
            contact_links[contact_id] = {
                "unsubscribe": links.unsubscribe_url(public, secret, contact_id),
                "preferences": links.preferences_url(public, secret, contact_id),
            }

        def survey_url(survey: str, answer: str | int) -> str:
            key = (account_id, contact_id, survey, str(answer))
            if key not in survey_links:
                survey_links[key] = links.survey_url(public, secret, *key)
            return survey_links[key]

        return {
            "account": account,
            "contact": {
                "id": contact_id,
                "name": name,
                "first_name": name.split(" ")[0] if name else "",
                "role": row.get("role"),
            },
            "sender": sender_context(settings, _text(row.get("sender")), account["csm_email"]),
            "journey": {"id": row["journey"], "name": journey.spec.name if journey else row["journey"]},
            "milestone": {"id": row["milestone"], "title": milestone_title or row["milestone"]},
            "touch_key": row["key"],
            "links": dict(contact_links[contact_id]),
            "survey_url": survey_url,
        }

    return build
