"""Who may see and change which CTAs and accounts: one set of rules for the web app and the CLI.

- a CSM sees and changes only the CTAs assigned to them, and sees the accounts they manage
  (`csm_email`) or hold a CTA on;
- a manager sees and changes the CTAs of their team (assignees whose user is in the manager's
  team) and of the team queue (CTAs of accounts without a CSM), and sees those accounts;
- ops see everything and change nothing; reports are for ops and managers.

No I/O: callers hand in what the rules need (the CTA's assignee, that assignee's team, the
account's CSM) and get a yes or no; a no is answered 403 or a CLI error, logged without PII.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CSM = "csm"
    MANAGER = "manager"
    OPS = "ops"


@dataclass(frozen=True)
class Actor:
    """A signed-in user (or a `--as` user on the CLI)."""

    id: int
    email: str
    name: str
    role: Role
    team: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class CtaScope:
    """What the rules need to know about one CTA."""

    assignee: str
    assignee_team: str | None  # the team of the assignee's user; None for no user or the queue
    in_queue: bool  # assigned to the team queue (its account has no CSM)


class Forbidden(PermissionError):
    """Not this actor's to see or change; the message names no person or account."""


def can_view_cta(actor: Actor, cta: CtaScope) -> bool:
    if actor.role is Role.OPS:
        return True
    if actor.role is Role.MANAGER:
        return cta.in_queue or cta.assignee == actor.email or _same_team(actor, cta.assignee_team)
    return cta.assignee == actor.email


def can_change_cta(actor: Actor, cta: CtaScope) -> bool:
    if actor.role is Role.OPS:
        return False
    return can_view_cta(actor, cta)


def can_assign_to(actor: Actor, target_role: Role | None, target_team: str | None, target_email: str) -> bool:
    """A manager assigns within their team (or to themselves); a CSM may hand a CTA only to
    their manager's queue, which is modelled as: to another CSM of their own team."""
    if actor.role is Role.OPS or target_role is None or target_role is Role.OPS:
        return False
    if target_email == actor.email:
        return True
    return actor.team is not None and target_team == actor.team


def can_view_account(
    actor: Actor, csm_email: str | None, holds_visible_cta: bool, csm_team: str | None
) -> bool:
    if actor.role is Role.OPS:
        return True
    if actor.role is Role.MANAGER:
        return (
            csm_email is None or csm_email == actor.email or _same_team(actor, csm_team) or holds_visible_cta
        )
    return csm_email == actor.email or holds_visible_cta


def can_see_reports(actor: Actor) -> bool:
    return actor.role in (Role.OPS, Role.MANAGER)


def can_see_queue(actor: Actor) -> bool:
    return actor.role is Role.MANAGER


def _same_team(actor: Actor, team: str | None) -> bool:
    return actor.team is not None and team == actor.team


def require(allowed: bool, what: str) -> None:
    """Raise Forbidden("not allowed to <what>") unless allowed."""
    if not allowed:
        raise Forbidden(f"not allowed to {what}")
