"""The adapter kinds by name, and the adapter for an agency's gateway.

A kind is the name of one kind of agency system. Agency ids start with their
kind ("social-landlord.midland-heart"), so the kind is found from the id; an id
whose prefix is not a kind (or a kind of another role) gets its role's default.
"""

from __future__ import annotations

from agency_adapters.base import AgencyAdapter
from agency_adapters.coordinator import CoordinatorAdapter
from agency_adapters.education import EducationAdapter
from agency_adapters.electronic_monitoring import ElectronicMonitoringAdapter
from agency_adapters.health import HealthAdapter
from agency_adapters.housing import HousingAdapter
from agency_adapters.immigration import ImmigrationAdapter
from agency_adapters.jobcentre import JobcentreAdapter
from agency_adapters.police import PoliceAdapter
from agency_adapters.prison import PrisonAdapter
from agency_adapters.probation import ProbationAdapter
from agency_adapters.social_care import AdultSocialCareAdapter, ChildrensSocialCareAdapter
from agency_adapters.social_landlord import SocialLandlordAdapter
from agency_adapters.youth_offending import YouthOffendingAdapter
from broker.errors import SchemaError
from broker.gateway import AgencyGateway
from schemas.common import Role

ADAPTERS: dict[str, type[AgencyAdapter]] = {
    a.kind: a
    for a in (
        PoliceAdapter,
        ProbationAdapter,
        PrisonAdapter,
        CoordinatorAdapter,
        YouthOffendingAdapter,
        ChildrensSocialCareAdapter,
        AdultSocialCareAdapter,
        HealthAdapter,
        HousingAdapter,
        SocialLandlordAdapter,
        JobcentreAdapter,
        EducationAdapter,
        ElectronicMonitoringAdapter,
        ImmigrationAdapter,
    )
}
# Where two kinds share a role, the first listed above is the role's default.
DEFAULT_KIND: dict[Role, str] = {a.role: k for k, a in reversed(ADAPTERS.items())}


def kind_of(agency_id: str, role: Role) -> str:
    """The adapter kind of an agency: its id's prefix if that is a kind of its role."""
    prefix = agency_id.split(".", 1)[0]
    adapter = ADAPTERS.get(prefix)
    if adapter is not None and adapter.role is role:
        return prefix
    return DEFAULT_KIND[role]


def adapter_for(gateway: AgencyGateway, kind: str | None = None) -> AgencyAdapter:
    """The adapter of ``kind`` (default: the agency's own) on ``gateway``."""
    entry = gateway.ctx.entry
    if kind is None:
        kind = kind_of(entry.agency_id, entry.role)
    adapter = ADAPTERS.get(kind)
    if adapter is None:
        raise SchemaError(
            f"no adapter kind {kind!r}; kinds are {', '.join(sorted(ADAPTERS))}",
            code="adapter.kind-unknown",
        )
    return adapter(gateway)
