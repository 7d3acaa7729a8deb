"""The agreement decides who may publish and who sees which view; it fails closed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from broker.agreements import agreement_for_area
from broker.errors import PolicyDenied
from broker.policy import SharingPolicy
from broker.provision import DataPaths, provision
from schemas.common import ViewKind
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
        for d in policy.recipients(police, "risk-assessment", "staffordshire")
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
    }
    assert policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.REDACTED, **args)  # type: ignore[arg-type]
    assert policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.SUMMARY, **args)  # type: ignore[arg-type]
    with pytest.raises(PolicyDenied) as err:
        policy.check_inbound(recipient=d.agency(HOUSING), view=ViewKind.FULL, **args)  # type: ignore[arg-type]
    assert err.value.code == "policy.breach-view-too-rich"
    with pytest.raises(PolicyDenied) as err:
        policy.check_inbound(recipient=d.agency(EDUCATION), view=ViewKind.SUMMARY, **args)  # type: ignore[arg-type]
    assert err.value.code == "policy.breach-not-entitled"
