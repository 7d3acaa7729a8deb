"""What the benchmarks send, and to whom.

``BENCH_AREA`` is the Responsible Authority and housing (housing on no case team, so a
risk assessment reaches only the RA topic); ``FULL_AREA`` is every kind of agency of an
area and a party to its agreement (the demo's roster without its non-party), for the
fan-out scenario, where a case team puts every one of them on the case.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.trust.provision import DEMO_NON_PARTY, DEMO_ROSTER, AgencySpec
from schemas.common import Role, from_data
from schemas.messages import CaseTeam, RiskAssessment

AREA = "staffordshire"
PURPOSE = "MAPPA risk management"
POLICE = "police.bench"
PROBATION = "probation.bench"
BENCH_AREA = (
    AgencySpec(POLICE, "Bench Police", Role.POLICE, (AREA,)),
    AgencySpec(PROBATION, "Bench Probation", Role.PROBATION, (AREA,)),
    AgencySpec("prison.bench", "Bench Prison", Role.PRISON, (AREA,)),
    AgencySpec("housing.bench", "Bench Housing", Role.HOUSING, (AREA,)),
)
FULL_AREA = tuple(
    AgencySpec(s.agency_id, s.name, s.role, (AREA,))
    for s in DEMO_ROSTER
    if s.agency_id != DEMO_NON_PARTY
)
FULL_AREA_POLICE = next(s.agency_id for s in FULL_AREA if s.role is Role.POLICE)
FULL_AREA_COORDINATOR = next(s.agency_id for s in FULL_AREA if s.role is Role.COORDINATOR)
FULL_AREA_LEAD = next(s.agency_id for s in FULL_AREA if s.role is Role.PROBATION)
SUBJECT = {"name": "Alex Sample", "date_of_birth": "1980-03-14"}


def pnc(series: int, i: int) -> str:
    """A fictional PNC id, distinct for each (series, i)."""
    return f"{2000 + series}/{i:07d}K"


def sample_message(pnc: str = "2011/0456789K", area: str = AREA) -> RiskAssessment:
    """A realistic risk assessment, about 1.5 KB as canonical JSON."""
    return from_data(
        RiskAssessment,
        {
            "subject": {"pnc_id": pnc, "visor_ref": "VR0099001", **SUBJECT},
            "area": area,
            "category": 1,
            "level": 2,
            "tool": "ARMS",
            "assessed_on": "2026-11-02",
            "risk_of_serious_harm": "high",
            "risk_to": ["children", "known-adult"],
            "factors": [
                "sexual preoccupation",
                "access to children via new partner",
                "poor compliance with notification requirements",
                "substance misuse",
            ],
            "summary": (
                "High risk to children. New relationship with a parent of two; "
                "has not disclosed it. Compliance with notification has slipped. " * 4
            ).strip(),
            "victims": [
                {
                    "name": "Jane Witness",
                    "relationship": "former partner",
                    "address": {
                        "line1": "1 Example Road",
                        "town": "Stafford",
                        "postcode": "ST16 1AA",
                    },
                }
            ],
            "health_notes": "Attends a community mental health team; medication reviewed.",
            "intelligence_source": "CHIS 4411",
        },
    )


def case_team(pnc: str, members: Sequence[AgencySpec], *, lead: str) -> CaseTeam:
    """The case team of the subject ``pnc``: ``members``, ``lead`` leading."""
    return from_data(
        CaseTeam,
        {
            "subject": {"pnc_id": pnc, **SUBJECT},
            "area": AREA,
            "category": 1,
            "level": 2,
            "effective_from": "2026-11-02",
            "lead_agency": lead,
            "members": [{"agency_id": s.agency_id, "role": s.role.value} for s in members],
        },
    )
