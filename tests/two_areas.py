"""Two areas for the transfer tests: their agencies, a case and its messages, on the one
``World`` of ``tests/support.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.api.auth import Actor
from broker.api.credentials import CredentialKind, Principal
from broker.cli.demo.transfer import case_team, risk
from broker.gateway.handled import Handling
from broker.trust.provision import two_area_specs
from schemas.messages import RiskAssessment
from tests.brokers import Broker
from tests.support import World, build_world

__all__ = ["case_team"]  # the transfer demo's case team builder, for the transfer tests

FROM = "staffordshire"
TO = "west-mercia"
SPECS = two_area_specs(FROM, TO)
POLICE_A, PROBATION_A, PRISON_A, HOUSING_A, COORD_A = (s.agency_id for s in SPECS[:5])
POLICE_B, PROBATION_B, PRISON_B, HOUSING_B, COORD_B = (s.agency_id for s in SPECS[5:])
PNC = "2011/0456789K"
# The co-ordinators and RA agencies of both areas: who holds a transfer step in full.
CASE_HOLDERS = (POLICE_A, PROBATION_A, PRISON_A, COORD_A, POLICE_B, PROBATION_B, PRISON_B, COORD_B)


def risk_assessment(area: str, summary: str = "High risk to children.") -> RiskAssessment:
    """The transfer demo's fictional risk assessment of the case, in ``area``."""
    return risk(area, summary)


async def build_transfer_world(tmp_path: Path, broker: Broker, **settings: Any) -> World:
    """Both areas' agencies, each area's default agreement with all its agencies, running."""
    return await build_world(
        tmp_path, broker, specs=SPECS, parties=None, areas=(FROM, TO), **settings
    )


async def refused_everywhere(w: World, value: bytes, code: str, agencies: tuple[str, ...]) -> None:
    """Send ``value`` and wait until each of ``agencies`` refused it with ``code``."""
    before = {a: len(w.of(a, Handling.REFUSED)) for a in agencies}

    def refused(agency: str) -> list[str | None]:
        return [h.reason_code for h in w.of(agency, Handling.REFUSED)[before[agency] :]]

    await w.post(value)
    await w.pump(lambda: all(code in refused(a) for a in agencies))
    for agency in agencies:
        assert all(h.reason for h in w.of(agency, Handling.REFUSED))


def stand_in_actor(agency_id: str) -> Actor:
    """Stands in for the app's ``acting`` dependency beside a stand-in desk: the calling
    agency's service account (tests/test_service_accounts.py tests the real one)."""
    return Actor(Principal(CredentialKind.AGENCY, agency_id, STAND_IN_CREDENTIAL))


STAND_IN_CREDENTIAL = "0" * 16
