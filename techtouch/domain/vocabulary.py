"""The names a journey condition may use (README: "Conditions"), with their kinds.

The state loader (techtouch.adapters.db.state) produces exactly these columns; the condition
compiler (techtouch.domain.conditions) type-checks against them.
"""

from __future__ import annotations

ACCOUNT_NAMES: dict[str, str] = {
    "segment": "text",
    "arr": "number",
    "days_since_start": "number",
    "days_to_renewal": "number",
    "days_since_live": "number",
    "health": "number",
    "health_color": "text",
    "usage_change_30d": "number",
    "logins_14d": "number",
    "active_users_7d": "number",
    "key_actions_7d": "number",
    "key_actions_30d": "number",
    "baseline_key_actions_7d": "number",
    "renewal_signed": "bool",
    "paused": "bool",
    "is_advocate": "bool",
    "has_csm": "bool",
}
ENROLLMENT_NAMES: dict[str, str] = {
    "opened": "bool",
    "clicked": "bool",
    "journey_opened": "bool",
    "journey_clicked": "bool",
    "days_in_journey": "number",
    "days_in_milestone": "number",
}
FAMILIES: dict[str, str] = {"milestone": "bool", "survey": "answer", "entry": "number"}
# `cta.<reason>.<field>`: the account's latest CTA of that reason raised during the current
# enrollment (for `enter_when`: ever). Missing (no such CTA) matches nothing, like any other name.
CTA_FIELDS: dict[str, str] = {
    "status": "text",  # open, in_progress, snoozed, done, cancelled
    "outcome": "text",  # set when done (reached_resolved, churn_confirmed, resolved_by_customer, ...)
    "priority": "text",
    "days_open": "number",  # days since it was raised (to its closing day once closed)
}
RECORDS: dict[str, dict[str, str]] = {"cta": CTA_FIELDS}

MILESTONES: tuple[str, ...] = ("configured", "trained", "live")
"""The account milestones that exist (`milestone.<name>`): events of type `milestone`, which only
`techtouch import events` brings (the seed and the simulation write the same names; the health
score counts them). A journey's own milestones are something else: reaching one records no event.
`techtouch check` refuses a condition on any other name (a typo would never match); a new product
milestone is added here."""
