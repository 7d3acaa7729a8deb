"""Which adapter serves which agency: chosen by the agency's role, or by an explicit kind
where one role has several kinds of system.

A plain function over a fixed table, not a registry objects add themselves to.
"""

from __future__ import annotations

from agency_adapters.base import AgencyAdapter
from agency_adapters.housing import HousingAdapter
from agency_adapters.police import PoliceAdapter
from agency_adapters.prison import PrisonAdapter
from agency_adapters.probation import ProbationAdapter
from broker.errors import ConfigurationError
from broker.gateway import AgencyGateway
from schemas.common import Role

KINDS: dict[str, type[AgencyAdapter]] = {
    "police": PoliceAdapter,
    "probation": ProbationAdapter,
    "prison": PrisonAdapter,
    "housing": HousingAdapter,
}
BY_ROLE: dict[Role, str] = {
    Role.POLICE: "police",
    Role.PROBATION: "probation",
    Role.PRISON: "prison",
    Role.HOUSING: "housing",
}


def adapter_for(gateway: AgencyGateway, kind: str | None = None) -> AgencyAdapter:
    role = gateway.ctx.entry.role
    name = kind or BY_ROLE.get(role)
    if name is None or name not in KINDS:
        raise ConfigurationError(
            f"no adapter {'kind ' + repr(kind) if kind else 'for role ' + role.value} "
            f"(known kinds: {', '.join(sorted(KINDS))})"
        )
    return KINDS[name](gateway)
