"""What the benchmarks send: a realistic risk assessment, about 1.5 KB as canonical JSON."""

from __future__ import annotations

from schemas.common import from_data
from schemas.messages import RiskAssessment


def sample_message(pnc: str = "2011/0456789K", area: str = "staffordshire") -> RiskAssessment:
    return from_data(
        RiskAssessment,
        {
            "subject": {
                "pnc_id": pnc,
                "visor_ref": "VR0099001",
                "name": "Alex Sample",
                "date_of_birth": "1980-03-14",
            },
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
