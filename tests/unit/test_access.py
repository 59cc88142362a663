"""Who may see and change which CTAs and accounts (techtouch.domain.access), without a database.

The cast: two CSMs of team "emea" (Jane, Sam), one CSM of team "amer" (Ana), the managers of both
teams, and an ops person. CTAs are Jane's, Sam's, Ana's, the team queue's, and one assigned to an
address without a user (an account's csm_email needs no user)."""

from __future__ import annotations

import pytest

from techtouch.domain.access import (
    Actor,
    CtaScope,
    Forbidden,
    Role,
    can_assign_to,
    can_change_cta,
    can_see_queue,
    can_see_reports,
    can_view_account,
    can_view_cta,
    require,
)

JANE = Actor(1, "jane@vendor.example", "Jane Doe", Role.CSM, "emea")
SAM = Actor(2, "sam@vendor.example", "Sam Lee", Role.CSM, "emea")
ANA = Actor(3, "ana@vendor.example", "Ana Ruiz", Role.CSM, "amer")
LEAD = Actor(4, "lead@vendor.example", "Lee Lead", Role.MANAGER, "emea")
OTHER_LEAD = Actor(5, "boss@vendor.example", "Bo Boss", Role.MANAGER, "amer")
TEAMLESS_LEAD = Actor(6, "solo@vendor.example", "So Lo", Role.MANAGER, None)
OPS = Actor(7, "ops@vendor.example", "Olly Ops", Role.OPS)

JANES = CtaScope("jane@vendor.example", "emea", in_queue=False)
SAMS = CtaScope("sam@vendor.example", "emea", in_queue=False)
ANAS = CtaScope("ana@vendor.example", "amer", in_queue=False)
QUEUE = CtaScope("queue:cs", None, in_queue=True)
NO_USER = CtaScope("former.csm@vendor.example", None, in_queue=False)
LEADS_OWN = CtaScope("lead@vendor.example", "emea", in_queue=False)

# Who sees which CTA (changing: the same, except ops, who change nothing).
VISIBLE = {
    JANE: {JANES},
    SAM: {SAMS},
    ANA: {ANAS},
    LEAD: {JANES, SAMS, QUEUE, LEADS_OWN},
    OTHER_LEAD: {ANAS, QUEUE},
    TEAMLESS_LEAD: {QUEUE},
    OPS: {JANES, SAMS, ANAS, QUEUE, NO_USER, LEADS_OWN},
}
CTAS = (JANES, SAMS, ANAS, QUEUE, NO_USER, LEADS_OWN)


@pytest.mark.parametrize("actor", list(VISIBLE), ids=lambda a: f"{a.role}:{a.email}")
def test_who_sees_which_cta(actor: Actor) -> None:
    assert {cta for cta in CTAS if can_view_cta(actor, cta)} == VISIBLE[actor]


@pytest.mark.parametrize("actor", list(VISIBLE), ids=lambda a: f"{a.role}:{a.email}")
def test_who_changes_which_cta(actor: Actor) -> None:
    expected = set() if actor.role is Role.OPS else VISIBLE[actor]
    assert {cta for cta in CTAS if can_change_cta(actor, cta)} == expected


def test_a_csm_does_not_see_another_csms_cta_even_in_their_own_team() -> None:
    assert not can_view_cta(JANE, SAMS) and not can_change_cta(JANE, SAMS)
    assert not can_view_cta(JANE, QUEUE)  # the queue is the manager's to hand out


def test_a_manager_sees_their_team_and_the_queue_but_not_another_team() -> None:
    assert can_view_cta(LEAD, JANES) and can_change_cta(LEAD, SAMS) and can_change_cta(LEAD, QUEUE)
    assert not can_view_cta(LEAD, ANAS) and not can_change_cta(LEAD, ANAS)
    assert not can_view_cta(LEAD, NO_USER)  # no user, so no team: not this manager's


def test_a_manager_without_a_team_is_not_in_every_teamless_cta() -> None:
    assert not can_view_cta(TEAMLESS_LEAD, NO_USER)  # None == None must not count as the same team


def test_ops_see_everything_and_change_nothing() -> None:
    assert all(can_view_cta(OPS, cta) for cta in CTAS)
    assert not any(can_change_cta(OPS, cta) for cta in CTAS)


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (JANE, (Role.CSM, "emea", "sam@vendor.example"), True),  # a teammate
        (JANE, (Role.CSM, "amer", "ana@vendor.example"), False),  # another team
        (JANE, (Role.CSM, "emea", "jane@vendor.example"), True),  # themselves
        (JANE, (Role.MANAGER, "emea", "lead@vendor.example"), True),
        (LEAD, (Role.CSM, "emea", "jane@vendor.example"), True),
        (LEAD, (Role.CSM, "amer", "ana@vendor.example"), False),
        (LEAD, (Role.MANAGER, "emea", "lead@vendor.example"), True),  # "assign to me"
        (LEAD, (Role.OPS, "emea", "ops@vendor.example"), False),  # ops do not work CTAs
        (LEAD, (None, None, "nobody@vendor.example"), False),  # no such user
        (OPS, (Role.CSM, "emea", "jane@vendor.example"), False),  # ops change nothing
        (TEAMLESS_LEAD, (Role.CSM, None, "former.csm@vendor.example"), False),
    ],
)
def test_who_may_assign_to_whom(
    actor: Actor, target: tuple[Role | None, str | None, str], allowed: bool
) -> None:
    role, team, email = target
    assert can_assign_to(actor, role, team, email) is allowed


@pytest.mark.parametrize(
    ("actor", "csm_email", "holds_visible_cta", "csm_team", "allowed"),
    [
        (JANE, "jane@vendor.example", False, "emea", True),  # their account
        (JANE, "sam@vendor.example", False, "emea", False),  # a teammate's
        (JANE, "sam@vendor.example", True, "emea", True),  # holds a CTA on it
        (JANE, None, False, None, False),  # no CSM: the queue's account
        (LEAD, "sam@vendor.example", False, "emea", True),  # their team's
        (LEAD, None, False, None, True),  # the queue's
        (LEAD, "ana@vendor.example", False, "amer", False),  # another team's
        (LEAD, "ana@vendor.example", True, "amer", True),  # but holds a visible CTA on it
        (LEAD, "lead@vendor.example", False, None, True),  # their own
        (OPS, "ana@vendor.example", False, "amer", True),
        (OPS, None, False, None, True),
    ],
)
def test_who_sees_which_account(
    actor: Actor, csm_email: str | None, holds_visible_cta: bool, csm_team: str | None, allowed: bool
) -> None:
    assert can_view_account(actor, csm_email, holds_visible_cta, csm_team) is allowed


def test_reports_are_for_ops_and_managers_and_the_queue_for_managers() -> None:
    assert [can_see_reports(a) for a in (JANE, LEAD, OPS)] == [False, True, True]
    assert [can_see_queue(a) for a in (JANE, LEAD, OPS)] == [False, True, False]


def test_require_raises_forbidden_naming_no_person() -> None:
    require(True, "see this CTA")
    with pytest.raises(Forbidden) as refused:
        require(False, "see this CTA")
    assert str(refused.value) == "not allowed to see this CTA"
    assert isinstance(refused.value, PermissionError)
