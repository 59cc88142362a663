"""The render context of one message: exactly the names templates may use (templates/README)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from techtouch.adapters.render import links
from techtouch.domain.catalog import CompiledJourney
from techtouch.settings import Settings


def _text(value: Any) -> str | None:
    """Pandas hands missing text over as NaN; templates and senders need None."""
    return value if isinstance(value, str) and value else None


# email → (name, title) of the users (techtouch.services.users.people): who a CSM's emails sign as.
People = Mapping[str, tuple[str, str | None]]
CSM_TITLE = "Customer Success Manager"


def csm_name(email: str | None, people: People | None = None) -> str | None:
    """The CSM's name: their user's (`techtouch users add`), else derived from the address
    (`jane.doe@vendor.example` → `Jane Doe`), since an account's CSM needs no user."""
    email = _text(email)
    if email is None:
        return None
    if people and (person := people.get(email.lower())) is not None:
        return person[0]
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or None


def _number(value: Any, cast: Callable[[Any], Any] = float) -> Any:
    return None if value is None or pd.isna(value) else cast(value)


# The columns of the accounts frame an account's context reads (a missing one reads as None).
ACCOUNT_COLUMNS = (
    "name", "segment", "arr", "renewal_date", "days_to_renewal", "usage_change_30d", "key_actions_30d",
    "logins_14d", "active_users_7d", "health", "health_color", "csm_email",
)  # fmt: skip


def account_context(
    row: Mapping[str, Any] | pd.Series, account_id: str, people: People | None = None
) -> dict[str, Any]:
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
        "csm_name": csm_name(row.get("csm_email"), people),
        "csm_email": _text(row.get("csm_email")),
    }


def sender_context(
    settings: Settings, key: str | None, csm_email: str | None, people: People | None = None
) -> dict[str, str]:
    if key == "csm" and csm_email:
        person = people.get(csm_email.lower()) if people else None
        return {
            "key": "csm",
            "name": csm_name(csm_email, people) or csm_email,
            "email": csm_email,
            "title": (person[1] if person else None) or CSM_TITLE,
        }
    sender = settings.senders.get(key or "success") or settings.senders["success"]
    return {"key": key or "success", "name": sender.name, "email": sender.email, "title": sender.title}


class AccountColumns:
    """The columns of the accounts frame that account contexts read, taken out of the frame once
    and read by position: a batch of accounts is one vectorized lookup of positions and one `take`
    per column, never a pandas row per account; a single account is one hash lookup of its position
    and one item per column.

    Numpy columns are views (no copy). Extension columns (pandas' `str` dtype) are turned into object
    arrays once, the same objects their iteration yields: pandas' own `take` and item access on them
    cost tens of microseconds each, which for an account built alone was most of its context's cost.
    """

    def __init__(self, accounts: pd.DataFrame, people: People | None = None):
        self.index = accounts.index
        self.people = people
        self.columns: dict[str, np.ndarray] = {
            name: _object_array(accounts[name].array)
            if isinstance(accounts[name].dtype, pd.api.extensions.ExtensionDtype)
            else accounts[name].to_numpy(copy=False)
            for name in ACCOUNT_COLUMNS
            if name in accounts.columns
        }  # fmt: skip

    def contexts(self, account_ids: list[str]) -> list[dict[str, Any]]:
        """The contexts of these accounts, in order. An id outside the frame is a KeyError (as .loc)."""
        positions = self.index.get_indexer(pd.Index(account_ids))
        if (positions < 0).any():
            raise KeyError([a for a, p in zip(account_ids, positions, strict=True) if p < 0][:5])
        taken = {name: list(values.take(positions)) for name, values in self.columns.items()}
        names = list(taken)
        return [
            account_context(dict(zip(names, values, strict=True)), account_id, self.people)
            for account_id, *values in zip(account_ids, *taken.values(), strict=True)
        ]

    def context(self, account_id: str) -> dict[str, Any]:
        """The context of one account: the same values as `contexts([account_id])`. KeyError when the
        id is not in the frame."""
        position = self.index.get_loc(account_id)
        if not isinstance(position, int | np.integer):  # a duplicated id: .loc would give a frame
            raise KeyError(account_id)
        row = {name: values[position] for name, values in self.columns.items()}
        return account_context(row, account_id, self.people)


def _object_array(values: pd.api.extensions.ExtensionArray) -> np.ndarray:
    """An extension array as an object array of the very items iterating it gives (str, NaN, ...).
    to_numpy, not a Python loop over the items: pandas' item access is what this class avoids.
    (It may be the array's own storage, as the numpy columns are views: nothing writes to them.)"""
    return values.to_numpy(dtype=object)


class ContextBuilder:
    """A function from a pending touch row (with contact columns) to its template context.

    Built once per account and per contact: an account's context and a contact's signed links are
    made the first time a message needs them, and a survey link once per answer (the HTML and the
    text part of a message print the same ones). Signing is deterministic, so the links are the same.
    `prepare` starts a batch (delivery calls it per batch): it empties the caches and builds the
    account contexts of the batch's rows at once; a row whose account was not prepared has it built
    alone, to the same value.
    """

    def __init__(
        self,
        settings: Settings,
        accounts: pd.DataFrame,
        catalog: dict[str, CompiledJourney],
        secret: bytes,
        people: People | None = None,
    ):
        self.settings, self.secret = settings, secret
        self.people = people or {}
        self.frame: pd.DataFrame | None = accounts
        self._columns: AccountColumns | None = None  # taken on first use: a builder may build nothing
        # Each journey's name and its milestones' titles (the first of an id): all a context reads
        # of the catalog.
        self.journeys: dict[str, tuple[str, dict[str, str | None]]] = {}
        for journey_id, journey in catalog.items():
            titles: dict[str, str | None] = {}
            for milestone in journey.milestones:
                titles.setdefault(milestone.spec.id, milestone.spec.title)
            self.journeys[journey_id] = (journey.spec.name, titles)
        self._start()

    def _start(self) -> None:
        """The signer and empty caches (a fresh builder, or one unpickled in a render worker)."""
        self.public = self.settings.public_url.rstrip("/")
        self.signer = links.LinkSigner(self.public, self.secret)  # the same links as links.*_url, faster
        self.accounts: dict[str, dict[str, Any]] = {}  # contacts of one account share it
        self.contact_links: dict[str, dict[str, str]] = {}
        self.survey_links: dict[tuple[str, str, str, str], str] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What a render worker of delivery's process pool needs: the account columns rather than
        the whole accounts frame, the journeys' names and titles, no caches (a worker fills its own,
        with the same values: signing is deterministic)."""
        return {
            "settings": self.settings,
            "secret": self.secret,
            "people": self.people,
            "journeys": self.journeys,
            "columns": self.columns,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings, self.secret, self.people = state["settings"], state["secret"], state["people"]
        self.journeys, self._columns, self.frame = state["journeys"], state["columns"], None
        self._start()

    def prepare(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Start a batch: the caches are emptied and the account contexts of these rows built in
        one pass. Delivery calls it per batch, so the caches hold one batch's accounts, contacts and
        survey links, not a whole delivery's: a launch day of 82,000 emails at 100k accounts grew
        them by 340 MB, and at 1M accounts a day has ten times as many. Nothing is lost but
        time: a context built again is the same (signing is deterministic)."""
        self.accounts.clear()
        self.contact_links.clear()
        self.survey_links.clear()
        missing = list(dict.fromkeys(r["account_id"] for r in rows))
        if missing:
            self.accounts.update(zip(missing, self.columns.contexts(missing), strict=True))

    def account(self, account_id: str) -> dict[str, Any]:
        found = self.accounts.get(account_id)
        if found is None:
            found = self.accounts[account_id] = self.columns.context(account_id)
        return found

    @property
    def columns(self) -> AccountColumns:
        if self._columns is None:
            assert self.frame is not None  # only an unpickled builder has no frame, and it has columns
            self._columns = AccountColumns(self.frame, self.people)
        return self._columns

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        settings, signer = self.settings, self.signer
        account_id = row["account_id"]
        account = self.account(account_id)
        journey = self.journeys.get(row["journey"])
        milestone_title = journey[1].get(row["milestone"]) if journey else None
        contact_id = row["contact_id"]
        name = row.get("contact_name") or ""
        contact_links = self.contact_links
        if contact_id not in contact_links:
            contact_links[contact_id] = {
                "unsubscribe": signer.unsubscribe(contact_id),
                "preferences": signer.preferences(contact_id),
            }
        survey_links, survey_link = self.survey_links, signer.survey

        def survey_url(survey: str, answer: str | int) -> str:
            key = (account_id, contact_id, survey, str(answer))
            found = survey_links.get(key)
            if found is None:
                found = survey_links[key] = survey_link(*key)
            return found

        return {
            "account": account,
            "contact": {
                "id": contact_id,
                "name": name,
                "first_name": name.split(" ")[0] if name else "",
                "role": row.get("role"),
            },
            "sender": sender_context(settings, _text(row.get("sender")), account["csm_email"], self.people),
            "journey": {"id": row["journey"], "name": journey[0] if journey else row["journey"]},
            "milestone": {"id": row["milestone"], "title": milestone_title or row["milestone"]},
            "touch_key": row["key"],
            "links": dict(contact_links[contact_id]),
            "survey_url": survey_url,
        }


def context_builder(
    settings: Settings,
    accounts: pd.DataFrame,
    catalog: dict[str, CompiledJourney],
    secret: bytes,
    people: People | None = None,
) -> ContextBuilder:
    """The context of each message of a run: see ContextBuilder. `people` (email → name, title of
    the users) makes a CSM's emails sign with their real name and title; without it, or for a CSM
    without a user, the name is derived from the address."""
    return ContextBuilder(settings, accounts, catalog, secret, people)
