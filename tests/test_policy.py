"""The agreement decides who may publish and who sees which view; it fails closed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from broker.agreements import agreement_for_area
from broker.agreements.policy import SharingPolicy
from broker.errors import PolicyDenied
from broker.trust.provision import DataPaths, provision
from schemas.common import Role, ViewKind
from tests.support import EDUCATION, HOUSING, PARTIES, POLICE, PRISON, PROBATION, SPECS

TODAY = date(2026, 11, 23)


@pytest.fixture
def policy(tmp_path: Path) -> SharingPolicy:
    from datetime import UTC, datetime

    directory = provision(
        DataPaths(tmp_path), SPECS, passphrase=b"policy test passphrase", now=datetime.now(UTC)
    )
    return SharingPolicy(
        agreement_for_area("staffordshire", [directory.agency(a) for a in PARTIES]), directory
    )


def test_recipients_and_views(policy: SharingPolicy) -> None:
    police = policy.directory.agency(POLICE)
    got = {
        d.recipient.agency_id: d.view
        for d in policy.recipients(police, "risk-assessment", "staffordshire", frozenset(PARTIES))
    }
    assert got == {PROBATION: ViewKind.FULL, PRISON: ViewKind.FULL, HOUSING: ViewKind.REDACTED}


@pytest.mark.parametrize(
    ("sender", "message_type", "area", "today", "code"),
    [
        (HOUSING, "risk-assessment", "staffordshire", TODAY, "policy.publish-not-allowed"),
        (EDUCATION, "risk-assessment", "staffordshire", TODAY, "policy.not-a-party"),
        (POLICE, "risk-assessment", "derbyshire", TODAY, "policy.area-not-covered"),
        (POLICE, "risk-assessment", "staffordshire", date(2029, 1, 1), "policy.agreement-expired"),
        (POLICE, "victim-views", "staffordshire", TODAY, "policy.publish-not-allowed"),
    ],
)
def test_publish_refusals(  # noqa: PLR0917 - one parameter per column
    policy: SharingPolicy, sender: str, message_type: str, area: str, today: date, code: str
) -> None:
    with pytest.raises(PolicyDenied) as err:
        policy.authorise_publish(policy.directory.agency(sender), message_type, area, today)
    assert err.value.code == code


def test_inbound_view_richer_than_allowed_is_a_breach(policy: SharingPolicy) -> None:
    d = policy.directory
    args = {
        "sender": d.agency(POLICE),
        "message_type": "risk-assessment",
        "area": "staffordshire",
        "today": TODAY,
        "team": frozenset(PARTIES),
    }
    assert policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.REDACTED, **args)  # type: ignore[arg-type]
    assert policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.SUMMARY, **args)  # type: ignore[arg-type]
    with pytest.raises(PolicyDenied) as err:
        policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.FULL, **args)  # type: ignore[arg-type]
    assert err.value.code == "policy.breach-view-too-rich"
    with pytest.raises(PolicyDenied) as err:
        policy.check_inbound(recipient=d.agency(EDUCATION), view=ViewKind.SUMMARY, **args)  # type: ignore[arg-type]
    assert err.value.code == "policy.breach-not-entitled"


# -- case teams and case load -------------------------------------------------------------------


def need_to_know(policy: SharingPolicy) -> SharingPolicy:
    a = policy.agreement
    rules = tuple(
        r.model_copy(update={"active_role_required": True}) if r.role is Role.HOUSING else r
        for r in a.rules
    )
    return SharingPolicy(a.model_copy(update={"rules": rules}), policy.directory)


def test_active_role_rules_reach_only_the_case_team(policy: SharingPolicy) -> None:
    p = need_to_know(policy)
    police = p.directory.agency(POLICE)
    for team, housing_gets in (
        (None, False),
        (frozenset({POLICE}), False),
        (frozenset({HOUSING}), True),
    ):
        got = {
            d.recipient.agency_id
            for d in p.recipients(police, "risk-assessment", "staffordshire", team)
        }
        assert (HOUSING in got) is housing_gets
        assert {PROBATION, PRISON} <= got  # the RA rules need no active role
    args = {
        "recipient": p.directory.agency(HOUSING),
        "sender": police,
        "message_type": "risk-assessment",
        "area": "staffordshire",
        "view": ViewKind.REDACTED,
        "today": TODAY,
    }
    assert p.check_inbound(team=frozenset({HOUSING}), **args)  # type: ignore[arg-type]
    with pytest.raises(PolicyDenied) as err:
        p.check_inbound(team=frozenset({POLICE}), **args)  # type: ignore[arg-type]
    assert err.value.code == "policy.breach-not-on-case-team"


def test_case_load(policy: SharingPolicy) -> None:
    d = policy.directory
    # The Responsible Authority's case load is its whole area.
    policy.check_case_load(d.agency(POLICE), "risk-assessment", None)
    # Anyone else's is the cases whose team it is on.
    with pytest.raises(PolicyDenied) as err:
        policy.check_case_load(d.agency(HOUSING), "risk-assessment", frozenset({POLICE}))
    assert err.value.code == "policy.outside-case-load"
    policy.check_case_load(d.agency(HOUSING), "risk-assessment", frozenset({HOUSING}))
    # Setting a case team needs no case load.
    policy.check_case_load(d.agency(HOUSING), "case-team", None)


def test_bundles_split_a_topic_by_redaction_set(policy: SharingPolicy) -> None:
    from broker.agreements.policy import Disclosure
    from broker.gateway.publish import bundles
    from schemas.isa import Access, ShareRule

    d = policy.directory

    def disclosure(agency: str, access: Access, redaction: str | None = None) -> Disclosure:
        entry = d.agency(agency)
        rule = ShareRule(
            message_type="risk-assessment", role=entry.role, access=access, redaction=redaction
        )
        assert access.view is not None
        return Disclosure(entry, access.view, rule)

    full = disclosure(POLICE, Access.FULL)
    standard = disclosure(PRISON, Access.REDACTED)
    victim = disclosure(PROBATION, Access.REDACTED, "victim")
    assert bundles([full, standard]) == [[full, standard]]
    assert bundles([full, standard, victim]) == [[full, standard], [victim]]


def test_case_team_members_must_be_parties_in_the_area(policy: SharingPolicy) -> None:
    good = {POLICE: "police", HOUSING: "housing"}
    policy.check_case_team(good, "staffordshire")
    for members in (
        {**good, EDUCATION: "education"},  # in the directory, not a party
        {**good, "police.nowhere": "police"},  # not in the directory
        {POLICE: "probation"},  # listed under another role
    ):
        with pytest.raises(PolicyDenied) as err:
            policy.check_case_team(members, "staffordshire")
        assert err.value.code == "policy.case-team-invalid"
    with pytest.raises(PolicyDenied) as err:
        policy.check_case_team(good, "derbyshire")
    assert "does not operate in derbyshire" in err.value.reason
