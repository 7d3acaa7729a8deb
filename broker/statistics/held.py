"""What the co-ordination unit holds, opened and verified, as the report's input
(docs/statistics.md §1), and the report computed from it.

Every message is opened as a consultation opens it (``Receiver.reopen``): the store is
not trusted, so a message that no longer verifies or opens is left out and said, by
its refusal code. Reading the records is an act on personal data: one ``combination``
audit record names who ran the report, for which year, and how much it read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from broker.errors import MappaError
from broker.gateway import AgencyGateway
from broker.gateway.cases import CaseRegistry
from broker.statistics.annual import AnnualTables, ReportYear, annual_tables
from broker.statistics.population import population_of
from broker.statistics.timeline import Held
from schemas.audit import AuditAct, Operation
from schemas.common import Role
from schemas.messages import (
    AreaTransfer,
    BreachRecall,
    CivilOrderMade,
    EligibilityNotified,
    ExitFromMappa,
    LevelSet,
    NotificationBreachOutcome,
    ReleaseScheduled,
    type_name,
)
from schemas.transfer import TransferRecord

# The message types the tables are made of (§2); no other type is opened.
REPORT_TYPES = tuple(
    type_name(t)
    for t in (
        EligibilityNotified,
        AreaTransfer,
        LevelSet,
        ReleaseScheduled,
        BreachRecall,
        ExitFromMappa,
        NotificationBreachOutcome,
        CivilOrderMade,
    )
)
REPORT_PURPOSE = "annual MAPPA statistics"


class NotACoordinator(MappaError):
    """The report is the co-ordination unit's: another agency holds only part of it."""

    code = "report.not-coordinator"


@dataclass
class HeldRecords:
    """The unit's holdings for the report: opened messages, its transfers, and counts."""

    messages: list[Held] = field(default_factory=list)
    transfers: list[TransferRecord] = field(default_factory=list)
    read: Counter[str] = field(default_factory=Counter)
    left_out: Counter[str] = field(default_factory=Counter)


def read_held(gateway: AgencyGateway) -> HeldRecords:
    """Open every message of the report's types the unit holds (inbox and own record),
    and read its case registry."""
    ctx = gateway.ctx
    now = ctx.clock()
    out = HeldRecords(transfers=CaseRegistry(ctx.store).records())
    for item in ctx.store.held_of_types(REPORT_TYPES):
        try:
            opened = gateway.receiver.reopen(item, now=now, at_consultation=True)
        except MappaError as exc:
            out.left_out[exc.code] += 1
            continue
        header = opened.verified.header
        out.read[header.message_type] += 1
        out.messages.append(
            Held(
                sender=header.sender,
                message_id=header.message_id,
                subject_ref=header.subject_ref,
                created_at=header.created_at,
                body=opened.body,
                supersedes=header.supersedes,
            )
        )
    return out


def annual_report(
    gateway: AgencyGateway, *, year: ReportYear, user: str, population: int | None = None
) -> AnnualTables:
    """The annual tables of the unit's area for ``year``, from what it holds, with RSOs per
    100,000 from ``population`` or the shipped table; writes the report's audit record
    (to the outbox: the caller relays). Raises ``NotACoordinator``
    (``report.not-coordinator``) for any other agency."""
    ctx = gateway.ctx
    if ctx.entry.role is not Role.COORDINATOR:
        raise NotACoordinator(
            f"{ctx.agency_id} is a {ctx.entry.role.value} agency: the annual report is "
            "computed by an area's co-ordination unit"
        )
    area = ctx.entry.areas[0]
    held = read_held(gateway)
    tables = annual_tables(held.messages, held.transfers, area=area, year=year)
    tables.read = dict(sorted(held.read.items()))
    tables.left_out = dict(sorted(held.left_out.items()))
    if population is not None:
        tables.population, tables.population_source = population, "given with --population"
    elif (shipped := population_of(area, year)) is not None:
        tables.population, tables.population_source = shipped
    with ctx.store.transaction():
        ctx.audit.emit(
            AuditAct.COMBINATION,
            Operation.CONSULT,
            user=user,
            area=area,
            purpose=f"{REPORT_PURPOSE} {year.label}",
            reason=(
                f"annual report {year.label}: {sum(held.read.values())} messages about "
                f"{tables.subjects} subjects read, {sum(held.left_out.values())} left out"
            ),
        )
    return tables
